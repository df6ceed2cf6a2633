"""One sweep point, run in a worker process (local pool or Ray): build the description,
open the trace, simulate through the public entry points (Simulator + build_report, and
validate() for the validate mode) and flatten the report into one table row. The eval mode
runs a language model with the chip in its loop instead (gcsim.sweeps.evalpoint).

Everything a worker receives and returns is plain data (dicts, strings, numbers), so the
same function runs under concurrent.futures and Ray. A point that raises is returned as
status 'failed' with the message: the other points go on.
"""
from __future__ import annotations

import os
import re
import time
import traceback


def _name(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def report_metrics(rep: dict) -> dict:
    """The table columns of one `build_report` report (units in the names)."""
    t, e = rep["time"], rep["energy"]
    tokens = rep["steps"] * rep["sequences"]
    m = {"steps": rep["steps"], "sequences": rep["sequences"],
         "latency_per_token_ns": t["token_latency_ns"]["mean"],
         "latency_per_token_ns_max": t["token_latency_ns"]["max"],
         "latency_per_layer_ns": t["layer_latency_ns"]["mean"],  # report schema gcsim.report/2
         "latency_per_layer_cycles": t["layer_latency_cycles_mean"],
         "throughput_tokens_per_s": t["throughput_tokens_per_s"],
         "elapsed_ns": t["elapsed_ps"] / 1000.0,
         "energy_per_token_pj": e["per_token_pj"]["mean"],
         "energy_per_token_pj_last": e["per_token_pj"]["last"],
         "energy_per_head_per_token_pj": e["per_head_per_token_pj"],
         "full_window_steps": e["full_window_steps"]}
    for item, row in e["paper_items"].items():
        m[f"energy_item.{_name(item)}_pj"] = row["per_head_per_token_pj"]
    for item, ns in t["critical_path_ns_per_step"].items():
        m[f"path.{_name(item)}_ns"] = ns
    stalls: dict = {}
    for comp in rep["activity"].values():
        for cause, ps in comp.get("stall_causes_ps", {}).items():
            stalls[cause] = stalls.get(cause, 0) + ps
    for cause in sorted(stalls):
        m[f"stall.{_name(cause)}_ns_per_token"] = stalls[cause] / 1000.0 / tokens
    a = rep["area"]
    m.update({"area_mm2": a["total_mm2"], "gain_cells": a["gain_cells"], "gain_cells_mm2": a["gain_cells_mm2"]})
    sysrep = rep.get("system")   # with a host device: end to end beside the GPU-only baseline (docs/system.md)
    if sysrep:
        for key, v in sysrep["per_token_ns"].items():
            m[f"system.{key}_ns_per_token"] = v
        for key, v in sysrep["per_token_pj"].items():
            m[f"system.{key}_pj_per_token"] = v
        m.update({"system.gpu_only_ns_per_token": sysrep["gpu_only"]["per_token_ns"],
                  "system.gpu_only_pj_per_token": sysrep["gpu_only"]["per_token_pj"],
                  "system.speedup": sysrep["speedup"], "system.energy_ratio": sysrep["energy_ratio"]})
    return m


def _softmax_distance(hw, trace, outputs, T) -> dict:
    """The hardware outputs' distance from ideal softmax attention, averaged over layers, as
    `gcsim validate` reports it (cosine similarity; relative RMS error after a per-head
    affine fit) against the same ideal (the trace's own softmax while the window holds the
    whole sequence, else the sliding-window softmax reference)."""
    import numpy as np

    from ..validation import _affine_fit_distance, mean_cosine
    from ..reference import layer_attention
    cos, rmse = [], []
    for l in range(hw.shape.layers):
        out = np.asarray(outputs[:T, l], np.float64)
        if trace.attn_out is not None and T <= hw.shape.window:
            ideal = np.asarray(trace.attn_out[:T, l], np.float64)
        else:
            q, k, v = (np.asarray(a[:T, l], np.float64) for a in (trace.q, trace.k, trace.v))
            ideal = layer_attention(q, k, v, hw, variant="softmax", stages=False).out
        cos.append(mean_cosine(out, ideal))
        rmse.append(_affine_fit_distance(out, ideal))
    return {"out_rel_rmse_vs_softmax": float(np.mean(rmse)), "out_cosine_vs_softmax": float(np.mean(cos))}


def simulate_point(task: dict) -> dict:
    """The metrics of one point (raises on failure)."""
    import numpy as np

    from ..hardware import from_dict
    from ..report import build_report
    from ..sim import Simulator
    from ..traces import open_trace

    mode, steps = task["mode"], task["steps"]
    if mode == "eval":
        from .evalpoint import eval_metrics
        return eval_metrics(task)
    hw = from_dict(task["description"], source=task.get("label", "<sweep point>"))
    trace = open_trace(task["trace"], verify=False)     # verified once by the parent
    T = trace.steps if steps is None else min(steps, trace.steps)
    outputs = None
    if mode == "functional":
        s = hw.shape
        outputs = np.zeros((T, s.layers, s.heads, s.d_head), np.float32)
    res = Simulator(hw, trace, values=mode == "functional", steps=T, outputs=outputs).run()
    metrics = report_metrics(build_report(res, values=mode == "functional"))
    if mode == "functional":
        metrics.update(_softmax_distance(hw, trace, outputs, T))
    elif mode == "validate":
        from ..validation import validate
        rep = validate(hw, trace, T)
        layers = rep["layers"]
        metrics.update({
            "validate_pass": bool(rep["pass"]),
            "code_mismatches": sum(r["exact"]["code_mismatches"] for r in layers),
            "codes": sum(r["exact"]["codes"] for r in layers),
            "out_max_abs_error_vs_reference": max(r["exact"]["out"]["max_abs"] for r in layers),
            "nominal_code_mismatches": sum(r["nominal"]["code_mismatches"] for r in layers),
            "out_rel_rmse_vs_softmax": float(np.mean([r["vs_softmax"]["affine_fit_rel_rmse"] for r in layers])),
            "out_cosine_vs_softmax": float(np.mean([r["vs_softmax"]["cosine"] for r in layers])),
        })
    return metrics


def run_point(task: dict) -> dict:
    """Run one point; never raises for a failure of the point itself."""
    t0 = time.perf_counter()
    try:
        rec = {"status": "ok", "error": None, "metrics": simulate_point(task)}
    except Exception as exc:  # a failed point is recorded, the sweep goes on
        msg = " ".join(str(exc).split()) or type(exc).__name__
        rec = {"status": "failed", "error": f"{type(exc).__name__}: {msg}", "metrics": {},
               "traceback": traceback.format_exc(limit=20)}
    from .cache import source_hash
    rec["wall_s"] = time.perf_counter() - t0
    rec["pid"] = os.getpid()
    rec["gcsim_source"] = source_hash()     # the runner checks the worker ran the same code
    return rec
