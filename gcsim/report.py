"""Reports of a simulation: a JSON-ready dict and a readable summary.

Energy model: action counts x the energy table of the description (plus static power x
time where given). A step with fewer tokens written than the window reads only the
written slots: K columns and V rows scale with the valid slots, PWM drivers, output
conversions and adds with the sub-tiles holding at least one of them. The paper's
per-item figures are for a full window; they are compared on full-window steps.
"""
from __future__ import annotations

import numpy as np

from . import __version__, paper
from .sim.engine import SimResult


def _stats_ns(values_ps: np.ndarray) -> dict:
    v = np.asarray(values_ps, dtype=np.float64) / 1000.0
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())} if v.size else {}


def build_report(res: SimResult, *, trace_info: dict | None = None, values: bool = True) -> dict:
    hw, s = res.hw, res.hw.shape
    n_seq = hw.periphery.sequences
    T = res.steps
    tokens = T * n_seq
    lat = res.step_latency_ps(0)
    layer_lat = res.layer_end_ps[0] - res.layer_start_ps[0]
    ledger = res.ledger
    step_pj = ledger.step_pj()
    items = ledger.step_item_pj(hw.energy.items)
    full = np.arange(T) >= s.window - 1
    per_head = n_seq * s.layers * s.heads
    item_rows = {}
    for name, arr in items.items():
        sel = arr[full] if full.any() else arr
        item_rows[name] = {"per_head_per_token_pj": float(sel.mean() / per_head),
                           "paper_pj": paper.ITEMS_PJ.get(name),
                           "label": paper.ITEM_LABELS.get(name, name)}
    by_component: dict[str, float] = {}
    for row in ledger.by_action().values():
        comp = row["component"].split(".", 1)[-1] if row["component"][0] in "LP" else row["component"]
        by_component[comp] = by_component.get(comp, 0.0) + row["energy_pj"]
    for block, pj in ledger.static_pj.items():
        by_component[f"static:{block}"] = pj
    clock_ps = hw.timing.clock_period_ps
    copies = s.group_size if hw.periphery.gqa_mapping == "replicated" else 1
    cells = 2 * s.kv_heads * copies * s.window * s.d_head * s.layers * n_seq  # K and V arrays
    area = {"per_head_mm2": hw.area.head_mm2, "heads_mm2": hw.area.head_mm2 * s.heads * s.layers,
            "gain_cells": cells, "gain_cells_mm2": cells * hw.area.gain_cell_um2 * 1e-6}
    return {
        "gcsim_version": __version__,
        "hardware": {"name": hw.name, "source": hw.source},
        "trace": trace_info or {},
        "mode": "functional" if values else "timing-only",
        "steps": T, "sequences": n_seq,
        "time": {
            "elapsed_ps": res.elapsed_ps, "elapsed_cycles": res.elapsed_ps // clock_ps,
            "clock_mhz": hw.timing.clock_mhz,
            "token_latency_ns": _stats_ns(lat),
            "layer_latency_ns": {f"L{l:02d}": _stats_ns(layer_lat[:, l]) for l in range(s.layers)},
            "layer_latency_cycles_mean": float(layer_lat.mean() / clock_ps),
            "throughput_tokens_per_s": tokens / (res.elapsed_ps * 1e-12),
            "critical_path_ns_per_step": {k: v / 1000.0 for k, v in res.path.mean_breakdown(T).items()},
        },
        "per_step": {"latency_ps": lat.tolist(), "energy_pj": (step_pj / n_seq).tolist()},
        "energy": {
            "total_pj": ledger.total_pj(),
            "per_token_pj": _pj_stats(step_pj / n_seq),
            "per_head_per_token_pj": float(step_pj.sum() / (tokens * s.layers * s.heads)),
            "full_window_steps": int(full.sum()),
            "per_layer_pj": ledger.per_layer_pj().tolist(),
            "by_component_pj": dict(sorted(by_component.items())),
            "by_action": ledger.by_action(),
            "paper_items": item_rows,
        },
        "retention": {k: v for k, v in res.retention.items() if k != "per_layer"}
                     | {"per_layer_lost_reads": res.retention.get("per_layer", {}).get("lost_reads")},
        "area": area,
        "activity": res.activity,
    }


def _pj_stats(v):
    return {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)), "last": float(v[-1])}


def format_summary(rep: dict) -> str:
    t, e = rep["time"], rep["energy"]
    lines = [f"gcsim {rep['gcsim_version']}  hardware {rep['hardware']['name']}  "
             f"{rep['steps']} steps x {rep['sequences']} sequence(s)  [{rep['mode']}]"]
    if rep["trace"].get("path"):
        lines.append(f"trace {rep['trace']['path']}")
    tl = t["token_latency_ns"]
    lines += ["", "latency",
              f"  per token   {tl['mean']:10.1f} ns mean  ({tl['min']:.1f} .. {tl['max']:.1f})",
              f"  per layer   {np.mean([v['mean'] for v in t['layer_latency_ns'].values()]):10.1f} ns mean  "
              f"({t['layer_latency_cycles_mean']:.1f} cycles at {t['clock_mhz']:g} MHz)",
              f"  elapsed     {t['elapsed_ps'] / 1e6:10.3f} us  ({t['elapsed_cycles']} cycles); "
              f"throughput {t['throughput_tokens_per_s']:.4g} tokens/s",
              "  critical path per step (ns): " + ", ".join(f"{k} {v:.1f}" for k, v in t["critical_path_ns_per_step"].items())]
    r = rep.get("retention") or {}
    if r:
        lines.append(f"  retention: refresh {r['policy']}, {r['refreshes']} refreshes; {r['lost_reads']} of "
                     f"{r['slot_reads']} slot reads had decayed below the loss threshold")
    pt = e["per_token_pj"]
    lines += ["", "energy",
              f"  per token   {pt['mean'] / 1000:10.2f} nJ mean, last step {pt['last'] / 1000:.2f} nJ "
              f"(total {e['total_pj'] / 1e6:.4f} uJ)",
              "  by component: " + ", ".join(f"{k} {v / 1000:.2f} nJ" for k, v in e["by_component_pj"].items())]
    basis = f"{e['full_window_steps']} full-window steps" if e["full_window_steps"] else \
        "no full-window step: window not yet filled, so lower than the paper's full-window figures"
    lines += [f"  per head and token, paper items ({basis}):",
              f"    {'item':<52} {'gcsim pJ':>10} {'paper pJ':>10}"]
    for row in e["paper_items"].values():
        ref = f"{row['paper_pj']:10.0f}" if row["paper_pj"] is not None else f"{'-':>10}"
        lines.append(f"    {row['label']:<52} {row['per_head_per_token_pj']:10.1f} {ref}")
    a = rep["area"]
    lines += ["", f"area: {a['heads_mm2']:.1f} mm2 for the heads at {a['per_head_mm2']} mm2 each (paper's estimate); "
                  f"{a['gain_cells']:,} gain cells = {a['gain_cells_mm2']:.2f} mm2 of cells"]
    return "\n".join(lines)
