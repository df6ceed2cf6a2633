"""Activation calibration of the per-head DAC scalers.

The hardware applies per-head affine scalers before its DACs (docs/paper-model.md section 2):
q' = a_q·q + b_q drives the PWM query pulses and must fill [0, 1] (fraction of T_max);
k' = a_k·k + b_k and v' = a_v·v + b_v are written as voltages in [0, 0.9] V whose signed zero
is 0.45 V; the output is y = a_out·Σ + b_out.

The paper adapts a and b by iterating them (≤ 100 steps) until the mean and standard deviation
of each scaled signal match those recorded in a model trained with the linear cell law. A model
never trained for this hardware has no such targets, so gcsim derives a and b in one closed-form
step from the activation statistics of a trace, choosing them to fill the DAC ranges:

- q: the per-head quantiles lo, hi at (1-coverage)/2 and 1-(1-coverage)/2 map onto q_range:
  a_q = (r1 - r0) / (hi - lo), b_q = r0 - a_q·lo.
- k, v: the per-head median m maps to the range midpoint (0.45 V, the cell's signed zero) and
  the ``coverage`` quantile r of |x - m| maps to the half range (0.45 V):
  a = 0.45 / r, b = 0.45 - a·m.
- zero spread (a constant head, hi == lo or r == 0): a = 1 and b puts the constant at the
  midpoint of the range, so nothing clips and nothing is divided by zero.
- a_out = 1, b_out = 0 (identity): mapping the hardware output back to model units is not a
  DAC-range question and is left to the output calibration.

Quantiles rather than mean/std because GPT-style activations have a few outlier channels per
head: a std-based range is dominated by them, while quantiles fix the clipped fraction directly
(about 1 - coverage for continuous data). Statistics are taken per head over all head dimensions
and over a sample of at most ``max_steps`` decode steps evenly spaced from the first to the last
(all steps if fewer); arrays may be memmaps, only the sampled steps of one layer at a time are
read and converted to float64.
"""

from __future__ import annotations

import numpy as np

# One copy of the paper's initial scalers, shared with the datapath; re-exported here.
from ..datapath import default_scalers


def sample_steps(steps: int, max_steps: int | None) -> np.ndarray:
    """Indices of at most max_steps steps, evenly spaced over [0, steps), first and last included."""
    if max_steps is None or steps <= max_steps:
        return np.arange(steps)
    return np.unique(np.linspace(0, steps - 1, max_steps).round().astype(np.int64))


def _heads_major(x, idx, layer: int) -> np.ndarray:
    """Sampled steps of one layer as float64 [heads, n_steps * d]."""
    block = np.asarray(x[idx, layer], dtype=np.float64)  # [n, heads, d]
    return block.transpose(1, 0, 2).reshape(block.shape[1], -1)


def clipped_counts(x: np.ndarray, a: np.ndarray, b: np.ndarray, rng) -> np.ndarray:
    """Count of scaled values a·x + b outside rng = (lo, hi), per head.

    x: [n, *heads_shape, d] (e.g. [steps, layers, heads, d]); a, b: heads_shape.
    Returns int counts of shape heads_shape. A tolerance of 1e-9 of the range keeps values
    mapped exactly onto an end (the calibration quantiles themselves) from counting.
    """
    lo, hi = rng
    tol = 1e-9 * (hi - lo)
    y = np.asarray(x, dtype=np.float64) * a[..., None] + b[..., None]
    return ((y < lo - tol) | (y > hi + tol)).sum(axis=(0, -1))


def _affine_q(x: np.ndarray, rng, coverage: float):
    """a, b per head mapping the central `coverage` quantile interval onto rng."""
    p = (1.0 - coverage) / 2.0
    lo, hi = np.quantile(x, [p, 1.0 - p], axis=1)
    r0, r1 = rng
    spread = hi - lo
    flat = spread <= 1e-12 * np.maximum(1.0, np.abs(lo))
    a = np.where(flat, 1.0, (r1 - r0) / np.where(flat, 1.0, spread))
    b = np.where(flat, (r0 + r1) / 2.0 - lo, r0 - a * lo)
    return a, b


def _affine_kv(x: np.ndarray, rng, coverage: float):
    """a, b per head putting the median on the midpoint and the coverage quantile of
    |x - median| on the half range."""
    mid, half = (rng[0] + rng[1]) / 2.0, (rng[1] - rng[0]) / 2.0
    m = np.median(x, axis=1)
    r = np.quantile(np.abs(x - m[:, None]), coverage, axis=1)
    flat = r <= 1e-12 * np.maximum(1.0, np.abs(m))
    a = np.where(flat, 1.0, half / np.where(flat, 1.0, r))
    return a, mid - a * m


def calibrate(q, k, v, *, q_range=(0.0, 1.0), kv_range=(0.0, 0.9), coverage: float = 0.999,
              max_steps: int | None = 512):
    """Per-head scalers from activation statistics (rule in the module docstring).

    q: [steps, layers, heads, d]; k, v: [steps, layers, kv_heads, d] (arrays or memmaps, model
    units). q_range: PWM range of q' (fraction of T_max); kv_range: voltage range of k', v' (V).
    Returns (scalers, clip_fraction): scalers has float64 a_q, b_q [layers, heads],
    a_k, b_k, a_v, b_v [layers, kv_heads], a_out = 1, b_out = 0 [layers, heads];
    clip_fraction has q [layers, heads], k, v [layers, kv_heads]: the fraction of scaled
    sampled values outside their range.
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    steps, layers, heads = q.shape[:3]
    kv_heads = k.shape[2]
    idx = sample_steps(steps, max_steps)
    scalers = default_scalers(layers, heads, kv_heads)
    clip = {"q": np.zeros((layers, heads)), "k": np.zeros((layers, kv_heads)),
            "v": np.zeros((layers, kv_heads))}
    for name, arr, rng, rule in (("q", q, q_range, _affine_q), ("k", k, kv_range, _affine_kv),
                                 ("v", v, kv_range, _affine_kv)):
        for layer in range(layers):
            x = _heads_major(arr, idx, layer)  # one layer at a time bounds memory
            a, b = rule(x, rng, coverage)
            scalers[f"a_{name}"][layer], scalers[f"b_{name}"][layer] = a, b
            clip[name][layer] = clipped_counts(x[None], a, b, rng) / x.shape[1]
    return scalers, clip
