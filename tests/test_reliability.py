"""Nothing trusted blindly (issue 21): what gcsim reads back is checked against a schema and a
checksum, every file is a regular file read within a size cap, user-sized inputs are bounded
before they are expanded, the Python API raises only GcsimError for a user's mistake, options
out of range are refused, and messages are one line with the terminal's control characters
escaped. (Output folders and files: test_outdir.py; generated hostile inputs: test_hostile.py.)"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hostile import assert_one_line_error, run_cli, time_limit

import gcsim
from gcsim.sweeps import SpecError, load_spec
from gcsim.sweeps.cache import ResultCache
from gcsim.sweeps.runner import run_sweep

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"shape.layers": 2, "shape.heads": 4, "shape.kv_heads": 4}


def sweep_spec(tmp_path, name="spec.yaml", **over):
    data = {"hardware": "paper-gpt2", "set": dict(SMALL), "traces": [{"synthetic": {"steps": 70, "seed": 0}}],
            "mode": "timing-only", "axes": [{"grid": {"periphery.counters_shared_by": [1, 2]}}]}
    data.update(over)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- what gcsim reads back ----------------------------------------------------------------------

def test_a_cache_record_edited_or_malformed_is_computed_again(tmp_path):
    """An edited metric showed up in results.csv with exit 0; a record without `status` broke
    every later sweep. Each record now carries a checksum and is schema-checked: a bad one is
    computed again and the table holds the true value."""
    spec, cache = sweep_spec(tmp_path), tmp_path / "cache"
    first = run_sweep(spec, cache=cache, jobs=1)
    assert first.counts["computed"] == 2
    true = [r["latency_per_layer_ns"] for r in first.rows]
    assert true == [65.0, 80.0]          # 65 ns, + 15 ns per extra head on a shared counter (paper-gpt2)
    records = sorted((cache / "points").rglob("*.json"))
    edited = json.loads(records[0].read_text())
    edited["metrics"]["latency_per_layer_ns"] = 1.0
    records[0].write_text(json.dumps(edited))
    broken = json.loads(records[1].read_text())
    del broken["status"]
    records[1].write_text(json.dumps(broken))
    again = run_sweep(spec, cache=cache, jobs=1)
    assert again.counts["computed"] == 2 and again.counts["cached"] == 0
    assert [r["latency_per_layer_ns"] for r in again.rows] == true
    assert run_sweep(spec, cache=cache, jobs=1).counts["cached"] == 2      # rewritten, whole again


@pytest.mark.parametrize("damage", ["nan-metric", "string-metric", "list-for-metrics", "no-status",
                                    "status-unknown", "other-key", "truncated", "a-folder", "a-fifo", "huge"])
def test_every_malformed_cache_record_reads_as_absent(tmp_path, damage):
    cache = ResultCache(tmp_path)
    key = "ab" * 32
    cache.put(key, {"status": "ok", "error": None, "metrics": {"latency_per_token_ns": 780.0}})
    assert cache.get(key)["metrics"] == {"latency_per_token_ns": 780.0}
    path = cache._path(key)
    rec = json.loads(path.read_text())
    body = {k: v for k, v in rec.items() if k != "gcsim_sha256"}
    path.unlink()
    if damage == "a-folder":
        path.mkdir()
    elif damage == "a-fifo":
        os.mkfifo(path)
    elif damage == "huge":
        with open(path, "wb") as f:
            f.truncate(64 << 20)
    elif damage == "truncated":
        path.write_text(json.dumps(rec)[:40])
    else:
        change = {"nan-metric": lambda r: r["metrics"].update(latency_per_token_ns=float("nan")),
                  "string-metric": lambda r: r["metrics"].update(latency_per_token_ns="780"),
                  "list-for-metrics": lambda r: r.update(metrics=[780.0]),
                  "no-status": lambda r: r.pop("status"),
                  "status-unknown": lambda r: r.update(status="great"),
                  "other-key": lambda r: r.update(key="cd" * 32)}[damage]
        change(body)
        from gcsim.readback import seal
        # resealed: the schema alone must refuse it ("other-key": the record of another point)
        path.write_text(json.dumps(seal(body) if damage != "nan-metric" else body, allow_nan=True))
    with time_limit(10):
        assert cache.get(key) is None


def test_sweep_plot_refuses_an_edited_table(tmp_path):
    pytest.importorskip("matplotlib")
    spec, out = sweep_spec(tmp_path), tmp_path / "out"
    rc, _, err = run_cli(["sweep", str(spec), "-o", str(out), "--cache", str(tmp_path / "c"), "-j", "1",
                          "--no-progress"], seconds=120)
    assert rc == 0, err
    text = (out / "results.csv").read_text()
    (out / "results.csv").write_text(text.replace(",65.0,", ",sixty-five,", 1))
    rc, _, err = run_cli(["sweep", "plot", str(out)])
    assert_one_line_error(rc, err, "results.csv")
    assert "sixty-five" in (out / "results.csv").read_text()          # left as the user made it


def test_sweep_plot_checks_the_schema_of_what_it_reads(tmp_path):
    from gcsim.errors import UsageError
    from gcsim.sweeps.table import read_meta, read_table
    (tmp_path / "sweep.json").write_text(json.dumps({"spec": {}, "spec_source": "s.yaml", "counts": {},
                                                     "fields": "shape.window", "columns": [], "provenance": {}}))
    with pytest.raises(UsageError, match="sweep.json: field 'fields': expected a list"):
        read_meta(tmp_path)
    (tmp_path / "results.csv").write_text("point,status,latency_per_token_ns\n0,ok,nan\n")
    with pytest.raises(UsageError, match="row 1, column 'latency_per_token_ns': expected a finite number"):
        read_table(tmp_path, ["point", "status", "latency_per_token_ns"], ["latency_per_token_ns"])
    (tmp_path / "results.csv").write_text("point,status\n0\n")
    with pytest.raises(UsageError, match="row 1: 1 cells for 2 columns"):
        read_table(tmp_path, ["point", "status"])


# --- every file opened: a regular file, size-capped --------------------------------------------

@pytest.fixture
def odd_files(tmp_path):
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    return {"fifo": fifo, "zero": Path("/dev/zero"), "empty": empty, "folder": tmp_path}


@pytest.mark.parametrize("what", ["fifo", "zero", "folder"])
def test_eval_text_that_is_not_a_regular_file_is_refused_at_once(tmp_path, odd_files, what):
    """`mkfifo t.txt; gcsim eval --text t.txt` waited for a writer forever; /dev/zero filled memory."""
    t0 = time.monotonic()
    rc, _, err = run_cli(["eval", "--text", str(odd_files[what]), "-o", str(tmp_path / "out")])
    assert_one_line_error(rc, err, "the text file is not a regular file")
    assert time.monotonic() - t0 < 15


@pytest.mark.parametrize("lm", ["chip", "smollm2"])
def test_eval_refuses_a_bad_text_before_it_loads_the_model(tmp_path, odd_files, monkeypatch, lm):
    """The text was checked only after the model had loaded: 33 s with --lm smollm2 (4 s now)."""
    from gcsim.llm import loop

    def no_model(name):
        raise AssertionError("the model was loaded before the text was checked")
    monkeypatch.setattr(loop, "load_loop_model", no_model)
    rc, _, err = run_cli(["eval", "--lm", lm, "--text", str(odd_files["fifo"]), "-o", str(tmp_path / "out")])
    assert_one_line_error(rc, err, "the text file is not a regular file: it is a FIFO")


def test_eval_and_decode_refuse_a_bad_description_before_they_load_the_model(tmp_path, odd_files, monkeypatch):
    """-m FIFO was read after the language model had loaded (half a minute for SmolLM2)."""
    from gcsim.llm import loop

    def no_model(name):
        raise AssertionError("the model was loaded before the description was checked")
    monkeypatch.setattr(loop, "load_loop_model", no_model)
    for argv in (["eval", "--lm", "smollm2", "-m", str(odd_files["fifo"]), "-o", str(tmp_path / "out")],
                 ["decode", "--lm", "smollm2", "-m", str(odd_files["fifo"]), "--prompt", "x"]):
        rc, _, err = run_cli(argv)
        assert_one_line_error(rc, err, "not a regular file: it is a FIFO")


def test_an_empty_text_needs_at_least_one_window(tmp_path, odd_files):
    rc, _, err = run_cli(["eval", "--text", str(odd_files["empty"]), "-o", str(tmp_path / "out")])
    assert_one_line_error(rc, err, "the text has 0 tokens; at least 257 are needed for one window")


@pytest.mark.parametrize("argv", [
    ["trace", "record", "--prompt-file", "{fifo}", "--new", "1", "-o", "{tmp}/t.gctrace"],
    ["sweep", "{fifo}", "-o", "{tmp}/sw"],
    ["run", "-m", "{fifo}", "--steps", "1", "-o", "{tmp}/r"],
    ["eval", "--lm", "{zero}", "-o", "{tmp}/e"],
])
def test_fifo_and_device_inputs_are_refused(tmp_path, odd_files, argv):
    argv = [a.format(fifo=odd_files["fifo"], zero=odd_files["zero"], tmp=tmp_path) for a in argv]
    rc, _, err = run_cli(argv)
    assert_one_line_error(rc, err, "regular file")


@pytest.mark.parametrize("content", [b"PK\x03\x04 not really a zip", b"\x93NUMPY garbage", b""])
def test_a_corrupt_weights_file_gets_the_weights_message(tmp_path, content):
    bad = tmp_path / "w.npz"
    bad.write_bytes(content)
    rc, _, err = run_cli(["decode", "--lm", str(bad), "--prompt", "ROMEO:", "-n", "1"])
    assert_one_line_error(rc, err, "not a chip-model weights file")


def test_a_weights_file_with_a_forged_header_is_refused(tmp_path):
    from gcsim.chipmodel.weights import SHIPPED
    with np.load(SHIPPED["chip"]) as z:
        arrays = {k: z[k] for k in z.files}
    head = json.loads(str(arrays["__header__"]))
    for change, needle in [(lambda h: h["config"].update(layers=10**6), "config.layers"),
                           (lambda h: h["config"].update(vocab=3), "config.vocab"),
                           (lambda h: h["config"].update(heads=4), "wrong shape")]:
        h = json.loads(json.dumps(head))
        change(h)
        np.savez(tmp_path / "w.npz", **{**arrays, "__header__": np.array(json.dumps(h))})
        with pytest.raises(gcsim.GcsimError, match=needle):
            from gcsim.chipmodel.weights import load_weights
            load_weights(tmp_path / "w.npz")


# --- user-sized inputs bounded before expansion --------------------------------------------------

def test_a_sweep_too_large_is_refused_from_its_axes_lengths(tmp_path):
    grid = {f: list(range(1, 11)) for f in ("shape.window", "shape.array_size", "timing.host_ns_per_layer",
                                            "periphery.sequences", "periphery.host_engines", "numerics.s_sat")}
    t0 = time.monotonic()
    with pytest.raises(SpecError, match=r"the sweep has 1,000,000 points \(up to axes\[0\]\.grid\), more than "
                                        r"the 10,000"):
        load_spec(sweep_spec(tmp_path, axes=[{"grid": grid}]))
    with pytest.raises(SpecError, match="the sweep has 200,000 points"):
        load_spec(sweep_spec(tmp_path, axes=[{"random": {"samples": 200_000, "fields": {
            "numerics.s_sat": {"uniform": [40, 160]}}}}]))
    assert time.monotonic() - t0 < 5


BOUNDED = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))     # a GB-sized value fails here, not the machine
from gcsim.sweeps import SpecError, load_spec
t0 = time.monotonic()
for text in sys.argv[1:]:
    spec = {"hardware": "paper-gpt2", "traces": [{"synthetic": {"steps": 10}}],
            "axes": [{"grid": {"shape.window": [256]}}], "constraints": [{"require": text}]}
    try:
        load_spec(spec)
        print("accepted", text)
    except SpecError as exc:
        print("refused", text, "|", exc)
print("seconds", time.monotonic() - t0)
"""


def test_constraint_expressions_are_bounded():
    """`9 ** 9 ** 9` hung, `'a' * 10**10` allocated 10 GB, `2.0 ** 10000` escaped as exit 3."""
    hostile = ["9 ** 9 ** 9", "'a' * 10**10", "2.0 ** 10000", "[1] * 10**10", "'%999999999d' % 1",
               "(-8) ** 0.5 > 0", "10 ** 400 > 1", "-" * 50000 + "1", "(" * 300 + "1" + ")" * 300,
               "shape.window ** shape.window ** shape.window > 0"]
    res = subprocess.run([sys.executable, "-c", BOUNDED, *hostile], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:-1]] == ["refused"] * len(hostile), res.stdout
    assert float(lines[-1].split()[1]) < 10
    assert "integer of more than 256 bits" in lines[0] and "arithmetic needs numbers" in lines[1]
    assert "too large for a float" in lines[2]


def test_ordinary_constraints_still_hold(tmp_path):
    s = load_spec(sweep_spec(tmp_path, axes=[{"grid": {"shape.window": [64, 96, 128]}}], constraints=[
        {"require": "shape.window % shape.array_size == 0 and 2 ** 10 > shape.window / 2", "reason": "whole"},
        {"require": "max(shape.window, 64) in [64, 128] or abs(-1) == 2"}]))
    assert [p.skip_reason for p in s.points()] == [None, "whole", None]


@pytest.mark.parametrize("dist, needle", [
    ({"uniform": [0, float("inf")]}, "finite numbers with lo < hi"),
    ({"uniform": [-1e308, 1e308]}, "hi - lo finite"),
    ({"uniform": [0, float("nan")]}, "finite numbers"),
    ({"loguniform": [0, 10]}, "lo > 0"),
    ({"randint": [0, 2**70]}, "within +-2**62"),
    ({"randint": [5, 1]}, "lo <= hi"),
])
def test_random_axis_bounds_are_finite_and_in_range(tmp_path, dist, needle):
    path = sweep_spec(tmp_path, axes=[{"random": {"samples": 2, "fields": {"numerics.s_sat": dist}}}])
    with pytest.raises(SpecError, match="axes.0..random.fields.numerics.s_sat") as info:
        load_spec(path)
    assert needle in str(info.value)


def test_yaml_integers_beyond_pythons_digit_limit_are_bad_input(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("hardware: paper-gpt2\nseed: " + "1" * 5000 + "\n")
    rc, _, err = run_cli(["sweep", str(path), "-o", str(tmp_path / "o")])
    assert_one_line_error(rc, err, "line 2, column 7: an integer of more digits than Python reads")
    rc, _, err = run_cli(["describe", "paper-gpt2", "--set", "shape.window=0x" + "f" * 5000])
    assert_one_line_error(rc, err, "an integer of more than 256 bits")


# --- the Python API raises only GcsimError ------------------------------------------------------

HW = gcsim.load_hardware("paper-gpt2").derive(shape={"layers": 1, "heads": 2, "kv_heads": 2, "d_head": 8,
                                                     "window": 16, "array_size": 8})


def _a(*shape):
    return np.random.default_rng(0).normal(0, 0.1, shape).astype(np.float32)


def _tr(q, k, v, **kw):
    from gcsim.sim import ArrayTrace
    return ArrayTrace(q, k, v, **kw)


API_MISTAKES = {
    "trace None": lambda: gcsim.simulate(None, HW),
    "trace int": lambda: gcsim.simulate(3, HW),
    "no steps": lambda: gcsim.simulate(_tr(_a(0, 1, 2, 8), _a(0, 1, 2, 8), _a(0, 1, 2, 8)), HW),
    "q/k/v with different step counts": lambda: gcsim.simulate(_tr(_a(3, 1, 2, 8), _a(2, 1, 2, 8), _a(3, 1, 2, 8)), HW),
    "k and v of different heads": lambda: gcsim.simulate(_tr(_a(3, 1, 2, 8), _a(3, 1, 2, 8), _a(3, 1, 1, 8)), HW),
    "d_head mismatch": lambda: gcsim.simulate(_tr(_a(3, 1, 2, 8), _a(3, 1, 2, 4), _a(3, 1, 2, 4)), HW),
    "partial scaler dict": lambda: gcsim.simulate(_tr(_a(3, 1, 2, 8), _a(3, 1, 2, 8), _a(3, 1, 2, 8)), HW,
                                                  scalers={"a_q": np.ones((1, 2))}),
    "scalers of the wrong shape": lambda: gcsim.simulate(_tr(_a(3, 1, 2, 8), _a(3, 1, 2, 8), _a(3, 1, 2, 8)), HW,
                                                         scalers={k: np.ones(3) for k in ("a_q", "b_q", "a_k", "b_k",
                                                                                          "a_v", "b_v", "a_out", "b_out")}),
    "scalers an int": lambda: gcsim.simulate(_tr(_a(3, 1, 2, 8), _a(3, 1, 2, 8), _a(3, 1, 2, 8)), HW, scalers=5),
    "steps a string": lambda: gcsim.simulate(_tr(_a(3, 1, 2, 8), _a(3, 1, 2, 8), _a(3, 1, 2, 8)), HW, steps="2"),
    "model that disagrees": lambda: gcsim.simulate(_tr(_a(3, 1, 2, 8), _a(3, 1, 2, 8), _a(3, 1, 2, 8),
                                                       model={"layers": 1}), HW),
    "head_attention: scaler a string": lambda: gcsim.reference.head_attention(_a(3, 8), _a(3, 8), _a(3, 8), HW,
                                                                               scalers={"a_q": "x"}),
    "head_attention: hw a name": lambda: gcsim.reference.head_attention(_a(3, 8), _a(3, 8), _a(3, 8), "paper-gpt2"),
    "head_attention: dtype unknown": lambda: gcsim.reference.head_attention(_a(3, 8), _a(3, 8), _a(3, 8), HW,
                                                                             dtype="foo"),
    "sweep: jobs a string": lambda: gcsim.sweep({}, jobs="x"),
    "sweep: cache an int": lambda: gcsim.sweep({}, cache=3, jobs=1),
    "sweep: out an int": lambda: gcsim.sweep({"axes": []}, out=3, jobs=1),
}


@pytest.mark.parametrize("name", list(API_MISTAKES))
def test_api_mistakes_raise_gcsim_errors(name):
    import gcsim.reference  # noqa: F401
    with pytest.raises(gcsim.GcsimError):
        API_MISTAKES[name]()


# --- options out of range refused, never replaced by a default ----------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["eval", "--window", "0"], "--window: expected an integer in 1.., found 0"),
    (["eval", "--windows", "0"], "--windows must be >= 1 or 'all', found 0"),
    (["eval", "--noise-windows", "0"], "--noise-windows"),
    (["train", "chip", "--threads", "0"], "--threads: expected an integer in 1.."),
    (["train", "chip", "--threads", "100000"], "--threads: expected an integer in 1.."),
    (["train", "chip", "--max-minutes", "-1"], "--max-minutes: expected a finite number > 0, found -1"),
    (["train", "chip", "--max-minutes", "nan"], "--max-minutes: expected a finite number > 0, found nan"),
    (["train", "chip", "--iters", "0"], "--iters"),
    (["decode", "--prompt", "a", "-n", "0"], "--new-tokens"),
    (["run", "--steps", "x"], "--steps: invalid int value: 'x'"),
    (["run", "--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_options_out_of_range_are_one_line_errors(argv, needle):
    rc, out, err = run_cli(argv)
    assert_one_line_error(rc, err, needle)
    assert out == "" and ("--help" in err or argv[1] == "--windows")     # --windows N|all: checked at run


# --- output mechanics ---------------------------------------------------------------------------

def test_a_killed_trace_writers_temporary_is_removed_by_the_next_writer(tmp_path):
    from gcsim.traces import TraceWriter, default_scalers
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    model = {"name": "tiny", "layers": 2, "heads": 4, "kv_heads": 4, "d_head": 64}
    w = TraceWriter(tmp_path / "other.gctrace", model=model, steps=3, scalers=default_scalers(2, 4, 4),
                    clip_fraction=None, provenance={})
    stale = tmp_path / f".t.gctrace.tmp-{dead.pid}"
    shutil.copy(w._tmp, stale)                      # what a writer killed mid-way leaves
    w.abort()
    foreign = tmp_path / f".t.gctrace.tmp-{dead.pid + 1}"
    foreign.write_text("not a trace: the user's")
    from gcsim.traces.synthetic import write_synthetic
    write_synthetic(tmp_path / "t.gctrace", layers=2, heads=4, kv_heads=4, d_head=64, steps=3, seed=0)
    assert not stale.exists() and foreign.read_text() == "not a trace: the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["t.gctrace", foreign.name])


def test_a_closed_stdout_does_not_crash(tmp_path):
    """`gcsim run >&-` ended in an internal error; the files must be written all the same (and
    none of them may take descriptor 1, where the summary goes)."""
    res = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "gcsim", "run", "--steps", "1",
                          "-o", str(tmp_path / "o")], stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "o" / "report.json").read_text())["steps"] == 1
    assert "gcsim" in (tmp_path / "o" / "summary.txt").read_text()


# --- messages -----------------------------------------------------------------------------------

@pytest.fixture
def not_ray():
    """A local server that answers like a web server, not like a Ray cluster."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.1 404 Not Found\r\n\r\n")
            conn.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    srv.close()


def test_ray_address_where_no_ray_listens_fails_in_seconds(tmp_path, not_ray):
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()                                           # a port nobody listens at
    spec = sweep_spec(tmp_path)
    for address, needle in ((f"127.0.0.1:{port}", "nothing answers there"), (not_ray, "not a Ray cluster")):
        t0 = time.monotonic()
        rc, _, err = run_cli(["sweep", str(spec), "-o", str(tmp_path / "o"), "--cache", str(tmp_path / "c"),
                              "--ray", address])
        assert_one_line_error(rc, err, needle)
        assert time.monotonic() - t0 < 10
    assert not (tmp_path / "o").exists()


def test_text_from_files_is_printed_with_control_characters_escaped(tmp_path):
    from gcsim.traces.synthetic import write_synthetic
    path = write_synthetic(tmp_path / "t.gctrace", layers=1, heads=1, kv_heads=1, d_head=8, steps=2, seed=0,
                           name="evil\x1b[2J\x1b[31mname\u202e")
    rc, out, err = run_cli(["trace", "info", str(path)])
    assert rc == 0, err
    assert "\x1b" not in out and "\u202e" not in out and "evil\\x1b[2J\\x1b[31mname\\u202e" in out
    rc, out, err = run_cli(["run", "--steps", "1", "-o", str(tmp_path / "o"), "--set", r'name="my\e[2Jchip"'])
    assert rc == 0 and "\x1b" not in out and "my\\x1b[2Jchip" in out
    rc, _, err = run_cli(["run", "-m", str(tmp_path / "no\x1b[2Jsuch.yaml")])
    assert_one_line_error(rc, err, "no\\x1b[2Jsuch.yaml")
