"""Datapath stages around the arrays, shared by the reference model and the simulator:
per-head scalers, the DAC front end, retention and the digital readout.

Scalers are a dict of float arrays: a_q, b_q, a_out, b_out [layers, heads] and a_k, b_k,
a_v, b_v [layers, kv_heads] (docs/paper-model.md section 2, step 1 and step 8).
"""
from __future__ import annotations

import numpy as np

from . import physics
from .hardware import Hardware
from .kernels import periphery

SCALER_KEYS = ("a_q", "b_q", "a_k", "b_k", "a_v", "b_v", "a_out", "b_out")
KV_SCALERS = ("a_k", "b_k", "a_v", "b_v")  # per K/V head; the others per query head


def default_scalers(layers: int, heads: int, kv_heads: int) -> dict[str, np.ndarray]:
    """The paper's initial per-head scalers: a = 1, b_q = 0, b_k = b_v = 0.45, out a=1 b=0."""
    ones_h, ones_kv = np.ones((layers, heads)), np.ones((layers, kv_heads))
    return {"a_q": ones_h.copy(), "b_q": 0 * ones_h, "a_k": ones_kv.copy(), "b_k": 0.45 * ones_kv,
            "a_v": ones_kv.copy(), "b_v": 0.45 * ones_kv, "a_out": ones_h.copy(), "b_out": 0 * ones_h}


def layer_scalers(scalers: dict | None, layer: int, heads: int, kv_heads: int) -> dict[str, np.ndarray]:
    """One layer's scalers as float64 arrays of shape [heads] / [kv_heads]."""
    if scalers is None:
        return {k: v[0] for k, v in default_scalers(1, heads, kv_heads).items()}
    out = {}
    for key in SCALER_KEYS:
        n = kv_heads if key in KV_SCALERS else heads
        arr = np.asarray(scalers[key], dtype=np.float64)
        arr = arr[layer] if arr.ndim == 2 else arr
        out[key] = np.broadcast_to(arr, (n,)).copy()
    return out


def dac_query(q, sc: dict, hw: Hardware, variant: str, *, kernel: bool = True):
    """q [..., H, d] -> pulse fractions (hardware variants) or q itself (softmax).
    kernel: the fused kernel where it applies (gcsim/kernels/periphery.py, the same bits);
    False: the numpy path (the tests' oracle; the whole-sequence reference uses it)."""
    if variant == "softmax":
        return q
    n = hw.numerics
    return _dac(q, sc["a_q"], sc["b_q"], *n.q_range, n.q_levels, 0.0, kernel)


def dac_kv(x, a, b, hw: Hardware, variant: str, *, kernel: bool = True):
    """k or v [..., KV, d] -> stored deviation from 0.45 V (hardware) or x itself (softmax)."""
    if variant == "softmax":
        return x
    n = hw.numerics
    return _dac(x, a, b, *n.kv_range_v, n.kv_levels, physics.V_ZERO_V, kernel)


def _dac(x, a, b, lo, hi, levels, shift, kernel):
    """The DAC front end (per-head scaler a x + b, clip, quantize: physics.scale_clip_quantize),
    minus `shift` (the signed zero of a stored value), with its level chosen in float64
    whatever x's dtype: in float32 the scaler's rounding moved inputs near a level boundary to
    the other level (12 of 1.7 M k and v values of a synthetic GPT-2 layer, each changing a
    stored cell by a whole level: benchmarks/float32_trace.py). The level is then given in x's
    dtype as float32 computes it, step x code, so float32 differs from float64 only in the
    bit-line sums."""
    x = np.asarray(x)
    if kernel and _on_kernel(x) and x.ndim >= 2 and (not levels or levels >= 2):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape == b.shape == x.shape[-2:-1]:   # one scaler per head
            out = np.empty(x.shape, x.dtype)
            step = (hi - lo) / (levels - 1) if levels else 1.0
            periphery.compiled()["dac"](x.reshape(-1, x.shape[-1]), a, b, float(lo), float(hi), step, bool(levels),
                                        float(shift), out.reshape(-1, x.shape[-1]))
            return out
    wide = physics.scale_clip_quantize(x.astype(np.float64, copy=False), np.asarray(a, np.float64)[:, None],
                                       np.asarray(b, np.float64)[:, None], lo, hi, None)
    if x.dtype == np.float64 or not levels:
        level = physics.quantize(wide, lo, hi, levels).astype(x.dtype, copy=False)
    else:
        step = (hi - lo) / (levels - 1)
        level = x.dtype.type(step) * np.round(wide / step).astype(x.dtype)
    return level - x.dtype.type(shift) if shift else level


def _on_kernel(x) -> bool:
    """Whether the fused kernels compute exactly what the numpy path does for array x: numba
    present, a float32 or float64 numpy array (on the CPU), C-contiguous (reshaped as views)."""
    return (periphery.AVAILABLE and type(x) is np.ndarray and x.dtype in _KERNEL_DTYPES
            and x.flags.c_contiguous)


_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def retention_decay(age_ps, age_tokens, hw: Hardware):
    """Retention factor for ages given both in time (ps) and in tokens."""
    ret = hw.numerics.retention
    if ret.mode == "time":
        return physics.decay_from_age(age_ps, hw.decay_tau_ps)
    if ret.mode == "per_token":
        return physics.decay_per_token(age_tokens, ret.rate_per_token)
    return np.ones(np.shape(age_ps))


def output_code(acc, hw: Hardware, *, kernel: bool = True):
    """Output counters: physics.output_code of the sub-tile charges A (any shape) with the
    description's out_sat and out_levels. kernel as for dac_query."""
    n = hw.numerics
    if kernel and _on_kernel(acc) and (not n.out_levels or n.out_levels >= 2):
        out = np.empty(acc.shape, acc.dtype)
        step = 2.0 / (n.out_levels - 1) if n.out_levels else 1.0
        periphery.compiled()["output_code"](acc.reshape(-1), float(n.out_sat), step, bool(n.out_levels),
                                            out.reshape(-1))
        return out
    return physics.output_code(acc, n.out_sat, n.out_levels)


def readout(sub_out, sc: dict, *, kernel: bool = True):
    """Digital accumulation: y = a_out * sum over sub-tiles + b_out. sub_out [..., H, n_sub, d].
    kernel as for dac_query."""
    dtype = sub_out.dtype
    if kernel and _on_kernel(sub_out) and sub_out.ndim >= 3 and sub_out.shape[-2]:
        a, b = np.asarray(sc["a_out"], np.float64), np.asarray(sc["b_out"], np.float64)
        if a.shape == b.shape == sub_out.shape[-3:-2]:
            H, S, D = sub_out.shape[-3:]
            out = np.empty(sub_out.shape[:-2] + (D,), dtype)
            periphery.compiled()["readout"](sub_out.reshape(-1, H, S, D), a, b, out.reshape(-1, H, D))
            return out
    return sc["a_out"][:, None].astype(dtype) * sub_out.sum(axis=-2) + sc["b_out"][:, None].astype(dtype)
