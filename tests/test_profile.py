"""`gcsim profile` end to end on a small synthetic trace: the Chrome trace-event timeline is
well formed (checked by hand and, when installed, against a JSON schema), its filters cut the
events as asked, the CSV/JSON files and plots are written, and bad filter arguments fail
cleanly (exit 2, a message naming the option, no output directory)."""
import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from gcsim import load_hardware
from gcsim.cli import main as cli
from gcsim.hardware import to_dict
from gcsim.traces import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
STEPS = 8
# 2 layers x 4 heads, d 8, window 16 in 2 sub-tiles; counters shared by 2 so there are stalls
SMALL = {"shape": {"layers": 2, "heads": 4, "kv_heads": 4, "d_head": 8, "window": 16, "array_size": 8},
         "periphery": {"counters_shared_by": 2},
         "costs": {"model": "table"}}  # phase times as written (scaling laws: test_costs.py)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("profile")
    trace = write_synthetic(d / "t.gctrace", layers=2, heads=4, kv_heads=4, d_head=8, steps=STEPS, seed=0)
    data = to_dict(load_hardware("paper-gpt2").derive(**SMALL))
    data.pop("source")
    model = d / "small.yaml"
    model.write_text(yaml.safe_dump(data))
    return str(trace), str(model), d


def profile(inputs, out, *extra):
    trace, model, d = inputs
    return cli(["profile", trace, "-m", model, "-o", str(d / out), *extra])


def events_of(path):
    tl = json.loads((path / "timeline.json").read_text())
    return tl, [e for e in tl["traceEvents"] if e["ph"] == "X"]


def check_chrome_trace(tl):
    """The Chrome trace-event format (object form) as the profiler writes it."""
    assert isinstance(tl, dict) and isinstance(tl["traceEvents"], list)
    tracks = {}
    names = {}
    for e in tl["traceEvents"]:
        assert e["ph"] in ("X", "M"), e
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name") and isinstance(e["args"]["name"], str)
            assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
            names[(e["pid"], e["tid"] if e["name"] == "thread_name" else None)] = e["args"]["name"]
            if e["name"] == "thread_name":   # a component, then its units: [3], [0,4,8] or a range [0-11]
                assert re.fullmatch(r"[\w.]+( \[\d+(-\d+)?(,\d+)*\])?", e["args"]["name"]), e["args"]["name"]
            continue
        for key in ("ph", "ts", "dur", "pid", "tid", "name"):
            assert key in e, (key, e)
        assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float))
        assert e["ts"] >= 0 and e["dur"] > 0
        assert e["cat"] in ("busy", "stall")
        tracks.setdefault((e["pid"], e["tid"]), []).append((round(e["ts"] * 1e6), round(e["dur"] * 1e6)))  # ps
    for track, spans in tracks.items():
        assert track in names and (track[0], None) in names  # every track and process is named
        spans.sort()
        for (a, da), (b, _) in zip(spans, spans[1:]):
            assert a + da <= b, f"overlapping events on track {names[track]}: [{a}, {a + da}) and {b} ps"
    if importlib.util.find_spec("jsonschema"):
        import jsonschema
        x_event = {"type": "object", "required": ["ph", "ts", "dur", "pid", "tid", "name"],
                   "properties": {"ph": {"const": "X"}, "ts": {"type": "number", "minimum": 0},
                                  "dur": {"type": "number", "minimum": 0}, "pid": {"type": "integer"},
                                  "tid": {"type": "integer"}, "name": {"type": "string"},
                                  "cat": {"type": "string"}, "args": {"type": "object"}}}
        m_event = {"type": "object", "required": ["ph", "pid", "name", "args"],
                   "properties": {"ph": {"const": "M"},
                                  "name": {"enum": ["process_name", "thread_name", "process_sort_index",
                                                    "thread_sort_index"]},
                                  "args": {"type": "object", "required": ["name"]}}}
        schema = {"type": "object", "required": ["traceEvents"],
                  "properties": {"traceEvents": {"type": "array", "items": {"oneOf": [x_event, m_event]}},
                                 "displayTimeUnit": {"enum": ["ms", "ns"]}}}
        jsonschema.validate(tl, schema)
    return tracks, names


def test_profile_files_and_full_timeline(inputs, capsys):
    _, _, d = inputs
    assert profile(inputs, "full", "--timeline") == 0
    out = d / "full"
    assert {"profile.json", "components.csv", "critical_path.csv", "timeline.json"} <= {p.name for p in out.iterdir()}
    printed = capsys.readouterr().out
    assert "output counters shared" in printed and "critical path" in printed
    prof = json.loads((out / "profile.json").read_text())
    assert prof["steps"] == STEPS
    # 2 heads per counter set: 65 + 15 = 80 ns per layer, 2 layers -> 160 ns per step
    assert prof["elapsed_ps"] == STEPS * 2 * 80_000
    with open(out / "critical_path.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == STEPS and {int(r["latency_ps"]) for r in rows} == {160_000}
    with open(out / "components.csv") as f:
        comps = {r["component"]: r for r in csv.DictReader(f)}
    integ = comps["L00.integrators"]
    # heads 1 and 3 wait one 15 ns count per layer step
    assert int(integ["stall:output counters shared_ps"]) == STEPS * 2 * 15_000
    for r in comps.values():
        assert int(r["busy_ps"]) + int(r["stalled_ps"]) + int(r["idle_ps"]) == int(r["units"]) * prof["elapsed_ps"]
    tl, xs = events_of(out)
    tracks, names = check_chrome_trace(tl)
    assert {e["args"]["step"] for e in xs} == set(range(STEPS))
    assert any(e["name"] == "stall: output counters shared" for e in xs)
    # per component, the busy time on the timeline is the busy time of the table (all units)
    busy = {}
    for e in xs:
        if e["cat"] == "busy":
            comp = names[(e["pid"], e["tid"])].split(" [")[0]
            n_units = len(e["args"]["units"].split(",")) if e["args"]["units"] != "all" else int(comps[comp]["units"])
            busy[comp] = busy.get(comp, 0) + round(e["dur"] * 1e6) * n_units
    for comp, v in busy.items():
        assert v == int(comps[comp]["busy_ps"]), comp


def test_timeline_filters(inputs):
    _, _, d = inputs
    assert profile(inputs, "all", "--timeline", "--timing-only") == 0
    _, every = events_of(d / "all")
    assert profile(inputs, "steps", "--timeline", "--timing-only", "--timeline-steps", "2:4") == 0
    tl, xs = events_of(d / "steps")
    check_chrome_trace(tl)
    assert {e["args"]["step"] for e in xs} == {2, 3}
    assert len(xs) == sum(1 for e in every if e["args"]["step"] in (2, 3))
    assert profile(inputs, "layers", "--timeline", "--timing-only", "--timeline-layers", "1") == 0
    tl, xs = events_of(d / "layers")
    check_chrome_trace(tl)
    assert {e["args"]["layer"] for e in xs} == {1}
    assert len(xs) == sum(1 for e in every if e["args"]["layer"] == 1)
    assert profile(inputs, "comps", "--timeline", "--timing-only", "--timeline-components", "L00.counters,sequences",
                   "--timeline-steps", "0:1") == 0
    tl, xs = events_of(d / "comps")
    _, names = check_chrome_trace(tl)
    comps = {names[(e["pid"], e["tid"])].split(" [")[0] for e in xs}
    assert comps == {"L00.counters"}  # no host time: `sequences` has nothing booked
    # step 0, layer 0: two turns of 15 ns on each of the 2 counter sets (whole-bank bookings)
    assert sorted((round(e["ts"] * 1e6), round(e["dur"] * 1e6)) for e in xs) == [(35_000, 15_000), (50_000, 15_000)]


@pytest.mark.parametrize("flag, value, message", [
    ("--timeline-steps", "two:four", "--timeline-steps: expected A:B"),
    ("--timeline-steps", "3", "--timeline-steps: expected A:B"),
    ("--timeline-layers", "0,x", "--timeline-layers: expected comma-separated integers"),
])
def test_bad_filter_arguments(inputs, capsys, flag, value, message):
    _, _, d = inputs
    name = f"bad{abs(hash((flag, value)))}"
    assert profile(inputs, name, "--timeline", flag, value) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("gcsim profile: error:")
    assert not (d / name).exists() and not list(d.glob(f".{name}*"))


def test_plots_and_gantt_png(inputs):
    pytest.importorskip("matplotlib")
    _, _, d = inputs
    assert profile(inputs, "plots", "--plots", "--timeline", "--timing-only") == 0
    pngs = {p.name for p in (d / "plots").glob("*.png")}
    assert pngs == {"latency_breakdown.png", "energy_breakdown.png", "stall_causes.png"}
    for p in pngs:
        assert (d / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    spec = importlib.util.spec_from_file_location("plot_timeline", ROOT / "examples" / "plot_timeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    png = mod.plot_timeline(d / "plots" / "timeline.json", d / "gantt.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.parametrize("args, message", [
    (("--timeline", "--timeline-steps", "5:2"), "'5:2' selects no step"),
    (("--timeline", "--timeline-layers", "7"), "[7] not in the model's layers"),
    (("--timeline", "--timeline-components", "nosuch"), "['nosuch'] match no component"),
    (("--timeline-steps", "0:1"), "--timeline-steps filters the timeline: add --timeline"),
])
def test_filters_that_select_nothing_are_rejected(inputs, args, message, capsys):
    _, _, d = inputs
    name = f"empty{abs(hash(args))}"
    assert profile(inputs, name, "--timing-only", *args) == 2
    assert message in capsys.readouterr().err
    assert not (d / name).exists()


def test_timeline_of_the_shipped_trace_is_a_valid_chrome_trace(tmp_path):
    out = tmp_path / "shipped"
    assert cli(["profile", "--timeline", "--timeline-steps", "0:2", "--timeline-layers", "0,29", "-o", str(out)]) == 0
    tl = json.loads((out / "timeline.json").read_text())
    check_chrome_trace(tl)
    steps = {e["args"]["step"] for e in tl["traceEvents"] if e["ph"] == "X"}
    layers = {e["args"]["layer"] for e in tl["traceEvents"] if e["ph"] == "X"}
    assert steps == {0, 1} and layers == {0, 29}
    # the SmolLM2 mapping: three GQA rounds per layer step, so the integrators of later
    # rounds show the shared-bank stall
    assert any(e["name"] == "stall: K/V bank shared (GQA)" for e in tl["traceEvents"])


def test_the_streamed_timeline_is_the_in_memory_one_and_adds_up_to_the_activity(inputs):
    """`profile --timeline` writes events to disk as the run books them: the file equals, byte
    for byte, the previous in-memory export of the same run, and read back independently its
    intervals add up to the activity statistics of profile.json (busy and stall time per
    component and cause, over all units)."""
    from collections import Counter

    from gcsim.profiling import chrome_trace
    from gcsim.sim import Simulator, Timeline
    from gcsim.traces import open_trace
    trace, model, d = inputs
    assert profile(inputs, "streamed", "--timeline", "-q") == 0
    text = (d / "streamed" / "timeline.json").read_text()
    assert not list((d / "streamed").glob("*.part"))      # no part file left behind
    kept = Timeline()
    Simulator(load_hardware(model), open_trace(trace), timeline=kept).run()
    assert len(kept.events) > 100
    assert text == json.dumps(chrome_trace(kept))
    doc = json.loads(text)
    prof = json.loads((d / "streamed" / "profile.json").read_text())
    tracks = {(e["pid"], e["tid"]): e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    busy, stalled = Counter(), Counter()
    for e in doc["traceEvents"]:
        if e["ph"] != "X":
            continue
        comp = tracks[e["pid"], e["tid"]].split(" [")[0]
        units = prof["activity"][comp]["units"] if e["args"]["units"] == "all" else len(e["args"]["units"].split(","))
        ps = round(e["dur"] * 1e6) * units
        if e["cat"] == "busy":
            busy[comp] += ps
        else:
            stalled[comp, e["name"].removeprefix("stall: ")] += ps
    assert len(busy) > 5 and stalled                     # SMALL shares counters: there are stalls
    for comp, a in prof["activity"].items():
        assert busy[comp] == a["busy_ps"], comp
        for cause, v in a["stall_causes_ps"].items():
            assert stalled[comp, cause] == v, (comp, cause)
    assert sum(stalled.values()) == sum(a["stalled_ps"] for a in prof["activity"].values())


def test_a_bank_slice_is_named_as_a_range(tmp_path):
    """Two sequences on stall-link: each sequence's K/V arrays are a slice of the tiles' units,
    named 0-11 and 12-23 (they were written as Python's slice(0, 12, None))."""
    trace = tmp_path / "t.gctrace"
    assert cli(["trace", "synth", "--model", "stall-link", "--steps", "2", "-o", str(trace), "-q"]) == 0
    out = tmp_path / "p"
    assert cli(["profile", str(trace), "-m", "stall-link", "--timeline", "--timeline-layers", "0", "-o", str(out),
                "-q"]) == 0
    tl = json.loads((out / "timeline.json").read_text())
    check_chrome_trace(tl)
    names = {e["args"]["name"] for e in tl["traceEvents"] if e["name"] == "thread_name"}
    assert {"L00.tiles [0-11]", "L00.tiles [12-23]"} <= names, sorted(names)
