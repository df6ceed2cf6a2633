"""Profile outputs: the component table, CSV files, the Chrome trace-event timeline and
optional PNG plots.

Timeline format (Chrome trace-event JSON, object form): complete events (`ph: "X"`) with
`ts`/`dur` in microseconds, one process per component group (host, links, each layer or
shared periphery bank) and one thread (track) per component and set of units, so that
events on a track never overlap; thread/process names as metadata events (`ph: "M"`), first.
`gcsim profile --timeline` streams the events to disk as the run books them
(StreamedTimeline): a long timeline costs disk, not memory.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from .report import over_sequences
from .sim.kernel.stats import Timeline
from .streamio import in_chunks

PS_PER_US = 1e6


def format_profile(rep: dict, res) -> str:
    elapsed = res.elapsed_ps
    lines = [f"profile: {rep['steps']} steps x {rep['sequences']} sequence(s), elapsed {elapsed / 1e6:.3f} us",
             f"{'component':<26} {'units':>5} {'busy %':>7} {'stalled %':>9} {'idle %':>7}  stall causes (ns per unit)"]
    for name, c in res.activity.items():
        tot = elapsed * c["units"] or 1
        causes = ", ".join(f"{k} {v / 1000 / c['units']:.1f}" for k, v in c["stall_causes_ps"].items())
        lines.append(f"{name:<26} {c['units']:>5} {100 * c['busy_ps'] / tot:7.2f} {100 * c['stalled_ps'] / tot:9.2f} "
                     f"{100 * c['idle_ps'] / tot:7.2f}  {causes}")
    lines.append("")
    lines.append(f"critical path, mean per step{over_sequences(rep['sequences'])}:")
    cp = rep["time"]["critical_path_ns_per_step"]
    total = sum(cp.values()) or 1
    for k, v in sorted(cp.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {k:<36} {v:12.1f} ns  {100 * v / total:5.1f}%")
    lines.append(f"  {'total (= mean step latency)':<36} {sum(cp.values()):12.1f} ns")
    return "\n".join(lines)


def _group(name: str) -> str:
    return name.split(".", 1)[0] if name[:1] in "LP" and "." in name else name.split(".", 1)[0]


def _units_text(units) -> str:
    """Units of a bank as a track name: '3', '0,4,8' or a range '0-11' (a slice of the bank)."""
    if isinstance(units, slice):
        start, stop = units.start or 0, units.stop
        return f"{start}-{stop - 1}" if stop is not None else f"{start}-"
    return ",".join(str(u) for u in np.atleast_1d(units).tolist())


class ChromeEvents:
    """Booked intervals as Chrome trace events: a process per component group and a thread
    per (component, units), numbered as they first appear; their names as metadata events."""

    def __init__(self):
        self.pids, self.tids, self.meta = {}, {}, []

    def event(self, name, units, start, end, kind, cause, step, layer) -> dict:
        pids, tids, meta = self.pids, self.tids, self.meta
        group = _group(name)
        if group not in pids:
            pids[group] = len(pids) + 1
            meta.append({"ph": "M", "name": "process_name", "pid": pids[group], "tid": 0, "args": {"name": group}})
        unit_key = "all" if units is None else _units_text(units)
        track = (name, unit_key)
        if track not in tids:
            tids[track] = len(tids) + 1
            label = name if unit_key == "all" else f"{name} [{unit_key}]"
            meta.append({"ph": "M", "name": "thread_name", "pid": pids[group], "tid": tids[track], "args": {"name": label}})
        label = cause if kind == "busy" else f"stall: {cause}"
        return {"name": label or kind, "cat": kind, "ph": "X", "ts": start / PS_PER_US,
                "dur": (end - start) / PS_PER_US, "pid": pids[group], "tid": tids[track],
                "args": {"step": step, "layer": layer, "units": unit_key}}


def _document(meta: list, events: list) -> dict:
    return {"traceEvents": meta + events, "displayTimeUnit": "ns",
            "otherData": {"generator": "gcsim", "time_unit_note": "ts and dur in microseconds"}}


def chrome_trace(timeline) -> dict:
    """Chrome trace-event JSON from a Timeline's booked intervals (kept in memory)."""
    enc = ChromeEvents()
    events = [enc.event(*e) for e in timeline.events]
    return _document(enc.meta, events)


class StreamedTimeline(Timeline):
    """A Timeline that writes each interval to disk as it is booked, so that its memory does
    not grow with the run: events go to a part file (`start(path)` before the run), and
    `write(path)` puts the metadata (a few per track) in front of them. The file is the one
    `json.dumps(chrome_trace(...))` gives for the same intervals, byte for byte."""

    def __init__(self, steps=None, layers=None, components=None):
        super().__init__(steps, layers, components)
        self.encoder, self.part, self.file, self.count = ChromeEvents(), None, None, 0

    def start(self, part_path) -> None:
        self.part = Path(part_path)
        self.file = open(self.part, "w", encoding="utf-8")

    def keep(self, event: tuple) -> None:
        if self.file is None:
            raise RuntimeError("StreamedTimeline: start(path) before the run books intervals")
        self.file.write((", " if self.count else "") + json.dumps(self.encoder.event(*event)))
        self.count += 1

    def write(self, path) -> None:
        """The Chrome trace-event file at `path`; the part file is removed."""
        self.file.close()
        head, tail = json.dumps(_document([], [])).split("[]", 1)  # '{"traceEvents": ' and ', ...}'
        head, tail = head + "[", "]" + tail
        with open(path, "w", encoding="utf-8") as out, open(self.part, encoding="utf-8") as events:
            out.write(head + ", ".join(json.dumps(m) for m in self.encoder.meta))
            if self.encoder.meta and self.count:
                out.write(", ")
            shutil.copyfileobj(events, out, 1 << 20)
            out.write(tail)
        self.part.unlink()


def write_profile(out: Path, res, rep: dict, *, plots: bool = False) -> list[str]:
    written = []
    prof = {"activity": res.activity, "critical_path_ns_per_step": rep["time"]["critical_path_ns_per_step"],
            "elapsed_ps": res.elapsed_ps, "steps": rep["steps"], "sequences": rep["sequences"],
            "energy_by_component_pj": rep["energy"]["by_component_pj"], "provenance": rep.get("provenance", {})}
    (out / "profile.json").write_text(json.dumps(prof, indent=2, sort_keys=True) + "\n")
    written.append("profile.json")
    causes = sorted({c for comp in res.activity.values() for c in comp["stall_causes_ps"]})
    with open(out / "components.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["component", "units", "busy_ps", "stalled_ps", "idle_ps", "utilisation"] + [f"stall:{c}_ps" for c in causes])
        for name, c in res.activity.items():
            w.writerow([name, c["units"], c["busy_ps"], c["stalled_ps"], c["idle_ps"], f"{c['utilisation']:.6f}"]
                       + [c["stall_causes_ps"].get(x, 0) for x in causes])
    written.append("components.csv")
    cats = list(res.path.categories)
    with open(out / "critical_path.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sequence", "step", "latency_ps"] + [f"{c}_ps" for c in cats])
        for seq, arr in enumerate(res.path.per_step):
            for t0, chunk in in_chunks(arr):   # a long run's rows are on disk: read a chunk at a time
                for t, row in enumerate(chunk.tolist(), t0):
                    w.writerow([seq, t, sum(row)] + row)
    written.append("critical_path.csv")
    if isinstance(res.timeline, StreamedTimeline):
        res.timeline.write(out / "timeline.json")
        written.append("timeline.json")
    elif res.timeline is not None:
        (out / "timeline.json").write_text(json.dumps(chrome_trace(res.timeline)))
        written.append("timeline.json")
    if plots:
        written += _plots(out, rep)
    return written


def _plots(out: Path, rep: dict) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    charts = [
        ("latency_breakdown.png", "critical path per step (ns)", rep["time"]["critical_path_ns_per_step"]),
        ("energy_breakdown.png", "energy by component (nJ)",
         {k: v / 1000 for k, v in rep["energy"]["by_component_pj"].items()}),
    ]
    stalls: dict[str, float] = {}
    for comp in rep["activity"].values():
        for c, v in comp["stall_causes_ps"].items():
            stalls[c] = stalls.get(c, 0.0) + v / 1000
    charts.append(("stall_causes.png", "stall time by cause, all units (ns)", stalls or {"no stalls": 0.0}))
    for fname, title, data in charts:
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(data) + 1.5))
        keys = list(data)
        ax.barh(keys, [data[k] for k in keys])
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=100)
        plt.close(fig)
        files.append(fname)
    return files
