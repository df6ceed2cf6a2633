"""`gcsim run`: replay a trace on a hardware description.

Writes OUT/outputs.npy (float32 [steps, layers, heads, d_head], functional outputs of
sequence 0), OUT/report.json and OUT/summary.txt, atomically (a failed run leaves OUT as it was); OUT is
replaced only if gcsim wrote it (see gcsim/outdir.py). With no arguments: the shipped SmolLM2 trace on models/smollm2.yaml.
"""
from __future__ import annotations

import numpy as np

from ..report import build_report, format_summary, write_per_step_csv
from ..sim import Simulator
from ..streamio import NpyWriter
from ..progress import add_feedback, say, wanted
from .common import provenance_of, add_inputs, add_output, open_output, load_inputs, trace_info, write_json


def register(sub):
    p = sub.add_parser("run", help="replay a trace through the simulated chip (the main job)",
                       description=__doc__)
    add_inputs(p)
    add_output(p, "out/run")
    p.add_argument("--timing-only", action="store_true", help="skip values, keep timing and counts")
    add_feedback(p)
    p.set_defaults(func=main)


def simulate(hw, trace, args, outputs=None):
    sim = Simulator(hw, trace, values=not args.timing_only, steps=args.steps, outputs=outputs,
                    device=getattr(args, "device", "cpu"))
    return sim.run(progress=wanted(args))


def main(args) -> int:
    hw, trace = load_inputs(args)
    steps = trace.steps if args.steps is None else min(args.steps, trace.steps)
    s = hw.shape
    with open_output(args) as tmp:
        outputs = None
        if not args.timing_only:
            # written row by row (pwrite), not through a map whose pages would stay resident
            outputs = NpyWriter(tmp / "outputs.npy", (steps, s.layers, s.heads, s.d_head), np.float32)
        try:
            res = simulate(hw, trace, args, outputs)
        finally:
            if outputs is not None:
                outputs.close()
        rep = build_report(res, trace_info=trace_info(trace), values=not args.timing_only,
                           provenance=provenance_of(args, hw, trace))
        write_json(tmp / "report.json", rep)
        write_per_step_csv(tmp / "per_step.csv", res)
        text = format_summary(rep)
        (tmp / "summary.txt").write_text(text + "\n")
    say(args, text)
    say(args, f"\nwrote {args.out}/ (report.json, per_step.csv, summary.txt{', outputs.npy' if not args.timing_only else ''})")
    return 0
