"""`gcsim validate`: the simulator against the reference model, stage by stage.

(a) exact: the reference model given the ages the simulator saw (every slot's age at
    every read, refreshes included), both in float64. S, phi, per-sub-tile outputs and
    outputs must agree, or the command exits 1: quantized output codes (out_levels set)
    exactly, unquantized values (out_levels null) and S, phi, outputs within a relative
    tolerance of 1e-9 of the stage's scale (float64 rounding differences of summation
    order are ~1e-16). At least one step must be compared.
(t) timing: the write and read times the simulator produced against a schedule computed
    separately from the description (gcsim/sim/schedule.py): a closed formula per layer
    step for contention-free descriptions, else invariants (a read never starts before its
    write ends, no negative age, a resource never serves two at once). A mismatch exits 1:
    (a) alone would pass a simulator that stamps its writes at the wrong time, since it
    takes the ages from the simulator.
(b) nominal: the reference at the description's nominal token period, which reports how
    much the chip's real timing moved the outputs.
Also reported per layer: the hardware output's distance from ideal softmax attention
(the trace's recorded softmax outputs, else the sliding-window softmax reference), as the
cosine similarity and the relative RMS error after a per-head least-squares affine fit
(what a trained output scaler could absorb).
"""
from __future__ import annotations

import copy
import functools
import sys

import numpy as np

from ..budget import check_run
from ..errors import EXIT_MISMATCH, EXIT_OK, UsageError, silence_stdout
from ..parallel import add_jobs_option, check_jobs, map_layers, worth_it
from ..reference import layer_attention
from ..sim.schedule import check as timing_check
from ..traces import open_trace
from ..sim import Simulator
from ..progress import add_feedback, iterate, say, wanted
from .common import provenance_of, add_inputs, load_inputs, write_json

FLOAT_TOL = 1e-9  # relative to max(1, the stage's scale): float64 rounding, with margin


def register(sub):
    p = sub.add_parser("validate", help="compare the simulator with the reference model", description=__doc__)
    add_inputs(p)
    p.add_argument("--stage-steps", type=int, default=32,
                   help="steps (evenly spaced, last included) whose S and phi are compared, >= 1 (default 32)")
    p.add_argument("--json", default=None, help="also write the comparison as JSON here")
    add_jobs_option(p)
    add_feedback(p)
    p.set_defaults(func=main)


class StageRecorder:
    """Keeps what the simulator computed: codes and outputs of every step, S and phi of
    sampled steps."""

    def __init__(self, hw, steps, sample):
        s = hw.shape
        levels = hw.numerics.out_levels
        # quantized outputs are k x step: keep k as int8 (33 codes), else the float values
        self.code_step = 2.0 / (levels - 1) if levels else None
        self.codes = np.zeros((steps, s.layers, s.heads, s.n_sub_tiles, s.d_head),
                              np.int8 if levels else np.float64)
        self.out = np.zeros((steps, s.layers, s.heads, s.d_head))
        self.sample = {int(t): i for i, t in enumerate(sample)}
        self.S = np.zeros((len(sample), s.layers, s.heads, s.window))
        self.phi = np.zeros_like(self.S)
        self.ages_ps = np.zeros((steps, s.layers, s.window), np.int64)

    def as_codes(self, values):
        return values if self.code_step is None else np.round(values / self.code_step)

    def code_mismatches(self, got, ref_codes) -> int:
        """Quantized codes are integers: compared exactly. Unquantized values: within
        FLOAT_TOL of max(1, their scale)."""
        if self.code_step is not None:
            return int((got != ref_codes).sum())
        tol = FLOAT_TOL * max(1.0, float(np.abs(ref_codes).max()) if ref_codes.size else 0.0)
        return int((np.abs(got - ref_codes) > tol).sum())

    def layer(self, l: int) -> "StageRecorder":
        """The same recorder holding layer l only (arrays without the layer axis; views)."""
        one = copy.copy(self)
        for name in ("codes", "out", "S", "phi", "ages_ps"):
            setattr(one, name, getattr(self, name)[:, l])
        return one

    def __call__(self, seq, step, layer, ages_ps, S, phi, codes, out):
        if seq:
            return
        self.ages_ps[step, layer] = ages_ps
        self.codes[step, layer] = self.as_codes(codes)
        self.out[step, layer] = out
        i = self.sample.get(step)
        if i is not None:
            self.S[i, layer] = S.reshape(self.S.shape[2:])
            self.phi[i, layer] = phi.reshape(self.phi.shape[2:])


def _err(a, b):
    d = np.abs(a - b)
    return {"max_abs": float(d.max()) if d.size else 0.0, "mean_abs": float(d.mean()) if d.size else 0.0,
            "scale": float(np.abs(b).max()) if b.size else 0.0}


def _affine_fit_distance(hw_out, ideal):
    """Per head: fit ideal ~ a * hw_out + b by least squares; relative RMS residual."""
    x, y = hw_out.reshape(-1, hw_out.shape[-2], hw_out.shape[-1]), ideal.reshape(-1, ideal.shape[-2], ideal.shape[-1])
    res, tot = 0.0, 0.0
    for h in range(x.shape[1]):
        xs, ys = x[:, h].ravel(), y[:, h].ravel()
        A = np.stack([xs, np.ones_like(xs)], axis=1)
        coef, *_ = np.linalg.lstsq(A, ys, rcond=None)
        res += float(((A @ coef - ys) ** 2).sum())
        tot += float(((ys - ys.mean()) ** 2).sum())
    return (res / tot) ** 0.5 if tot > 0 else 0.0


def mean_cosine(a, b) -> float:
    """Mean cosine similarity of a and b along the last axis (vectors of norm 0 left out)."""
    num = (a * b).sum(axis=-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    ok = den > 0
    return float((num[ok] / den[ok]).mean()) if ok.any() else 0.0


def validate(hw, trace, steps=None, stage_steps=32, progress=False, jobs=1, device="cpu"):
    """The report of the comparison. jobs: worker processes for the layers' reference runs on
    a trace file long enough to gain from it (parallel.worth_it; None: every core; 1: here).
    device: where the simulator's bank reads run (gcsim/kernels/device.py)."""
    if isinstance(stage_steps, bool) or not isinstance(stage_steps, (int, np.integer)) or stage_steps < 1:
        raise UsageError(f"--stage-steps must be >= 1 (S and phi of at least one step are compared), "
                         f"found {stage_steps!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise UsageError(f"--steps must be >= 1, found {steps!r}")
    hw64 = hw.derive(numerics={"dtype": "float64"})
    T = trace.steps if steps is None else min(steps, trace.steps)
    sample = np.unique(np.linspace(0, T - 1, min(stage_steps, T)).round().astype(int))
    s = hw.shape
    check_run(hw64, T, extra={"stage records": (
        8 * (2 * len(sample) * s.layers * s.heads * s.window + T * s.layers * s.window
             + T * s.layers * s.heads * s.d_head * (s.n_sub_tiles + 1)),
        "trace steps x shape.layers x shape.heads x shape.window (S and phi of --stage-steps)")})
    rec = StageRecorder(hw64, T, sample)
    res = Simulator(hw64, trace, steps=T, stages_hook=rec, check=True, device=device).run(progress=progress)
    report = {"steps": T, "stage_steps": sample.tolist(), "layers": []}
    report["timing"] = timing_check(res, rec.ages_ps)
    ok = report["timing"]["pass"]
    if not report["timing"]["pass"]:  # already FAIL; the reference refuses negative ages
        rec.ages_ps = np.maximum(rec.ages_ps, 0)
    source = str(trace.path) if worth_it(jobs, T, hw, trace) else trace
    if source is trace:
        rows = (_compare_layer(l, trace=trace, hw64=hw64, T=T, sample=sample, rec=rec.layer(l))
                for l in range(s.layers))
    else:        # layers in parallel worker processes (gcsim/parallel.py), each given its layer's records
        rows = map_layers(functools.partial(_layer_job, trace=source, hw64=hw64, T=T, sample=sample),
                          [(l, rec.layer(l)) for l in range(s.layers)], jobs)
    for row in iterate(rows, "reference", enabled=progress, unit="layer"):
        ok &= row["pass"]
        report["layers"].append(row)
    report["pass"] = bool(ok)
    report["code_step"] = rec.code_step
    report["tolerance"] = {"codes": "exact" if rec.code_step is not None else f"{FLOAT_TOL:g} x max(1, scale)",
                           "S, phi, out": f"{FLOAT_TOL:g} x max(1, scale)"}
    return report


def _layer_job(item, **kw):
    l, rec = item                    # a worker gets its layer's records only
    return _compare_layer(l, rec=rec, **kw)


def _compare_layer(l, *, trace, hw64, T, sample, rec):
    """Layer l of the simulator's records (rec: StageRecorder.layer(l)) against the reference
    model: exact ages, nominal period, distance from softmax. A trace path is reopened (in a
    worker)."""
    if not hasattr(trace, "q"):
        trace = open_trace(trace, verify=False)     # the command verified it already
    hw = hw64
    scalers = getattr(trace, "scalers", None)
    q = np.asarray(trace.q[:T, l], np.float64)
    k = np.asarray(trace.k[:T, l], np.float64)
    v = np.asarray(trace.v[:T, l], np.float64)
    exact = layer_attention(q, k, v, hw64, scalers=scalers, layer=l, ages_ps=rec.ages_ps)
    row = {"layer": l}
    ref_codes = rec.as_codes(exact.sub_out)
    row["exact"] = {"S": _err(rec.S, exact.S[sample]), "phi": _err(rec.phi, exact.phi[sample]),
                    "out": _err(rec.out, exact.out),
                    "code_mismatches": rec.code_mismatches(rec.codes, ref_codes),
                    "codes": int(exact.sub_out.size)}
    if rec.code_step is not None:  # the codes must be exact multiples of the step
        row["exact"]["off_grid"] = float(np.abs(exact.sub_out / rec.code_step - ref_codes).max())
    del exact
    nominal = layer_attention(q, k, v, hw64, scalers=scalers, layer=l, stages=False)
    row["nominal"] = {"out": _err(rec.out, nominal.out),
                      "code_mismatches": rec.code_mismatches(rec.codes, rec.as_codes(nominal.sub_out))}
    del nominal
    if trace.attn_out is not None and T <= hw.shape.window:
        ideal, source = np.asarray(trace.attn_out[:T, l], np.float64), "trace softmax"
    else:
        ideal, source = layer_attention(q, k, v, hw64, variant="softmax", stages=False).out, "reference softmax"
    row["vs_softmax"] = {"source": source, "cosine": mean_cosine(rec.out, ideal),
                         "affine_fit_rel_rmse": _affine_fit_distance(rec.out, ideal)}
    ex = row["exact"]
    row["pass"] = ex["code_mismatches"] == 0 and all(
        ex[k]["max_abs"] <= FLOAT_TOL * max(1.0, ex[k]["scale"]) for k in ("S", "phi", "out"))
    return row


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
    lines.append(f"(a) exact ages: {'PASS' if exact_ok else 'FAIL'} "
                 f"({sum(r['exact']['code_mismatches'] for r in rep['layers'])} of {total} codes differ; "
                 f"codes compared {rep['tolerance']['codes']}, S/phi/out within {rep['tolerance']['S, phi, out']})")
    tm = rep["timing"]
    lines.append(f"(t) timing against the description's {tm['mode']}: {'PASS' if tm['pass'] else 'FAIL'}"
                 + "".join(f"\n    {v}" for v in tm["violations"][:5]))
    lines.append(f"(b) nominal token period: {nominal} of {total} output codes moved by the chip's real timing")
    lines.append(f"softmax distance source: {rep['layers'][0]['vs_softmax']['source']}")
    return "\n".join(lines)


def _check_json_path(path_text: str) -> None:
    """Before the (long) comparison: --json must be writable and may replace only an earlier
    validate report, never a user's file."""
    import json
    import os
    from pathlib import Path
    path = Path(path_text)
    if path.is_dir():
        raise UsageError(f"--json {path}: is a directory")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise UsageError(f"--json {path}: the directory {path.parent} does not exist or is not writable")
    if path.exists():
        try:
            old = json.loads(path.read_text())
            ours = isinstance(old, dict) and {"layers", "pass", "stage_steps"} <= set(old)
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise UsageError(f"--json {path}: exists and is not a gcsim validate report; choose another path")


def main(args) -> int:
    check_jobs(args.jobs)
    if args.json:
        _check_json_path(args.json)
    hw, trace = load_inputs(args)
    rep = validate(hw, trace, args.steps, args.stage_steps, progress=wanted(args), jobs=args.jobs,
                   device=args.device)
    rep["provenance"] = provenance_of(args, hw, trace)
    verdict = EXIT_OK if rep["pass"] else EXIT_MISMATCH
    if args.json:
        from pathlib import Path
        import os
        tmp = Path(args.json).with_name(f".{Path(args.json).name}.tmp-{os.getpid()}")
        try:
            write_json(tmp, rep)
            os.replace(tmp, args.json)
        finally:
            tmp.unlink(missing_ok=True)
    try:
        say(args, format_validation(rep))
        sys.stdout.flush()
    except BrokenPipeError:  # `gcsim validate | head -1`: the verdict is still the exit status
        silence_stdout()
    return verdict
