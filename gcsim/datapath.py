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


def dac_step(q, k, v, sc: dict, hw: Hardware, variant: str, *, kernel: bool = True):
    """The DACs of one layer step: (dac_query(q), dac_kv(k, a_k, b_k), dac_kv(v, a_v, b_v)) for
    q [H, d] and k, v [KV, d], in one kernel call where the kernel applies."""
    if kernel and variant != "softmax" and periphery.applies(q) and periphery.applies(k) and periphery.applies(v):
        consts = _dac_constants(hw.numerics)
        a_q, b_q, a_k, b_k, a_v, b_v = (sc[key] for key in ("a_q", "b_q", "a_k", "b_k", "a_v", "b_v"))
        if (consts is not None and q.ndim == k.ndim == 2 and q.dtype is k.dtype is v.dtype and k.shape == v.shape
                and _per_head(a_q, q) and _per_head(b_q, q) and _per_head(a_k, k) and _per_head(b_k, k)
                and _per_head(a_v, k) and _per_head(b_v, k)):
            outs = np.empty(q.shape, q.dtype), np.empty(k.shape, k.dtype), np.empty(v.shape, v.dtype)
            periphery.compiled()["dac_step"](q, k, v, a_q, b_q, a_k, b_k, a_v, b_v, *consts, *outs)
            return outs
    return (dac_query(q, sc, hw, variant, kernel=kernel), dac_kv(k, sc["a_k"], sc["b_k"], hw, variant, kernel=kernel),
            dac_kv(v, sc["a_v"], sc["b_v"], hw, variant, kernel=kernel))


def _per_head(a, x) -> bool:
    """Whether scaler a is what the kernel takes for rows x [heads, d]: float64 [heads]."""
    return type(a) is np.ndarray and a.dtype is _F64 and a.shape == x.shape[:1]


_F64 = np.dtype(np.float64)
_DAC_CONSTANTS = {}   # id(numerics) -> (numerics, the DAC kernel's constants or None)


def _dac_constants(n):
    """(q lo, hi, step, quantize, kv lo, hi, step, quantize, 0.45 V) of a description's DACs, as
    the kernel takes them; None where the numpy path must run (a quantizer of < 2 levels raises)."""
    hit = _DAC_CONSTANTS.get(id(n))
    if hit is None or hit[0] is not n:
        ok = (not n.q_levels or n.q_levels >= 2) and (not n.kv_levels or n.kv_levels >= 2)
        (q_lo, q_hi), (kv_lo, kv_hi) = n.q_range, n.kv_range_v
        if len(_DAC_CONSTANTS) > 64:   # descriptions derived by the hundred (sweeps, tests): keep it small
            _DAC_CONSTANTS.clear()
        hit = _DAC_CONSTANTS[id(n)] = (n, (float(q_lo), float(q_hi), _step(q_lo, q_hi, n.q_levels), bool(n.q_levels),
                                           float(kv_lo), float(kv_hi), _step(kv_lo, kv_hi, n.kv_levels),
                                           bool(n.kv_levels), physics.V_ZERO_V) if ok else None)
    return hit[1]


def _step(lo, hi, levels) -> float:
    """The quantizer's step (physics.quantize), 1.0 (unused) without quantization."""
    return (hi - lo) / (levels - 1) if levels else 1.0


def _dac(x, a, b, lo, hi, levels, shift, kernel):
    """The DAC front end (per-head scaler a x + b, clip, quantize: physics.scale_clip_quantize),
    minus `shift` (the signed zero of a stored value), with its level chosen in float64
    whatever x's dtype: in float32 the scaler's rounding moved inputs near a level boundary to
    the other level (12 of 1.7 M k and v values of a synthetic GPT-2 layer, each changing a
    stored cell by a whole level: benchmarks/float32_trace.py). The level is then given in x's
    dtype as float32 computes it, step x code, so float32 differs from float64 only in the
    bit-line sums."""
    x = np.asarray(x)
    if kernel and periphery.applies(x) and x.ndim >= 2 and (not levels or levels >= 2):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape == b.shape == x.shape[-2:-1]:   # one scaler per head
            out = np.empty(x.shape, x.dtype)
            periphery.compiled()["dac"](x.reshape(-1, x.shape[-1]), a, b, float(lo), float(hi),
                                        _step(lo, hi, levels), bool(levels), float(shift), out.reshape(-1, x.shape[-1]))
            return out
    wide = physics.scale_clip_quantize(x.astype(np.float64, copy=False), np.asarray(a, np.float64)[:, None],
                                       np.asarray(b, np.float64)[:, None], lo, hi, None)
    if x.dtype == np.float64 or not levels:
        level = physics.quantize(wide, lo, hi, levels).astype(x.dtype, copy=False)
    else:
        step = _step(lo, hi, levels)
        level = x.dtype.type(step) * np.round(wide / step).astype(x.dtype)
    return level - x.dtype.type(shift) if shift else level


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
    if kernel and periphery.applies(acc) and (not n.out_levels or n.out_levels >= 2):
        out = np.empty(acc.shape, acc.dtype)
        periphery.compiled()["output_code"](acc.reshape(-1), float(n.out_sat), _step(-1.0, 1.0, n.out_levels),
                                            bool(n.out_levels), out.reshape(-1))
        return out
    return physics.output_code(acc, n.out_sat, n.out_levels)


def readout(sub_out, sc: dict, *, kernel: bool = True):
    """Digital accumulation: y = a_out * sum over sub-tiles + b_out. sub_out [..., H, n_sub, d].
    kernel as for dac_query."""
    dtype = sub_out.dtype
    if kernel and periphery.applies(sub_out) and sub_out.ndim >= 3 and sub_out.shape[-2]:
        a, b = np.asarray(sc["a_out"], np.float64), np.asarray(sc["b_out"], np.float64)
        if a.shape == b.shape == sub_out.shape[-3:-2]:
            H, S, D = sub_out.shape[-3:]
            out = np.empty(sub_out.shape[:-2] + (D,), dtype)
            periphery.compiled()["readout"](sub_out.reshape(-1, H, S, D), a, b, out.reshape(-1, H, D))
            return out
    return sc["a_out"][:, None].astype(dtype) * sub_out.sum(axis=-2) + sc["b_out"][:, None].astype(dtype)
