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
import sys

from .. import calibration, paper
from ..errors import EXIT_MISMATCH, EXIT_OK, silence_stdout
from ..sim import check_fit
from ..traces import open_trace
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


def _percent(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 1 or 0.5, found {text!r}") from None
    if not 0 <= v < 1e6:   # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"expected 0 <= PCT < 1e6, found {text!r}")
    return v


def format_paper(r: dict, tolerance_pct: float | None = None) -> str:
    rows = calibration.figures(r, tolerance_pct)
    lines = [f"{r['model']} calibrated to the paper's budgets (its phase times and energy table are the "
             f"paper's; docs/cost-model.md)", "",
             f"{'figure':<52} {'gcsim':>12} {'paper':>10} {'diff':>7} {'tolerance':>10}"]
    for _, name, got, ref, tol in rows:
        mark = "" if abs(got - ref) <= tol else "  OFF"
        lines.append(f"{name:<52} {got:12.4g} {ref:10.4g} {100 * (got - ref) / ref:+6.2f}% {tol:10.3g}{mark}")
    off = calibration.off_figures(r, tolerance_pct)
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
        rep = calibration.reproduce(hw, trace, args.functional, wanted(args))
    else:
        rep = calibration.reproduce_synthetic(hw, args.steps, args.seed, args.functional, wanted(args))
    verdict = EXIT_MISMATCH if calibration.off_figures(rep, args.tolerance) else EXIT_OK
    try:
        say(args, format_paper(rep, args.tolerance))
        sys.stdout.flush()
    except BrokenPipeError:  # `gcsim paper | head -3`: the verdict is still the exit status
        silence_stdout()
    return verdict
