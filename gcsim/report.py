"""Reports of a simulation: a JSON-ready dict and a readable summary.

Energy model: action counts x the energy table of the description (plus static power x
time where given). A step with fewer tokens written than the window reads only the
written slots: K columns and V rows scale with the valid slots, PWM drivers, output
conversions and adds with the sub-tiles holding at least one of them. The paper's
per-item figures are for a full window; they are compared on full-window steps.
"""
from __future__ import annotations

import numpy as np

from . import __version__, costs, paper
from .sim.engine import SimResult
from .system.endtoend import energy_split, format_system, system_report
from .series import Stats, Sum
from .streamio import in_chunks, release_pages


def _ns(st) -> dict:
    """mean / min / max in ns of a series.Stats of per-step ps (converted before it was fed)."""
    return {"mean": float(st.mean), "min": float(st.min), "max": float(st.max)} if st.sum.n else {}


def _in_ns(values_ps) -> np.ndarray:
    v = np.array(values_ps, dtype=np.float64)
    v /= 1000.0
    return v


SCHEMA = "gcsim.report/2"  # docs/report-schema.md


def component_kind(name: str) -> str:
    """'L07.tiles' -> 'tiles', 'P00.counters' -> 'counters'; 'host', 'link.x' unchanged."""
    head, sep, rest = name.partition(".")
    return rest if sep and head[:1] in "LP" and head[1:].isdigit() else name


def activity_by_kind(activity: dict, elapsed_ps: int) -> dict:
    """Busy / stalled (by cause) / idle summed over the layers' copies of each component."""
    out: dict[str, dict] = {}
    for name, c in activity.items():
        row = out.setdefault(component_kind(name), {"units": 0, "busy_ps": 0, "stalled_ps": 0, "idle_ps": 0,
                                                    "stall_causes_ps": {}})
        for k in ("units", "busy_ps", "stalled_ps", "idle_ps"):
            row[k] += c[k]
        for cause, v in c["stall_causes_ps"].items():
            row["stall_causes_ps"][cause] = row["stall_causes_ps"].get(cause, 0) + v
    for row in out.values():
        row["utilisation"] = row["busy_ps"] / (elapsed_ps * row["units"]) if elapsed_ps and row["units"] else 0.0
    return out


def per_step_chunks(res: SimResult):
    """The per-step columns kept out of report.json (run writes them to per_step.csv), for
    steps t0..t1-1 of one chunk at a time: a long run's records are on disk (gcsim.streamio)."""
    n_seq = res.hw.periphery.sequences
    prev = [0] * n_seq
    for t0, pj in res.ledger.step_action_chunks():
        t1 = t0 + len(pj)
        cols = {"step": np.arange(t0, t1)}
        for seq in range(n_seq):
            end = np.array(res.step_end_ps[seq][t0:t1])
            release_pages(res.step_end_ps[seq])
            cols[f"latency_ps_seq{seq}"] = np.diff(end, prepend=prev[seq])
            prev[seq] = int(end[-1])
        cols["energy_pj_per_sequence"] = pj.sum(axis=1) / n_seq
        yield cols


def write_per_step_csv(path, res: SimResult) -> None:
    with open(path, "w") as f:
        for i, cols in enumerate(per_step_chunks(res)):
            if not i:
                f.write(",".join(cols) + "\n")
            for row in zip(*cols.values()):
                f.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + "\n")


def build_report(res: SimResult, *, trace_info: dict | None = None, values: bool = True,
                 provenance: dict | None = None) -> dict:
    """The report of a run (schema: docs/report-schema.md). Per-layer figures appear once, in
    `layers`; per-step series are not here (`per_step_chunks`, per_step.csv)."""
    hw, s = res.hw, res.hw.shape
    n_seq = hw.periphery.sequences
    T = res.steps
    tokens = T * n_seq
    ledger = res.ledger
    time = _time_stats(res)
    energy = _energy_stats(res)
    by_component: dict[str, float] = {}
    by_action: dict[str, dict] = {}
    layer_action_pj: dict[str, np.ndarray] = {}
    for row in ledger.by_action().values():
        comp, act = component_kind(row["component"]), row["action"]
        by_component[comp] = by_component.get(comp, 0.0) + row["energy_pj"]
        a = by_action.setdefault(act, {"count": 0, "energy_pj": 0.0, "pj_each": row["pj_each"]})
        a["count"] += row["count"]
        a["energy_pj"] += row["energy_pj"]
        layer_action_pj[act] = layer_action_pj.get(act, 0.0) + np.asarray(row["per_layer_pj"])
    for act in costs.charge_pj(hw) or ():   # data-dependent reads: the mean over all of them
        a = by_action.get(act)
        if a and a["count"]:
            a["pj_each"] = a["energy_pj"] / a["count"]
    for block, pj in ledger.static_pj.items():
        by_component[f"static:{block}"] = pj
    clock_ps = hw.timing.clock_period_ps
    area = costs.area(hw)  # cells + periphery per sub-tile and per head (gcsim/costs.py)
    area["per_head_mm2"] = area["total_mm2"] / (s.heads * s.layers)
    per_layer_pj = ledger.per_layer_pj()
    layers = [{"layer": l, "latency_ns": time["layer"][l], "energy_pj": float(per_layer_pj[l]),
               "energy_by_action_pj": {a: float(v[l]) for a, v in sorted(layer_action_pj.items()) if v[l]}}
              for l in range(s.layers)]
    retention = dict(res.retention)
    lost = retention.pop("per_layer", {}).get("lost_reads")
    if lost is not None:
        for row, n in zip(layers, lost):
            row["lost_reads"] = int(n)
    elapsed_s = res.elapsed_ps * 1e-12
    system = system_report(res)   # end to end with the host, beside the GPU-only baseline
    host_pj = energy_split(ledger)["host"] if system else 0.0
    rep = {
        "schema": SCHEMA,
        "gcsim_version": __version__,
        "provenance": provenance or {},
        "hardware": {"name": hw.name, "source": hw.source, "window": s.window},
        "trace": trace_info or {},
        "mode": "functional" if values else "timing-only",
        "steps": T, "sequences": n_seq,
        "time": {
            "elapsed_ps": res.elapsed_ps, "elapsed_cycles": res.elapsed_ps // clock_ps,
            "clock_mhz": hw.timing.clock_mhz,
            "token_latency_ns": dict(time["token"][0]),
            "token_latency_ns_by_sequence": time["token"],
            "layer_latency_ns": time["layer_all"],
            "layer_latency_cycles_mean": time["layer_cycles_mean"],
            "throughput_tokens_per_s": tokens / elapsed_s if elapsed_s else 0.0,
            "critical_path_ns_per_step": {k: v / 1000.0 for k, v in res.path.mean_breakdown(T).items()},
        },
        "energy": {
            "total_pj": ledger.total_pj(),
            "per_token_pj": energy["per_token"],
            # the chip's (and its links'): without the host's energy when a host device is named
            "per_head_per_token_pj": float((energy["step_sum"] - host_pj) / (tokens * s.layers * s.heads)),
            "full_window_steps": energy["full_window_steps"],
            "by_component_pj": dict(sorted(by_component.items())),
            "by_action": dict(sorted(by_action.items())),
            "paper_items": energy["items"],
        },
        "layers": layers,
        "activity": activity_by_kind(res.activity, res.elapsed_ps),
        "retention": retention,
        "area": area,
    }
    if system:
        rep["system"] = system
    return rep


def _time_stats(res: SimResult) -> dict:
    """Token latency per sequence, layer latency per layer and over all (sequence 0), in one
    pass over the step records, chunk by chunk: each figure numpy's over the whole [T] or
    [T, L] series, bit for bit (gcsim.series), none of those series in memory."""
    n_seq, T, L = res.hw.periphery.sequences, res.steps, res.hw.shape.layers
    token = [Stats(T, np.float64) for _ in range(n_seq)]
    for q in range(n_seq):
        prev = 0
        for _, end in in_chunks(res.step_end_ps[q]):
            token[q].add(_in_ns(np.diff(end, prepend=prev)))
            prev = int(end[-1])
    layer = [Stats(T, np.float64) for _ in range(L)]
    layer_all, cycles = Stats(T * L, np.float64), Sum(T * L, np.int64, cast=np.float64)
    for (_, start), (_, end) in zip(in_chunks(res.layer_start_ps[0]), in_chunks(res.layer_end_ps[0])):
        lat = end - start
        cycles.add(lat.reshape(-1))
        lat_ns = _in_ns(lat)
        layer_all.add(lat_ns.reshape(-1))
        for l in range(L):
            layer[l].add(np.ascontiguousarray(lat_ns[:, l]))
    return {"token": [_ns(st) for st in token], "layer": [_ns(st) for st in layer], "layer_all": _ns(layer_all),
            "layer_cycles_mean": float(cycles.mean / res.hw.timing.clock_period_ps)}


def _energy_stats(res: SimResult) -> dict:
    """The paper items per head and token (mean over the full-window steps, or all steps before
    the window fills), the energy per token (mean, min, max, last step) and the sum over steps,
    in one pass over the ledger's per-step rows, chunk by chunk (gcsim.series: numpy's figures
    over the whole [T] series, bit for bit)."""
    hw, s, ledger = res.hw, res.hw.shape, res.ledger
    n_seq, T = hw.periphery.sequences, res.steps
    first_full = max(0, s.window - 1)
    full_window_steps = max(0, T - first_full)
    first = first_full if full_window_steps else 0   # no full-window step: the items over every step
    cols = {name: ledger.columns(acts) for name, acts in hw.energy.items.items()}
    items = {name: Sum(T - first, np.float64) for name in cols}
    per_token, step_sum = Stats(T, np.float64), Sum(T, np.float64)
    for t0, pj in ledger.step_action_chunks():
        skip = max(0, first - t0)
        for name, c in cols.items():   # as EnergyLedger.step_item_pj and step_pj compute them
            items[name].add(pj[:, c].sum(axis=1)[skip:])
        step = pj.sum(axis=1)
        step_sum.add(step)
        per_token.add(step / n_seq)
    per_head = n_seq * s.layers * s.heads
    rows = {name: {"per_head_per_token_pj": float(items[name].mean / per_head), "paper_pj": paper.ITEMS_PJ.get(name),
                   "label": paper.ITEM_LABELS.get(name, name)} for name in cols}
    return {"items": rows, "full_window_steps": full_window_steps, "step_sum": step_sum.value,
            "per_token": {"mean": float(per_token.mean), "min": float(per_token.min), "max": float(per_token.max),
                          "last": float(per_token.last)}}


def over_sequences(n_seq: int) -> str:
    """What the critical path's mean per step is taken over (CriticalPath.mean_breakdown:
    every step of every sequence)."""
    return f" over all {n_seq} sequences" if n_seq > 1 else ""


def _as_seen_from_here(path: str) -> str:
    """A path under the working directory relative to it (traces/x.gctrace from a clone, as
    the README's quickstart shows it); any other path as it is (report.json keeps it whole)."""
    import os
    try:
        rel = os.path.relpath(path)
    except ValueError:                       # another drive
        return path
    return path if rel.startswith(os.pardir) else rel


def format_summary(rep: dict) -> str:
    """The run summary `gcsim run` prints: what is costed, how full the window was, time and
    energy per token (with run totals labelled as such), the paper's items, the area."""
    t, e = rep["time"], rep["energy"]
    steps, n_seq = rep["steps"], rep["sequences"]
    lines = [f"gcsim {rep['gcsim_version']}  hardware {rep['hardware']['name']}  "
             f"{steps} steps x {n_seq} sequence(s)  [{rep['mode']}]"]
    if rep["trace"].get("path"):
        lines.append(f"trace {_as_seen_from_here(rep['trace']['path'])}")
    lines.append("costed: the attention core on the chip (K/V writes, Q.K^T, activation, .V, readout) and its links;")
    if rep.get("system"):
        lines.append(f"        the rest of the model on the host device {rep['system']['device']} (end to end below)")
    else:
        lines.append("        not the model's projections, MLP, embeddings or LM head (they run on the host; docs/replay.md)")
    window = rep["hardware"].get("window")
    if window:
        written = min(steps, window)
        full = e["full_window_steps"]
        lines.append(f"window: {written:,} of {window:,} slots written at the last step ({100 * written / window:.1f} %); "
                     f"{full:,} of {steps:,} steps at a full window")
    tl = t["token_latency_ns"]
    lines += ["", "latency",
              f"  per token   {tl['mean']:10.1f} ns mean  ({tl['min']:.1f} .. {tl['max']:.1f})"
              + ("  (sequence 0)" if n_seq > 1 else ""),
              f"  per layer   {t['layer_latency_ns']['mean']:10.1f} ns mean  "
              f"({t['layer_latency_cycles_mean']:.1f} cycles at {t['clock_mhz']:g} MHz)",
              *[f"  sequence {q}  {st['mean']:10.1f} ns mean per token  ({st['min']:.1f} .. {st['max']:.1f})"
                for q, st in enumerate(t["token_latency_ns_by_sequence"]) if n_seq > 1 and q > 0],
              f"  critical path, mean per step{over_sequences(n_seq)} (ns): "
              + ", ".join(f"{k} {v:.1f}" for k, v in t["critical_path_ns_per_step"].items()),
              f"  run: {t['elapsed_ps'] / 1e6:.3f} us elapsed ({t['elapsed_cycles']} cycles); "
              f"throughput {t['throughput_tokens_per_s']:.4g} tokens/s"]
    r = rep.get("retention") or {}
    if r:
        lines.append(f"  retention: refresh {r['policy']}, {r['refreshes']} refreshes; {r['lost_reads']} of "
                     f"{r['slot_reads']} slot reads had decayed below the loss threshold")
    pt = e["per_token_pj"]
    lines += ["", "energy",
              f"  per token   {pt['mean'] / 1000:10.2f} nJ mean, last step {pt['last'] / 1000:.2f} nJ",
              f"  run total   {e['total_pj'] / 1e6:10.4f} uJ over {steps * n_seq:,} tokens, by component: "
              + ", ".join(f"{k} {v / 1000:.2f} nJ" for k, v in e["by_component_pj"].items())]
    if e["full_window_steps"]:
        basis = f"mean over the {e['full_window_steps']:,} full-window steps"
    else:
        mean_written = sum(min(i + 1, window) for i in range(steps)) / steps if window and steps else 0
        basis = (f"mean over all {steps:,} steps, {mean_written:,.1f} of the window's {window:,} slots written on "
                 f"average: the window never filled, and the paper's figures are for a full one")
    lines += [f"  per head and token, paper items ({basis}):",
              f"    {'item':<52} {'gcsim pJ':>10} {'paper pJ, full window':>22}"]
    for row in e["paper_items"].values():
        ref = f"{row['paper_pj']:22.0f}" if row["paper_pj"] is not None else f"{'-':>22}"
        lines.append(f"    {row['label']:<52} {row['per_head_per_token_pj']:10.1f} {ref}")
    if rep.get("system"):
        lines += format_system(rep["system"])
    a = rep["area"]
    lines += ["", f"area: {a['total_mm2']:.1f} mm2 = {a['gain_cells']:,} gain cells {a['gain_cells_mm2']:.2f} mm2 "
                  f"+ sub-tile periphery {a['sub_tile_periphery_mm2']:.2f} mm2 + head periphery "
                  f"{a['head_periphery_mm2']:.2f} mm2 ({a['per_head_mm2']:.3f} mm2 per head; gcsim/costs.py)"]
    return "\n".join(lines)
