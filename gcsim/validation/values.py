"""(a) and (b) of `gcsim validate`: the values the simulator computed against the reference
model, block by block as the simulation goes (memory does not grow with the trace).

(a) exact: the reference model given the ages of the stored values (the witness's,
    gcsim/witness/; the simulator's own only where a policy brings no witness rule), both in
    float64. S, phi, per-sub-tile outputs and outputs must agree: quantized output codes
    (out_levels set) exactly, unquantized values (out_levels null) and S, phi, outputs within
    a relative tolerance of 1e-9 of the stage's scale (float64 rounding differences of
    summation order are ~1e-16).
(b) nominal: the reference at the description's nominal token period, which reports how
    much the chip's real timing moved the outputs.
Also per layer: the hardware output's distance from ideal softmax attention (the trace's
recorded softmax outputs, else the sliding-window softmax reference), as the cosine
similarity and the relative RMS error after a per-head least-squares affine fit (what a
trained output scaler could absorb). The comparison runs block by block (512 steps of a
layer, their window's tokens included; gcsim.reference.steps_block).
"""
from __future__ import annotations

import collections

import numpy as np

from ..parallel import worker_pool
from ..reference import layer_attention, steps_block
from ..streamio import release_pages
from ..traces import open_trace

FLOAT_TOL = 1e-9  # relative to max(1, the stage's scale): float64 rounding, with margin
BLOCK_STEPS = 512  # steps compared at a time; a multiple of the reference's own block (128), so
# the block-wise reference computes exactly what the whole-sequence one does (reference.steps_block)


class StageRecorder:
    """Keeps what the simulator computed for one block of steps per layer (codes, outputs and
    ages of every step, S and phi of sampled steps) and hands each completed block of a layer
    to `on_block(layer, t0, t1, records)`: memory does not grow with the trace length."""

    def __init__(self, hw, steps, sample, on_block, block=BLOCK_STEPS, witness=None):
        """witness: a gcsim.witness Schedule of the run; the reference is then given its ages
        (those the simulator read with are compared with them), else the simulator's."""
        s = hw.shape
        self.witness = witness
        self.age_slots = self.age_differences = 0
        self.first_age_difference = None   # (sequence, step, layer, slot, simulator ps, witness ps)
        levels = hw.numerics.out_levels
        # quantized outputs are k x step: keep k as int8 (33 codes), else the float values
        self.code_step = 2.0 / (levels - 1) if levels else None
        self.steps, self.block, self.on_block, self.shape = steps, block, on_block, s
        self.sample = {int(t) for t in sample}
        self.first_negative_age = None    # (sequence, step, layer, slot, ps), the first in that order
        self.pending = [self._new(0) for _ in range(s.layers)]

    def _new(self, t0):
        s, n = self.shape, min(self.block, self.steps - t0)
        return {"t0": t0, "t1": t0 + n,
                "codes": np.zeros((n, s.heads, s.n_sub_tiles, s.d_head), np.int8 if self.code_step else np.float64),
                "out": np.zeros((n, s.heads, s.d_head)), "ages_ps": np.zeros((n, s.window), np.int64),
                "S": {}, "phi": {}}

    def as_codes(self, values):
        return as_codes(values, self.code_step)

    def __call__(self, seq, step, layer, ages_ps, S, phi, codes, out):
        ages = np.asarray(ages_ps)
        if (ages < 0).any():   # the simulator's own ages, every sequence's reads
            where = (seq, step, layer, int(np.argmax(ages < 0)))
            if self.first_negative_age is None or where < self.first_negative_age[:4]:
                self.first_negative_age = (*where, int(ages[where[3]]))
        if self.witness is not None:   # every sequence's reads: the slots they take part in, against the witness
            own, ages = ages, self.witness.ages_ps(step, layer, seq)
            valid = self.witness.valid(step)
            differ = valid & (own != ages)
            self.age_slots += int(valid.sum())
            if differ.any():
                self.age_differences += int(differ.sum())
                m = int(np.argmax(differ))
                where = (seq, step, layer, m, int(own[m]), int(ages[m]))
                if self.first_age_difference is None or where[:4] < self.first_age_difference[:4]:
                    self.first_age_difference = where
        if seq:   # the values are sequence 0's (every sequence reads the same trace)
            return
        b = self.pending[layer]
        i = step - b["t0"]
        if not 0 <= i < b["t1"] - b["t0"]:
            raise RuntimeError(f"validate: layer {layer} step {step} outside the block of steps "
                               f"{b['t0']}..{b['t1'] - 1} (the simulator's steps of a layer come in order)")
        b["ages_ps"][i] = ages
        b["codes"][i] = self.as_codes(codes)
        b["out"][i] = out
        if step in self.sample:
            b["S"][step] = np.array(S, np.float64).reshape(self.shape.heads, self.shape.window)
            b["phi"][step] = np.array(phi, np.float64).reshape(self.shape.heads, self.shape.window)
        if step == b["t1"] - 1:
            if b["t1"] < self.steps:
                self.pending[layer] = self._new(b["t1"])
            self.on_block(layer, b["t0"], b["t1"], b)


def as_codes(values, code_step):
    return values if code_step is None else np.round(values / code_step)


def code_mismatches(got, ref_codes, code_step) -> int:
    """Quantized codes are integers: compared exactly. Unquantized values: within FLOAT_TOL of
    max(1, their scale); output codes lie in [-1, 1] (clipped), so that is FLOAT_TOL itself and
    the count adds up block by block."""
    if code_step is not None:
        return int((got != ref_codes).sum())
    return int((np.abs(got - ref_codes) > FLOAT_TOL).sum())


class Err:
    """max |a - b|, mean |a - b| and max |b| over all the blocks added."""

    def __init__(self):
        self.max_abs = self.sum_abs = self.scale = 0.0
        self.n = 0

    def add(self, a, b) -> "Err":
        d = np.abs(a - b)
        if d.size:
            self.max_abs = max(self.max_abs, float(d.max()))
            self.sum_abs += float(d.sum())
            self.n += d.size
            self.scale = max(self.scale, float(np.abs(b).max()))
        return self

    def merge(self, o: "Err") -> None:
        self.max_abs, self.scale = max(self.max_abs, o.max_abs), max(self.scale, o.scale)
        self.sum_abs += o.sum_abs
        self.n += o.n

    def report(self) -> dict:
        return {"max_abs": self.max_abs, "mean_abs": self.sum_abs / self.n if self.n else 0.0, "scale": self.scale}


class SoftmaxDistance:
    """Distance of hardware outputs from ideal ones, added block by block ([steps, heads, d]):
    the mean cosine similarity over output vectors (norm 0 left out), and per head the least-
    squares fit ideal ~ a * out + b (what a trained output scaler could absorb), as the relative
    RMS residual over all heads. The fit keeps per head the count, means and centred sums of
    squares and products, merged exactly across blocks (Chan et al.)."""

    def __init__(self):
        self.cos_sum, self.cos_n = 0.0, 0
        self.n = self.mx = self.my = self.sxx = self.syy = self.sxy = None

    def add(self, out, ideal) -> "SoftmaxDistance":
        num = (out * ideal).sum(axis=-1)
        den = np.linalg.norm(out, axis=-1) * np.linalg.norm(ideal, axis=-1)
        ok = den > 0
        self.cos_sum += float((num[ok] / den[ok]).sum())
        self.cos_n += int(ok.sum())
        x = out.reshape(-1, out.shape[-2], out.shape[-1]).transpose(1, 0, 2).reshape(out.shape[-2], -1)
        y = ideal.reshape(-1, ideal.shape[-2], ideal.shape[-1]).transpose(1, 0, 2).reshape(ideal.shape[-2], -1)
        if not x.shape[1]:
            return self
        n = np.full(x.shape[0], float(x.shape[1]))
        mx, my = x.mean(axis=1), y.mean(axis=1)
        dx, dy = x - mx[:, None], y - my[:, None]
        part = (n, mx, my, (dx * dx).sum(axis=1), (dy * dy).sum(axis=1), (dx * dy).sum(axis=1))
        if self.n is None:
            self.n, self.mx, self.my, self.sxx, self.syy, self.sxy = part
        else:
            self._merge(*part)
        return self

    def _merge(self, n, mx, my, sxx, syy, sxy):
        tot = self.n + n
        ddx, ddy, w = mx - self.mx, my - self.my, self.n * n / tot
        self.sxx = self.sxx + sxx + ddx * ddx * w
        self.syy = self.syy + syy + ddy * ddy * w
        self.sxy = self.sxy + sxy + ddx * ddy * w
        self.mx, self.my, self.n = self.mx + ddx * n / tot, self.my + ddy * n / tot, tot

    def merge(self, o: "SoftmaxDistance") -> None:
        self.cos_sum += o.cos_sum
        self.cos_n += o.cos_n
        if o.n is None:
            return
        if self.n is None:
            self.n, self.mx, self.my, self.sxx, self.syy, self.sxy = o.n, o.mx, o.my, o.sxx, o.syy, o.sxy
        else:
            self._merge(o.n, o.mx, o.my, o.sxx, o.syy, o.sxy)

    @property
    def cosine(self) -> float:
        return self.cos_sum / self.cos_n if self.cos_n else 0.0

    @property
    def affine_fit_rel_rmse(self) -> float:
        if self.n is None:
            return 0.0
        fit = np.divide(self.sxy * self.sxy, self.sxx, out=np.zeros_like(self.sxx), where=self.sxx > 0)
        res, tot = float(np.maximum(self.syy - fit, 0.0).sum()), float(self.syy.sum())
        return (res / tot) ** 0.5 if tot > 0 else 0.0


def _affine_fit_distance(hw_out, ideal):
    """Per head: fit ideal ~ a * hw_out + b by least squares; relative RMS residual."""
    return SoftmaxDistance().add(hw_out, ideal).affine_fit_rel_rmse


def mean_cosine(a, b) -> float:
    """Mean cosine similarity of a and b along the last axis (vectors of norm 0 left out)."""
    return SoftmaxDistance().add(a, b).cosine


class LayerComparison:
    """One layer's comparison figures, added block by block (in the order of the steps)."""

    def __init__(self):
        self.S, self.phi, self.out, self.nominal = Err(), Err(), Err(), Err()
        self.code_mismatches = self.nominal_code_mismatches = self.codes = 0
        self.off_grid = 0.0
        self.softmax = SoftmaxDistance()
        self.softmax_source = None

    def merge(self, o: "LayerComparison") -> None:
        for name in ("S", "phi", "out", "nominal", "softmax"):
            getattr(self, name).merge(getattr(o, name))
        self.code_mismatches += o.code_mismatches
        self.nominal_code_mismatches += o.nominal_code_mismatches
        self.codes += o.codes
        self.off_grid = max(self.off_grid, o.off_grid)
        self.softmax_source = self.softmax_source or o.softmax_source

    def row(self, l: int, code_step) -> dict:
        row = {"layer": l, "exact": {"S": self.S.report(), "phi": self.phi.report(), "out": self.out.report(),
                                     "code_mismatches": self.code_mismatches, "codes": self.codes}}
        if code_step is not None:
            row["exact"]["off_grid"] = self.off_grid
        row["nominal"] = {"out": self.nominal.report(), "code_mismatches": self.nominal_code_mismatches}
        row["vs_softmax"] = {"source": self.softmax_source, "cosine": self.softmax.cosine,
                             "affine_fit_rel_rmse": self.softmax.affine_fit_rel_rmse}
        ex = row["exact"]
        row["pass"] = ex["code_mismatches"] == 0 and all(
            ex[k]["max_abs"] <= FLOAT_TOL * max(1.0, ex[k]["scale"]) for k in ("S", "phi", "out"))
        return row


class BlockComparisons:
    """Runs each completed block's comparison here, or on worker processes (jobs > 1; the trace
    reopened there from its path), and merges the results into the layers' figures in the
    order the blocks were completed, whatever the number of jobs."""

    def __init__(self, ctx, layers, jobs):
        self.ctx, self.layers, self.jobs = ctx, layers, jobs
        self.pool, self.pending = None, collections.deque()

    def __enter__(self):
        if self.jobs > 1:
            import pickle
            wctx = dict(self.ctx, trace=str(self.ctx["trace"].path))
            self.pool = worker_pool(self.jobs, f"{__name__}:_init_worker", pickle.dumps(wctx))
        return self

    def submit(self, l, t0, t1, records):
        if self.pool is None:
            self.layers[l].merge(compare_block(l, t0, t1, records, **self.ctx))
            return
        self.pending.append((l, self.pool.submit(_block_job, l, t0, t1, records)))
        while len(self.pending) > 2 * self.jobs:  # bounded: records of a few blocks in flight
            self._merge_oldest()

    def _merge_oldest(self):
        l, fut = self.pending.popleft()
        self.layers[l].merge(fut.result())

    def __exit__(self, exc_type, *exc):
        try:
            while self.pending and exc_type is None:
                self._merge_oldest()
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)


_WORKER_CTX: dict = {}


def _init_worker(ctx):
    _WORKER_CTX.update(ctx, trace=open_trace(ctx["trace"], verify=False))  # the command verified it already


def _block_job(l, t0, t1, records):
    return compare_block(l, t0, t1, records, **_WORKER_CTX)


def compare_block(l, t0, t1, rec, *, trace, hw64, T, sample, code_step) -> LayerComparison:
    """Steps t0..t1-1 of layer l as the simulator computed them (rec: StageRecorder's block)
    against the reference model run on those steps alone (with their window's tokens): exact
    ages, nominal period, distance from softmax."""
    off, skip = steps_block(t0, t1, hw64)
    scalers = getattr(trace, "scalers", None)
    q, k, v = (np.asarray(a[off:t1, l], np.float64) for a in (trace.q, trace.k, trace.v))
    part = dict(scalers=scalers, layer=l, offset=off, skip=skip)
    sampled = sorted(t for t in rec["S"])
    ages = np.maximum(rec["ages_ps"], 0)     # a negative age already failed (t); the reference refuses it
    exact = layer_attention(q, k, v, hw64, ages_ps=ages, stages=bool(sampled), **part)
    c = LayerComparison()
    if sampled:
        rows = np.array(sampled) - t0
        c.S.add(np.stack([rec["S"][t] for t in sampled]), exact.S[rows])
        c.phi.add(np.stack([rec["phi"][t] for t in sampled]), exact.phi[rows])
    c.out.add(rec["out"], exact.out)
    ref_codes = as_codes(exact.sub_out, code_step)
    c.code_mismatches = code_mismatches(rec["codes"], ref_codes, code_step)
    c.codes = int(exact.sub_out.size)
    if code_step is not None:  # the codes must be exact multiples of the step
        c.off_grid = float(np.abs(exact.sub_out / code_step - ref_codes).max())
    del exact
    nominal = layer_attention(q, k, v, hw64, stages=False, **part)
    c.nominal.add(rec["out"], nominal.out)
    c.nominal_code_mismatches = code_mismatches(rec["codes"], as_codes(nominal.sub_out, code_step), code_step)
    del nominal
    if trace.attn_out is not None and T <= hw64.shape.window:
        ideal, c.softmax_source = np.asarray(trace.attn_out[t0:t1, l], np.float64), "trace softmax"
    else:
        ideal = layer_attention(q, k, v, hw64, variant="softmax", stages=False, **part).out
        c.softmax_source = "reference softmax"
    c.softmax.add(rec["out"], ideal)
    for arr in (trace.q, trace.k, trace.v, trace.attn_out):  # the pages read go again (gcsim/streamio.py)
        release_pages(arr)
    return c
