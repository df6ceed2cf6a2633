"""The calibration point: paper-gpt2 replayed and its figures put beside the paper's
(gcsim/paper.py), each with its tolerance; `gcsim paper` prints them. Also the measurement
of the charge model's calibration constants (costs.CAL_*_UA_TMAX) on its calibration trace."""
from __future__ import annotations

import os
import tempfile

import numpy as np

from . import paper
from .report import build_report
from .sim import Simulator
from .traces import open_trace, write_synthetic


def reproduce(hw, trace, functional=False, progress=False) -> dict:
    """The paper's figures (per layer and token, the items per head and token at full window,
    the GPU ratios) from a replay of `trace` on `hw`."""
    res = Simulator(hw, trace, values=functional).run(progress=progress)
    rep = build_report(res, values=functional)
    s = hw.shape
    full = np.arange(res.steps) >= s.window - 1
    if not full.any():
        raise ValueError(f"the trace has {res.steps} steps; the paper's figures need a full window "
                         f"({s.window} steps)")
    step_pj = res.ledger.step_pj()[full]
    layer_ns = float(np.mean(res.layer_end_ps[0] - res.layer_start_ps[0])) / 1000
    token_ns = float(np.mean(res.step_latency_ps(0)[full])) / 1000
    layer_nj = float(step_pj.mean()) / s.layers / 1000
    out = {"layer_ns": layer_ns, "layer_cycles": layer_ns * 1000 / hw.timing.clock_period_ps,
           "clock_mhz": hw.timing.clock_mhz, "model": hw.name,
           "token_us": token_ns / 1000, "layer_nj": layer_nj, "token_uj": float(step_pj.mean()) / 1e6,
           "items_pj": {k: v["per_head_per_token_pj"] for k, v in rep["energy"]["paper_items"].items()},
           "gpus": {}}
    for gpu, base in paper.GPUS.items():
        out["gpus"][gpu] = {"speedup": base["latency_us"] * 1000 / layer_ns,
                            "energy_ratio": base["energy_mj"] * 1e6 / layer_nj}
    return out


def reproduce_synthetic(hw, steps: int = 1100, seed: int = 0, functional=False, progress=False) -> dict:
    """reproduce() on a seeded synthetic trace of the description's shape (a temporary file)."""
    if steps < hw.shape.window:
        raise ValueError(f"--steps {steps} is shorter than the window ({hw.shape.window})")
    s = hw.shape
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "synthetic.gctrace")
        write_synthetic(path, layers=s.layers, heads=s.heads, kv_heads=s.kv_heads, d_head=s.d_head,
                        steps=steps, seed=seed)
        with open_trace(path) as trace:
            return reproduce(hw, trace, functional, progress)


def figures(r: dict, tolerance_pct: float | None = None) -> list[tuple]:
    """(key, label, gcsim, paper, allowed |difference|) of every published figure."""
    short = {"phi_qk": "phi(Q.K^T)", "phi_v": "phi(S).V", "digital_routing": "digital and routing", "dacs": "DACs"}
    rows = [("layer_ns", "latency per layer (ns)", r["layer_ns"], paper.LAYER_NS),
            ("layer_cycles", f"  in cycles at {r['clock_mhz']:g} MHz (paper: 65 ns at this clock)", r["layer_cycles"],
             paper.LAYER_NS * r["clock_mhz"] / 1000),
            ("token_us", "latency per token, 12 layers (us)", r["token_us"], paper.TOKEN_US)]
    for k, v in r["items_pj"].items():
        rows.append((k, f"{short.get(k, k)} per head and token (pJ)", v, paper.ITEMS_PJ[k]))
    rows += [("head_total_pj", "total per head (pJ)", sum(r["items_pj"].values()), paper.HEAD_TOTAL_PJ),
             ("layer_nj", "energy per layer, 12 heads (nJ)", r["layer_nj"], paper.LAYER_NJ),
             ("token_uj", "attention energy per token (uJ)", r["token_uj"], paper.TOKEN_UJ)]
    return [(k, name, got, ref, paper.TOLERANCE[k] if tolerance_pct is None else abs(ref) * tolerance_pct / 100)
            for k, name, got, ref in rows]


def off_figures(r: dict, tolerance_pct: float | None = None) -> list[str]:
    """The labels of the figures further from the paper's than their tolerance."""
    return [name.strip() for _, name, got, ref, tol in figures(r, tolerance_pct) if not abs(got - ref) <= tol]


def calibration_charges(progress: bool = False) -> tuple[float, float]:
    """Measure (costs.CAL_K_COLUMN_UA_TMAX, costs.CAL_V_ROW_UA_TMAX) on costs.CALIBRATION_TRACE:
    the mean integrated |I| x pulse width per K column read and per V row read at full window."""
    from . import costs
    from .hardware import load_hardware   # below: the calibration trace's own description
    cal = costs.CALIBRATION_TRACE
    hw = load_hardware(cal["model"]).derive(costs={"array_read": "charge"})
    s = hw.shape
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "calibration.gctrace")
        write_synthetic(path, layers=s.layers, heads=s.heads, kv_heads=s.kv_heads, d_head=s.d_head,
                        steps=cal["steps"], seed=cal["seed"])
        with open_trace(path) as trace:
            sim = Simulator(hw, trace)
            sim.run(progress=progress)
    full = np.arange(sim.steps) >= s.window - 1
    charge = sum(t.read_charge_ua_tmax[full].sum(axis=0) for t in sim.tiles)   # [K, V] summed
    reads = int(full.sum()) * s.layers * s.heads * s.window * hw.periphery.sequences
    return float(charge[0] / reads), float(charge[1] / reads)
