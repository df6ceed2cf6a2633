"""Datapath stages around the arrays, shared by the reference model and the simulator:
per-head scalers, the DAC front end, retention and the digital readout.

Scalers are a dict of float arrays: a_q, b_q, a_out, b_out [layers, heads] and a_k, b_k,
a_v, b_v [layers, kv_heads] (docs/paper-model.md section 2, step 1 and step 8).
"""
from __future__ import annotations

import numpy as np

from . import physics
from .hardware import Hardware

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


def dac_query(q, sc: dict, hw: Hardware, variant: str):
    """q [..., H, d] -> pulse fractions (hardware variants) or q itself (softmax)."""
    if variant == "softmax":
        return q
    n = hw.numerics
    return _dac(q, sc["a_q"], sc["b_q"], *n.q_range, n.q_levels)


def dac_kv(x, a, b, hw: Hardware, variant: str):
    """k or v [..., KV, d] -> stored deviation from 0.45 V (hardware) or x itself (softmax)."""
    if variant == "softmax":
        return x
    n = hw.numerics
    return _dac(x, a, b, *n.kv_range_v, n.kv_levels) - x.dtype.type(physics.V_ZERO_V)


def _dac(x, a, b, lo, hi, levels):
    """The DAC front end (per-head scaler a x + b, clip, quantize: physics.scale_clip_quantize)
    with its level chosen in float64 whatever x's dtype: in float32 the scaler's rounding
    moved inputs near a level boundary to the other level (12 of 1.7 M k and v values of a
    synthetic GPT-2 layer, each changing a stored cell by a whole level: benchmarks/
    float32_trace.py). The level is then given in x's dtype as float32 computes it, step x code,
    so float32 differs from float64 only in the bit-line sums."""
    x = np.asarray(x)
    wide = physics.scale_clip_quantize(x.astype(np.float64, copy=False), np.asarray(a, np.float64)[:, None],
                                       np.asarray(b, np.float64)[:, None], lo, hi, None)
    if x.dtype == np.float64 or not levels:
        return physics.quantize(wide, lo, hi, levels).astype(x.dtype, copy=False)
    step = (hi - lo) / (levels - 1)
    return x.dtype.type(step) * np.round(wide / step).astype(x.dtype)


def retention_decay(age_ps, age_tokens, hw: Hardware):
    """Retention factor for ages given both in time (ps) and in tokens."""
    ret = hw.numerics.retention
    if ret.mode == "time":
        return physics.decay_from_age(age_ps, hw.decay_tau_ps)
    if ret.mode == "per_token":
        return physics.decay_per_token(age_tokens, ret.rate_per_token)
    return np.ones(np.shape(age_ps))


def readout(sub_out, sc: dict):
    """Digital accumulation: y = a_out * sum over sub-tiles + b_out. sub_out [..., H, n_sub, d]."""
    dtype = sub_out.dtype
    return sc["a_out"][:, None].astype(dtype) * sub_out.sum(axis=-2) + sc["b_out"][:, None].astype(dtype)
