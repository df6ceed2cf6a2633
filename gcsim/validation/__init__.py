"""`gcsim validate`'s comparisons (the command, gcsim/commands/validate.py, parses and prints).

- (a), (b) and the distance from softmax: the simulator's values against the reference model
  (values.py), given the ages of the stored values that the witness computed;
- the witness (gcsim/witness/): the simulator's times, busy and stalled time per component
  and cause, refresh and retention counts, the ages its reads used and its energy per
  component and action, against an independent model of the description (against_witness.py);
- invariants of the simulator's own records (gcsim/sim/schedule.py): a read never before its
  write, no value read at a negative age, no resource serving two claims at once; and its own
  accounting check (busy + stalled + idle = elapsed with no overlapping intervals, every
  step's critical path adding up): a simulator that stops there fails (i), exit 1, instead
  of crashing validate.

A description whose policy brings no witness rule (gcsim/witness/rules.py) gets the value
comparison with the simulator's own ages and the invariants; the report says that the
witness's checks are not available, and why.
"""
from __future__ import annotations

import numpy as np

from ..budget import check_run
from ..errors import UsageError
from ..parallel import default_jobs, worth_it
from ..sim import AccountingError, Simulator
from ..sim.schedule import check as invariants
from ..witness import Unavailable, schedule
from ..witness.energy import count as energy_count
from . import against_witness
from .values import (BLOCK_STEPS, FLOAT_TOL, BlockComparisons, LayerComparison, SoftmaxDistance,  # noqa: F401
                     StageRecorder, as_codes, code_mismatches, compare_block, mean_cosine, _affine_fit_distance)

WITNESS_CHECKS = ("times", "busy", "stalls", "retention", "ages", "energy")


def validate(hw, trace, steps=None, stage_steps=32, progress=False, jobs=1, device="cpu", block=BLOCK_STEPS):
    """The report of the comparison. The reference runs block by block (`block` steps of a
    layer at a time) while the simulation goes on, so memory does not grow with the trace.
    jobs: worker processes for those reference blocks on a trace file long enough to gain from
    it (parallel.worth_it; None: every core; 1: here). device: where the simulator's bank reads
    run (gcsim/kernels/device.py)."""
    if isinstance(stage_steps, bool) or not isinstance(stage_steps, (int, np.integer)) or stage_steps < 1:
        raise UsageError(f"--stage-steps must be >= 1 (S and phi of at least one step are compared), "
                         f"found {stage_steps!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise UsageError(f"--steps must be >= 1, found {steps!r}")
    hw64 = hw.derive(numerics={"dtype": "float64"})
    T = trace.steps if steps is None else min(steps, trace.steps)
    sample = np.unique(np.linspace(0, T - 1, min(stage_steps, T)).round().astype(int))
    s = hw.shape
    B = min(block, T)
    workers = (default_jobs() if jobs is None else jobs) if worth_it(jobs, T, hw, trace) else 1
    in_flight = 1 + (2 * workers if workers > 1 else 0)
    check_run(hw64, T, extra={"stage records": (   # a block per layer being filled, blocks in flight
        8 * (s.layers + in_flight) * (B * s.heads * s.d_head * (s.n_sub_tiles + 1) + B * s.window
                                      + 4 * B * s.heads * s.window),
        "block steps x shape.heads x shape.window (records and reference of a block)")})
    try:   # first the witness: the ages the reference model is given come from it
        witness, unavailable = schedule(hw64, T), None
    except Unavailable as exc:
        witness, unavailable = None, str(exc)
    code_step = 2.0 / (hw.numerics.out_levels - 1) if hw.numerics.out_levels else None
    layers = [LayerComparison() for _ in range(s.layers)]
    ctx = {"trace": trace, "hw64": hw64, "T": T, "sample": sample, "code_step": code_step}
    stopped = None
    with BlockComparisons(ctx, layers, workers) as compare:
        rec = StageRecorder(hw64, T, sample, compare.submit, block=B, witness=witness)
        try:
            res = Simulator(hw64, trace, steps=T, stages_hook=rec, check=True, device=device).run(progress=progress)
        except AccountingError as exc:   # the simulator's own invariant (busy + stalled + idle, the path)
            stopped = str(exc)
    report = {"steps": T, "stage_steps": sample.tolist(), "layers": []}
    report["ages_from"] = "witness" if witness is not None else "simulator"
    if stopped is not None:
        report["invariants"] = {"mode": "invariants", "pass": False,
                                "violations": [f"the simulator stopped at its own accounting check: {stopped}"]}
        report["witness"] = {"available": witness is not None, "stopped": True, "pass": True,
                             "reason": "not compared: the simulator stopped, see (i)",
                             "checks": [{"name": n, "kind": "not run", "pass": None} for n in WITNESS_CHECKS]}
    else:
        report["invariants"] = invariants(res, closed_form=False)
        report["witness"] = witness_report(res, witness, rec, hw64, unavailable)
    if rec.first_negative_age is not None:  # the reference itself was given ages clipped at 0
        q, t, l, m, ps = rec.first_negative_age
        report["invariants"]["violations"].append(f"sequence {q} step {t} layer {l} slot {m}: read at a negative "
                                                  f"age {ps} ps")
        report["invariants"]["pass"] = False
    ok = report["invariants"]["pass"] and report["witness"]["pass"]
    for l, comp in enumerate(layers):
        row = comp.row(l, code_step)
        ok &= row["pass"]
        report["layers"].append(row)
    report["pass"] = bool(ok)
    report["code_step"] = code_step
    report["tolerance"] = {"codes": "exact" if code_step is not None else f"{FLOAT_TOL:g} x max(1, scale)",
                           "S, phi, out": f"{FLOAT_TOL:g} x max(1, scale)"}
    return report


def witness_report(res, witness, recorder, hw, unavailable=None) -> dict:
    """The witness's checks of a finished run (`witness`: its Schedule, None if unavailable)."""
    if witness is None:
        return {"available": False, "reason": unavailable, "pass": True,
                "checks": [{"name": n, "kind": "not available", "pass": None} for n in WITNESS_CHECKS]}
    times = against_witness.times(res, witness)
    busy, stalls = against_witness.statistics(res, witness)
    checks = [times, busy, stalls, against_witness.retention(res, witness), against_witness.ages(recorder),
              against_witness.energy(res.ledger, energy_count(hw, witness))]
    out = {"available": True, "reason": None, "checks": checks, "pass": all(c["pass"] for c in checks),
           "ties": [list(t) for t in witness.ties]}
    note = against_witness.tie_note(times, witness.ties) if not out["pass"] else None
    if note:
        out["note"] = note
    return out
