"""`gcsim validate`: the simulator against the reference model, stage by stage, and its times,
statistics and energy against the witness, an independent model of the description.

(a) exact: the reference model given the ages of the stored values that the witness
    computed (every slot's age at every read, refreshes included), both in float64. S, phi,
    per-sub-tile outputs and outputs must agree, or the command exits 1: quantized output
    codes (out_levels set) exactly, unquantized values (out_levels null) and S, phi, outputs
    within a relative tolerance of 1e-9 of the stage's scale (float64 rounding differences of
    summation order are ~1e-16). At least one step is compared.
(t) the witness (gcsim/witness/, docs/validation.md): a deliberately simple model of the
    description's phases, resources and policy rules, sharing no code with the simulator.
    Exact comparison of: when every layer step began, wrote, read and ended, and the step
    ends (times); busy time per component (busy); stalled time per component and cause
    (stalls); refreshes and lost reads (retention); the ages every sequence's reads used
    (ages); energy per component and action (energy: counts exact, pJ within 1e-12). Any
    difference exits 1. A policy without a witness rule: these checks are not available
    (said so), and (a) uses the simulator's own ages.
(i) invariants of the simulator's records: a read never starts before its write ends, no
    value is read at a negative age, a resource never serves two claims at once, and the
    simulator's own accounting check (busy + stalled + idle = elapsed, every step's critical
    path adds up): a simulator stopping there fails (i) and exits 1.
(b) nominal: the reference at the description's nominal token period, which reports how
    much the chip's real timing moved the outputs.
Also reported per layer: the hardware output's distance from ideal softmax attention
(the trace's recorded softmax outputs, else the sliding-window softmax reference), as the
cosine similarity and the relative RMS error after a per-head least-squares affine fit
(what a trained output scaler could absorb).
The comparison runs as the simulation goes, block by block (512 steps of a layer, their
window's tokens included; gcsim.reference.steps_block), keeping running figures: memory does
not grow with the trace length, and the figures are those of the whole trace at once.
The work is done in gcsim/validation/; this command parses and prints.
"""
from __future__ import annotations

import sys

from ..errors import EXIT_MISMATCH, EXIT_OK, silence_stdout
from ..parallel import add_jobs_option, check_jobs
from ..progress import add_feedback, say, wanted
from ..outdir import check_json_output, write_json_output
from ..validation import (BLOCK_STEPS, FLOAT_TOL, BlockComparisons, LayerComparison, SoftmaxDistance,  # noqa: F401
                          StageRecorder, _affine_fit_distance, as_codes, code_mismatches, compare_block,
                          mean_cosine, validate)
from .common import provenance_of, add_inputs, load_inputs


def register(sub):
    p = sub.add_parser("validate", help="compare the simulator with the reference model", description=__doc__)
    add_inputs(p)
    p.add_argument("--stage-steps", type=int, default=32,
                   help="steps (evenly spaced, last included) whose S and phi are compared, >= 1 (default 32)")
    p.add_argument("--json", default=None, help="also write the comparison as JSON here")
    add_jobs_option(p)
    add_feedback(p)
    p.set_defaults(func=main)


def format_validation(rep) -> str:
    lines = [f"validate: {rep['steps']} steps, S/phi compared on {len(rep['stage_steps'])} steps",
             f"{'layer':>5} | {'(a) exact: max|dS|':>18} {'max|dphi|':>10} {'max|dout|':>10} {'code diffs':>10} | "
             f"{'(b) nominal: max|dout|':>22} {'code diffs':>10} | {'softmax: cos':>12} {'fit rRMSE':>9}"]
    for r in rep["layers"]:
        e, n, s = r["exact"], r["nominal"], r["vs_softmax"]
        lines.append(f"{r['layer']:>5} | {e['S']['max_abs']:18.2e} {e['phi']['max_abs']:10.2e} {e['out']['max_abs']:10.2e} "
                     f"{e['code_mismatches']:>10} | {n['out']['max_abs']:22.3e} {n['code_mismatches']:>10} | "
                     f"{s['cosine']:12.4f} {s['affine_fit_rel_rmse']:9.4f}")
    total = sum(r["exact"]["codes"] for r in rep["layers"])
    nominal = sum(r["nominal"]["code_mismatches"] for r in rep["layers"])
    exact_ok = all(r["pass"] for r in rep["layers"])
    lines.append(f"(a) exact, the {rep['ages_from']}'s ages: {'PASS' if exact_ok else 'FAIL'} "
                 f"({sum(r['exact']['code_mismatches'] for r in rep['layers'])} of {total} codes differ; "
                 f"codes compared {rep['tolerance']['codes']}, S/phi/out within {rep['tolerance']['S, phi, out']})")
    lines += format_witness(rep["witness"])
    inv = rep["invariants"]
    lines.append(f"(i) invariants of the simulator's records: {'PASS' if inv['pass'] else 'FAIL'}"
                 + "".join(f"\n    {v}" for v in inv["violations"][:5]))
    lines.append(f"(b) nominal token period: {nominal} of {total} output codes moved by the chip's real timing")
    lines.append(f"softmax distance source: {rep['layers'][0]['vs_softmax']['source']}")
    return "\n".join(lines)


def format_witness(w) -> list[str]:
    if w.get("stopped"):
        return ["(t) witness: not compared (the simulator stopped at its own accounting check, see (i))"]
    if not w["available"]:
        return [f"(t) witness: NOT AVAILABLE ({w['reason']}): times, busy, stalls, retention, ages and energy "
                f"not checked; (a) used the simulator's own ages"]
    lines = [f"(t) witness (gcsim/witness/): {'PASS' if w['pass'] else 'FAIL'}"]
    for c in w["checks"]:
        verdict = "PASS" if c["pass"] else f"FAIL ({c['differences']} differ)"
        lines.append(f"    {c['name']:<10} {c['kind']}, {c['compared']} compared: {verdict}")
        lines += [f"      {x}" for x in c["first"]]
        if c.get("note"):
            lines.append(f"      ({c['note']})")
    if w.get("note"):
        lines.append(f"    note: {w['note']}")
    return lines


def main(args) -> int:
    check_jobs(args.jobs)
    if args.json:                    # before the (long) comparison: never a user's file (gcsim/outdir.py)
        check_json_output(args.json, "validate", "--json", what="a validate report")
    hw, trace = load_inputs(args)
    rep = validate(hw, trace, args.steps, args.stage_steps, progress=wanted(args), jobs=args.jobs,
                   device=args.device)
    rep["provenance"] = provenance_of(args, hw, trace)
    verdict = EXIT_OK if rep["pass"] else EXIT_MISMATCH
    if args.json:
        write_json_output(args.json, rep, "validate")
    try:
        say(args, format_validation(rep))
        sys.stdout.flush()
    except BrokenPipeError:  # `gcsim validate | head -1`: the verdict is still the exit status
        silence_stdout()
    return verdict
