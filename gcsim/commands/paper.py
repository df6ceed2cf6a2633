"""`gcsim paper`: the simulated figures beside the paper's budgets and GPU ratios.

The paper's figures are the calibration point of models/paper-gpt2.yaml: its phase times and
energy table are the paper's 65 ns and 1120 / 700 / 4000 / 330 pJ split into actions, so
landing on them checks that the counts and the accounting are consistent; it is not an
independent prediction. Other designs are costed from that point by the laws of
gcsim/costs.py (docs/cost-model.md).

Replays a synthetic GPT-2-shaped trace (seeded; generated in a temporary file unless
--trace is given) of at least a full window on models/paper-gpt2.yaml and prints the
simulated figures beside the published ones (docs/paper-model.md, "Published budgets"). Energy counts do not
depend on the values, so the replay is timing-only unless --functional is given; with
`-s costs.array_read=charge` (reads charged for the charge they integrate) it must be
--functional, and the default trace is that charge model's calibration trace.

Each published figure has a tolerance: half a unit of the last digit the paper gives (65 ns:
+-0.5 ns; 0.89 uJ: +-0.005 uJ), or --tolerance PCT percent of it. The command exits 1 when a
figure is further from the paper's than that, and its table marks which (OFF). The GPU
ratios are printed beside the paper's rounded claims and not checked.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

from .. import paper
from ..errors import EXIT_MISMATCH, EXIT_OK, silence_stdout
from ..report import build_report
from ..sim import Simulator
from ..sim import check_fit
from ..traces import open_trace, write_synthetic
from ..progress import add_feedback, say, wanted
from .common import add_overrides, load_model


def register(sub):
    p = sub.add_parser("paper", help="the simulated figures beside the paper's budgets (the calibration point) and GPU ratios", description=__doc__)
    p.add_argument("-m", "--model", default="paper-gpt2", help="hardware description (default: %(default)s)")
    p.add_argument("--trace", default=None, help="a GPT-2-shaped trace instead of a generated one")
    p.add_argument("--steps", type=int, default=1100, help="synthetic steps (>= window; default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--functional", action="store_true", help="compute values too (slower)")
    p.add_argument("--tolerance", type=_percent, default=None, metavar="PCT",
                   help="allow each figure PCT percent off the paper's (default: half a unit of the paper's "
                        "last digit); exit 1 beyond it")
    add_overrides(p)
    add_feedback(p)
    p.set_defaults(func=main)


def reproduce(hw, trace, functional=False, progress=False) -> dict:
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


def _percent(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 1 or 0.5, found {text!r}") from None
    if not 0 <= v < 1e6:   # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"expected 0 <= PCT < 1e6, found {text!r}")
    return v


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


def format_paper(r: dict, tolerance_pct: float | None = None) -> str:
    rows = figures(r, tolerance_pct)
    lines = [f"{r['model']} calibrated to the paper's budgets (its phase times and energy table are the "
             f"paper's; docs/cost-model.md)", "",
             f"{'figure':<52} {'gcsim':>12} {'paper':>10} {'diff':>7} {'tolerance':>10}"]
    for _, name, got, ref, tol in rows:
        mark = "" if abs(got - ref) <= tol else "  OFF"
        lines.append(f"{name:<52} {got:12.4g} {ref:10.4g} {100 * (got - ref) / ref:+6.2f}% {tol:10.3g}{mark}")
    off = off_figures(r, tolerance_pct)
    basis = "half a unit of the paper's last digit" if tolerance_pct is None else f"{tolerance_pct:g}% of the paper's"
    lines.append("")
    lines.append(f"all {len(rows)} figures within their tolerance ({basis})" if not off else
                 f"{len(off)} of {len(rows)} figures off the paper's by more than their tolerance ({basis}): "
                 + "; ".join(off))
    lines.append("")
    lines.append(f"{'GPU baseline (attention, 1 layer x 12 heads)':<46} {'speed-up':>10} {'energy ratio':>14}"
                 f"   paper's rounded claim (not checked)")
    for gpu, g in r["gpus"].items():
        s, e = paper.CLAIMS[gpu]
        lines.append(f"{gpu:<46} {g['speedup']:9.0f}x {g['energy_ratio']:13.0f}x   ~{s:,}x / ~{e:,}x")
    return "\n".join(lines)


def main(args) -> int:
    hw = load_model(args)
    if args.trace:
        trace = open_trace(args.trace)
        check_fit(hw, trace)
        rep = reproduce(hw, trace, args.functional, wanted(args))
    else:
        if args.steps < hw.shape.window:
            raise ValueError(f"--steps {args.steps} is shorter than the window ({hw.shape.window})")
        s = hw.shape
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "synthetic.gctrace")
            write_synthetic(path, layers=s.layers, heads=s.heads, kv_heads=s.kv_heads, d_head=s.d_head,
                            steps=args.steps, seed=args.seed)
            with open_trace(path) as trace:
                rep = reproduce(hw, trace, args.functional, wanted(args))
    verdict = EXIT_MISMATCH if off_figures(rep, args.tolerance) else EXIT_OK
    try:
        say(args, format_paper(rep, args.tolerance))
        sys.stdout.flush()
    except BrokenPipeError:  # `gcsim paper | head -3`: the verdict is still the exit status
        silence_stdout()
    return verdict
