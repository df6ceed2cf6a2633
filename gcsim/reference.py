"""Numeric reference model of gain-cell attention (docs/paper-model.md section 2).

Variants:
  softmax  sliding-window causal softmax attention, scale 1/sqrt(d): the ideal baseline.
  linear   the hardware model with the linear cell law f(y) = 19.3 y.
  cubic    the hardware model with the SPICE-fitted cubic cell law (the real cell).

Two forms that must agree:
  `layer_attention` / `head_attention`: a whole sequence at once, vectorised over heads,
      sub-tiles and tokens (blocks of steps bound the memory; no loop over tokens);
  `DecodeState`: one decode step at a time with explicit state, the ring buffer of
      stored K/V and the simulated time each slot was written.

Hardware stages, per head and step t: q' = a_q q + b_q, k' = a_k k + b_k,
v' = a_v v + b_v, clipped and quantized by the DACs; S_j = sum_d q'_d f(y_K * decay_j)
over the window's slots; phi = clip(S / S_sat, 0, 1); per sub-tile
A_s = sum_{j in s} phi_j f(y_V * decay_j) and out_s = Qz(clip(A_s / out_sat, -1, 1));
y = a_out sum_s out_s + b_out. Slot j = t mod M, sub-tile = j // array_size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import noise as gnoise
from . import physics
from .datapath import dac_kv, dac_query, default_scalers, layer_scalers, output_code, readout, retention_decay
from .errors import ReferenceModelError
from .finite import all_finite, raise_first_non_finite
from .hardware import Hardware
from .kernels import make_store
from .ringbuffer import RingBuffer

VARIANTS = ("softmax", "linear", "cubic")




# ---- validation of inputs ------------------------------------------------------------

def _check(name, arr, shape):
    arr = np.asarray(arr)
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = "[" + ", ".join("T" if s is None else str(s) for s in shape) + "]"
        raise ReferenceModelError(f"{name}: expected shape {want}, found {list(arr.shape)}")
    if arr.dtype.kind != "f":
        raise ReferenceModelError(f"{name}: expected a float array, found dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ReferenceModelError(f"{name}: NaN or Inf at index {list(idx)}")
    return arr


def _check_variant(variant):
    if variant not in VARIANTS:
        raise ReferenceModelError(f"unknown variant {variant!r}; expected one of {list(VARIANTS)}")


def hardware_for_variant(hw: Hardware, variant: str) -> Hardware:
    """The description with its cell law set by the variant ('linear' or 'cubic')."""
    if variant in ("linear", "cubic") and hw.numerics.cell_law != variant:
        return hw.derive(numerics={"cell_law": variant})
    return hw


def softmax_weights(scores, mask):
    """Softmax over the last axis, only where `mask` (the window) holds: the one softmax of
    gcsim, used by both forms."""
    scores = np.where(mask, scores, -np.inf)
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


# ---- whole-sequence form --------------------------------------------------------------

@dataclass
class Stages:
    """Every stage of attention over a sequence; arrays indexed [T, H, ...].

    q_in [T,H,d], k_in / v_in [T,KV,d]: what the DACs produced (pulse fractions; stored
    deviations from 0.45 V), or the raw inputs for softmax. S, phi [T,H,M]: per slot
    (slot layout, 0 where a slot takes no part); for softmax S are the scaled scores
    and phi the softmax weights. sub_out [T,H,n_sub,d]: quantized per-sub-tile outputs
    in [-1, 1] (None for softmax). out [T,H,d]: the attention output.
    """
    q_in: np.ndarray
    k_in: np.ndarray
    v_in: np.ndarray
    S: np.ndarray | None
    phi: np.ndarray | None
    sub_out: np.ndarray | None
    out: np.ndarray

    def head(self, h: int, group_size: int) -> "Stages":
        kv = h // group_size
        pick = lambda a, i: None if a is None else a[:, i]  # noqa: E731
        return Stages(pick(self.q_in, h), pick(self.k_in, kv), pick(self.v_in, kv), pick(self.S, h),
                      pick(self.phi, h), pick(self.sub_out, h), pick(self.out, h))


def layer_attention(q, k, v, hw: Hardware, *, variant: str | None = None, scalers: dict | None = None,
                    layer: int = 0, write_times_ps=None, read_times_ps=None, ages_ps=None,
                    stages: bool = True, dtype=np.float64, block: int = 128, offset: int = 0, skip: int = 0,
                    sequence: int = 0) -> Stages:
    """Attention of one layer over a whole sequence, all heads at once.

    q: [T, H, d]; k, v: [T, KV, d] (grouped-query: head h reads K/V head h // (H/KV)).
    variant: 'softmax' | 'linear' | 'cubic' (default: the description's cell law).
    scalers: per-head scaler arrays ([layers, H] / [layers, KV] or [H] / [KV]); None for
    the paper's initial values. write_times_ps / read_times_ps: [T] simulated times at
    which token t was written and read in this layer (default: t x the nominal token
    period), from which retention ages follow. ages_ps: [T, M] the age of every slot at
    each step's read, in slot layout, instead of the times (when something other than
    the token's own write set a slot's age, e.g. a refresh). stages=False skips S and phi.
    offset, skip: a part of a longer sequence (`steps_block` picks them): q, k, v hold steps
    offset.. (offset a multiple of shape.array_size, so slots and sub-tiles stay those of the
    whole sequence) and only steps offset + skip.. are computed; S, phi, sub_out, out and
    ages_ps then have T - skip rows (q_in, k_in, v_in all T).
    Device non-idealities: the description's `numerics.noise` (gcsim/noise.py; hardware variants
    only), each draw keyed by its position (sequence: which sequence's arrays, 0 unless
    comparing with one of several in flight) and, for read and write noise, the step.
    """
    variant = variant or hw.numerics.cell_law
    _check_variant(variant)
    try:
        dtype = np.dtype(dtype).type            # the scalar type: also used to convert coefficients
    except TypeError:
        raise ReferenceModelError(f"dtype: expected float32 or float64, found {dtype!r:.60}") from None
    if dtype not in (np.float32, np.float64):
        raise ReferenceModelError(f"dtype: expected float32 or float64, found {np.dtype(dtype)}")
    hw = hardware_for_variant(hw, variant)
    shp = hw.shape
    q = _check("q", q, (None, shp.heads, shp.d_head)).astype(dtype, copy=False)
    T = q.shape[0]
    k = _check("k", k, (T, shp.kv_heads, shp.d_head)).astype(dtype, copy=False)
    v = _check("v", v, (T, shp.kv_heads, shp.d_head)).astype(dtype, copy=False)
    period = hw.timing.nominal_token_period_ps
    M, a = shp.window, shp.array_size
    if offset % a or not 0 <= skip <= T or (offset and skip < M - 1):
        raise ReferenceModelError(f"offset {offset}, skip {skip}: the offset must be a multiple of the array size "
                                  f"{a} and the steps computed must have their whole window ({M} tokens) in the input")
    steps = offset + np.arange(T, dtype=np.int64)  # absolute step numbers (slots, noise keys, nominal times)
    wt = steps * period if write_times_ps is None else _times("write_times_ps", write_times_ps, T)
    rt = steps * period if read_times_ps is None else _times("read_times_ps", read_times_ps, T)
    # a read before the write, or writes going back in time, would give ages < 0 and decay > 1
    if T and (np.any(rt < wt) or np.any(np.diff(wt) < 0)):
        bad = int(np.argmax(rt < wt)) if np.any(rt < wt) else int(np.argmax(np.diff(wt) < 0)) + 1
        raise ReferenceModelError(f"read_times_ps / write_times_ps: step {bad} is read at {int(rt[bad])} ps, before "
                                  f"its write at {int(wt[bad])} ps, or written before step {bad - 1}; "
                                  "times must not go back")
    if ages_ps is not None:
        ages = np.asarray(ages_ps)
        if ages.shape != (T - skip, hw.shape.window):
            raise ReferenceModelError(f"ages_ps: expected shape [{T - skip}, {hw.shape.window}], found {list(ages.shape)}")
        if ages.dtype.kind not in "iuf" or not np.all(ages >= 0):  # NaN fails too
            raise ReferenceModelError("ages_ps: expected ages >= 0 ps (a negative age would give decay > 1)")
    sc = layer_scalers(scalers, layer, shp.heads, shp.kv_heads)

    # the numpy path of the datapath stages, here as for the bank read (physics): the step form
    # and the simulator use the fused kernels, so `gcsim validate` compares two implementations
    q_in = dac_query(q, sc, hw, variant, kernel=False)
    k_in = dac_kv(k, sc["a_k"], sc["b_k"], hw, variant, kernel=False)
    v_in = dac_kv(v, sc["a_v"], sc["b_v"], hw, variant, kernel=False)

    G, KV, d = shp.group_size, shp.kv_heads, shp.d_head
    noise = hw.numerics.noise
    noisy = variant != "softmax" and noise.active
    per_cell = noisy and noise.per_cell
    if noisy:  # write noise: keyed by (sequence, layer, K/V head, slot, d, step of the write)
        wkeys = (sequence, layer, np.arange(KV)[None, :, None], (steps % M)[:, None, None],
                 np.arange(d)[None, None, :], steps[:, None, None])
        k_in = gnoise.write_noise(k_in, noise, "write_k", *wkeys)
        v_in = gnoise.write_noise(v_in, noise, "write_v", *wkeys)
    n_out = T - skip
    out = np.empty((n_out, shp.heads, d), dtype)
    S_all = np.zeros((n_out, shp.heads, M), dtype) if stages else None
    phi_all = np.zeros((n_out, shp.heads, M), dtype) if stages else None
    sub_all = None if variant == "softmax" else np.empty((n_out, shp.heads, shp.n_sub_tiles, d), dtype)
    coeffs = None if variant == "softmax" else physics.law_coefficients(variant)
    yk_pow = None if variant == "softmax" else physics.stored_powers(k_in, len(coeffs))
    yv_pow = None if variant == "softmax" else physics.stored_powers(v_in, len(coeffs))
    if per_cell:  # fixed-pattern factors of every cell [KV, M, d] -> by slot [M, KV, d]; a smaller
        cells = {k: None if c is None else c.transpose(1, 0, 2).astype(dtype)   # block bounds the
                 for k, c in gnoise.cell_factors(noise, sequence, layer, KV, np.arange(M), d).items()}
        block = max(1, min(block, (1 << 20) // (M * KV * d)))                    # per-cell arrays

    t1 = skip
    while t1 < T:  # blocks of steps only bound memory; at multiples of `block` in absolute steps,
        # so that a part of a sequence computes exactly what the whole sequence does
        t0, t1 = t1, min(T, (offset + t1) // block * block + block - offset)
        o0, o1 = t0 - skip, t1 - skip  # rows of the outputs
        # tokens seen by the block, aligned to whole sub-tile arrays (blocks of `a` slots)
        u0 = max(0, t0 - M + 1) // a * a
        u1 = -(-t1 // a) * a
        ts, us = np.arange(t0, t1), np.arange(u0, u1)
        in_window = (us[None, :] <= ts[:, None]) & (us[None, :] > ts[:, None] - M) & (us[None, :] < T)
        qb = q_in[t0:t1].reshape(t1 - t0, KV, G, d).transpose(1, 2, 0, 3)  # [KV,G,tb,d]
        if variant == "softmax":
            kb = _pad_tokens(k_in, u0, u1)  # [U,KV,d]
            vb = _pad_tokens(v_in, u0, u1)
            scores = np.matmul(qb, kb.transpose(1, 2, 0)[:, None]) / np.sqrt(d)  # [KV,G,tb,U]
            w = softmax_weights(scores, in_window)
            ob = np.matmul(w, vb.transpose(1, 0, 2)[:, None])  # [KV,G,tb,d]
            out[o0:o1] = ob.transpose(2, 0, 1, 3).reshape(t1 - t0, shp.heads, d)
            s_tok, phi_tok = np.where(in_window, scores, 0.0), w
        else:
            if ages_ps is None:
                age_ps = rt[t0:t1, None] - _pad_tokens(wt, u0, u1)[None, :]
            else:  # slot layout -> token layout: token u sits in slot u mod M
                age_ps = ages[o0:o1][:, (offset + us) % M]
            age_tok = ts[:, None] - us[None, :]
            decay = np.where(in_window, retention_decay(age_ps, age_tok, hw), 0.0).astype(dtype)
            if per_cell:
                i_k, i_v = (_cell_currents(_pad_tokens(y[0], u0, u1), decay, cells[f"gain_{a_}"],
                                           cells[f"inv_tau_{a_}"], (offset + us) % M, coeffs)
                            for y, a_ in ((yk_pow, "k"), (yv_pow, "v")))  # [tb, U, KV, d]
                # S[kv, g, t, u] = sum_d q[kv, g, t, d] i_k[t, u, kv, d]
                s_tok = np.matmul(qb.transpose(0, 2, 1, 3), i_k.transpose(2, 0, 3, 1)).transpose(0, 2, 1, 3)
                s_tok = s_tok * in_window
            else:
                s_tok = (dtype(coeffs[0]) * qb.sum(axis=-1))[..., None] * in_window
                d_pow = np.ones_like(decay)
                pows = []
                for i in range(1, len(coeffs)):
                    d_pow = d_pow * decay
                    pows.append(d_pow)
                    yk = _pad_tokens(yk_pow[i - 1], u0, u1)  # [U,KV,d]
                    s_tok = s_tok + (dtype(coeffs[i]) * d_pow) * np.matmul(qb, yk.transpose(1, 2, 0)[:, None])
            if noisy:  # read noise on S: keyed by (sequence, layer, head, slot, step)
                heads = (np.arange(KV)[:, None] * G + np.arange(G)[None, :])[:, :, None, None]
                s_tok = gnoise.read_noise(s_tok, noise, "read_s", sequence, layer, heads,
                                          ((offset + us) % M)[None, None, None, :], (offset + ts)[None, None, :, None])
            phi_tok = physics.hard_sigmoid(s_tok, hw.numerics.s_sat)
            # per sub-tile sums: group tokens as [windows, sub-tile, row] and contract
            # per array block of `a` tokens, then blocks summed into their sub-tile
            # ((u // a) mod n_sub: the slot rule t mod M, // a)
            nb, n_sub, tb = (u1 - u0) // a, shp.n_sub_tiles, t1 - t0
            to_sub = np.zeros((nb, n_sub), dtype)
            to_sub[np.arange(nb), ((offset + u0) // a + np.arange(nb)) % n_sub] = 1.0
            if per_cell:  # blocks[kv, t, b, g, d] = sum_a phi[kv, g, t, b, a] i_v[t, b, a, kv, d]
                wi = phi_tok.reshape(KV, G, tb, nb, a).transpose(0, 2, 3, 1, 4)
                blocks = np.matmul(wi, i_v.reshape(tb, nb, a, KV, d).transpose(3, 0, 1, 2, 4))
                acc = np.matmul(blocks.transpose(0, 3, 1, 4, 2), to_sub)       # [KV, G, tb, d, n_sub]
                acc = acc.transpose(0, 1, 2, 4, 3)
            else:
                blocks = (dtype(coeffs[0]) * phi_tok.reshape(KV, G, tb, nb, a).sum(axis=4))[..., None] * np.ones(d, dtype)
                blocks = blocks.transpose(0, 3, 1, 2, 4).reshape(KV, nb, G * tb, d)
                for i in range(1, len(coeffs)):
                    wi = (phi_tok * (dtype(coeffs[i]) * pows[i - 1])).reshape(KV, G, tb, nb, a)
                    wi = wi.transpose(0, 3, 1, 2, 4).reshape(KV, nb, G * tb, a)
                    yv = _pad_tokens(yv_pow[i - 1], u0, u1).reshape(nb, a, KV, d).transpose(2, 0, 1, 3)
                    blocks = blocks + np.matmul(wi, yv)  # [KV, nb, G*tb, d]
                acc = np.matmul(to_sub.T, blocks.reshape(KV, nb, G * tb * d))  # [KV, n_sub, G*tb*d]
                acc = acc.reshape(KV, n_sub, G, tb, d).transpose(0, 2, 3, 1, 4)
            if noisy:  # read noise on A: keyed by (sequence, layer, head, sub-tile, d, step)
                heads = (np.arange(KV)[:, None] * G + np.arange(G)[None, :])[:, :, None, None, None]
                acc = gnoise.read_noise(acc, noise, "read_a", sequence, layer, heads,
                                        np.arange(n_sub)[None, None, None, :, None], np.arange(d),
                                        (offset + ts)[None, None, :, None, None])
            sub = physics.output_code(acc, hw.numerics.out_sat, hw.numerics.out_levels)  # [KV,G,tb,n_sub,d]
            sub_all[o0:o1] = sub.transpose(2, 0, 1, 3, 4).reshape(t1 - t0, shp.heads, n_sub, d)
            out[o0:o1] = readout(sub_all[o0:o1], sc, kernel=False)
        if stages:  # token layout -> slot layout: slot s holds token t - ((t - s) mod M)
            slots = np.arange(M)
            tok = ts[:, None] - ((offset + ts[:, None] - slots[None, :]) % M)
            ok = tok >= 0
            col = np.where(ok, tok - u0, 0)
            for arr, dst in ((s_tok, S_all), (phi_tok, phi_all)):
                flat = arr.transpose(2, 0, 1, 3).reshape(t1 - t0, shp.heads, -1)
                dst[o0:o1] = np.where(ok[:, None, :], np.take_along_axis(flat, col[:, None, :], axis=2), 0.0)
    if not all_finite(S_all, out):  # NaN/Inf is never a result (gcsim/finite.py)
        raise_first_non_finite({"q DAC": q_in, "k DAC": k_in, "v DAC": v_in, "S (K-array charge)": S_all,
                                "phi (charge-to-pulse)": phi_all, "sub-tile output codes": sub_all,
                                "output (adder tree and output scaler)": out},
                               layer=layer, where=f"reference model ({variant}), {hw.source}")
    return Stages(q_in, k_in, v_in, S_all, phi_all, sub_all, out)


def steps_block(t0: int, t1: int, hw: Hardware) -> tuple[int, int]:
    """(offset, skip) for computing steps t0..t1-1 alone: the tokens from `offset` (the oldest
    one in step t0's window, aligned down to a whole array) to t1 - 1 are the input, and the
    first t0 - offset of them only fill the window:
    layer_attention(q[offset:t1], k[offset:t1], v[offset:t1], ..., offset=offset, skip=t0 - offset)."""
    a = hw.shape.array_size
    offset = max(0, t0 - hw.shape.window + 1) // a * a
    return offset, t0 - offset


def _cell_currents(y, decay, gain, inv_tau, slots, coeffs):
    """Per-cell currents of the block's tokens [tb, U, KV, d]: y [U, KV, d] stored deviations,
    decay [tb, U] per slot, gain / inv_tau [M, KV, d] (or None) picked at the tokens' slots."""
    dc = physics.decay_per_cell(decay[:, :, None, None], None if inv_tau is None else inv_tau[slots])
    return physics.cell_currents_ua(y[None], dc, coeffs, None if gain is None else gain[slots])


def _times(name, arr, T):
    arr = np.asarray(arr)
    if arr.shape != (T,):
        raise ReferenceModelError(f"{name}: expected shape [{T}], found {list(arr.shape)}")
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
        raise ReferenceModelError(f"{name}: expected finite times in ps, found dtype {arr.dtype}")
    return arr.astype(np.int64)


def _pad_tokens(x, u0, u1):
    """x[u0:u1] along axis 0, zero-padded past the end of the sequence."""
    part = x[u0:u1]
    if part.shape[0] == u1 - u0:
        return part
    pad = np.zeros((u1 - u0 - part.shape[0],) + x.shape[1:], x.dtype)
    return np.concatenate([part, pad])


def head_attention(q, k, v, hw: Hardware, *, variant: str | None = None, scalers: dict | None = None,
                   write_times_ps=None, read_times_ps=None, stages: bool = True, dtype=np.float64) -> Stages:
    """Attention of one head over a whole sequence: q, k, v [T, d] -> Stages with the
    head axis removed (S, phi [T, M]; sub_out [T, n_sub, d]; out [T, d]).

    scalers: a dict of scalars (a_q, b_q, a_k, b_k, a_v, b_v, a_out, b_out), missing keys
    take the paper's initial values.
    """
    if not isinstance(hw, Hardware):
        raise ReferenceModelError(f"hw: expected a gcsim.Hardware (gcsim.load_hardware), found {type(hw).__name__}")
    one = hw.derive(shape={"layers": 1, "heads": 1, "kv_heads": 1}, periphery={"counters_shared_by": 1})
    base = {k_: v_[0] for k_, v_ in default_scalers(1, 1, 1).items()}
    if scalers:
        if not isinstance(scalers, dict):
            raise ReferenceModelError(f"scalers: expected a dict of numbers, found {type(scalers).__name__}")
        unknown = set(scalers) - set(base)
        if unknown:
            raise ReferenceModelError(f"scalers: unknown keys {sorted(map(str, unknown))}; expected {sorted(base)}")
        for k_, v_ in scalers.items():
            try:
                value = np.atleast_1d(np.asarray(v_, dtype=np.float64))
            except (TypeError, ValueError):
                value = None
            if value is None or value.shape != (1,) or not np.isfinite(value).all():
                raise ReferenceModelError(f"scalers.{k_}: expected a finite number, found {v_!r:.60}")
            base[k_] = value
    for name, arr in (("q", q), ("k", k), ("v", v)):
        if np.ndim(arr) != 2:
            raise ReferenceModelError(f"{name}: expected shape [T, {hw.shape.d_head}], found {list(np.shape(arr))}")
    res = layer_attention(np.asarray(q)[:, None], np.asarray(k)[:, None], np.asarray(v)[:, None], one,
                          variant=variant, scalers=base, write_times_ps=write_times_ps,
                          read_times_ps=read_times_ps, stages=stages, dtype=dtype)
    return res.head(0, 1)


def model_attention(trace_q, trace_k, trace_v, hw: Hardware, **kwargs) -> list[Stages]:
    """Every layer: q [T, L, H, d], k, v [T, L, KV, d] -> list of per-layer Stages."""
    return [layer_attention(trace_q[:, l], trace_k[:, l], trace_v[:, l], hw, layer=l, **kwargs)
            for l in range(hw.shape.layers)]


# ---- decode-step form ------------------------------------------------------------------

@dataclass
class StepStages:
    """One step of one layer: q_in [H,d]; S, phi [H,M]; sub_out [H,n_sub,d] or None; out [H,d]."""
    q_in: np.ndarray
    S: np.ndarray
    phi: np.ndarray
    sub_out: np.ndarray | None
    out: np.ndarray


class DecodeState:
    """Explicit decode state of one layer: the ring buffer of written K/V and write times.

    write(t, k_t, v_t, time_ps) stores token t in slot t mod M of `ring` (the same
    `gcsim.ringbuffer.RingBuffer` as the simulator's tiles); read(q_t, t, time_ps) attends
    over the valid slots with retention ages time_ps - write time.
    storage: 'auto' (DAC codes and the fused kernel of `gcsim.kernels` where exact, else
    float powers through physics), 'codes' or 'powers'; the whole-sequence form always uses
    physics, so comparing the two forms checks the kernel.
    """

    def __init__(self, hw: Hardware, *, variant: str | None = None, scalers: dict | None = None,
                 layer: int = 0, dtype=np.float64, storage: str = "auto", sequence: int = 0):
        self.variant = variant or hw.numerics.cell_law
        _check_variant(self.variant)
        self.hw = hw = hardware_for_variant(hw, self.variant)
        s = hw.shape
        self.dtype = np.dtype(dtype)
        self.sc = layer_scalers(scalers, layer, s.heads, s.kv_heads)
        self.coeffs = None if self.variant == "softmax" else physics.law_coefficients(self.variant)
        n_stored = 2 if self.variant == "softmax" else len(self.coeffs)  # softmax keeps k, v as given
        # the hardware variants keep their values in a kernels store (DAC codes read by the
        # fused kernel where exact, else float powers read through physics)
        store = None if self.variant == "softmax" else make_store(hw, self.dtype, kind=storage, layer=layer,
                                                                   sequence=sequence)
        self.ring = RingBuffer(s.window, s.array_size, kv_heads=s.kv_heads, d_head=s.d_head,
                               n_powers=n_stored - 1, dtype=self.dtype, storage=store)

    def write(self, t: int, k_t, v_t, time_ps: int) -> None:
        s = self.hw.shape
        k_t = _check("k_t", k_t, (s.kv_heads, s.d_head)).astype(self.dtype, copy=False)
        v_t = _check("v_t", v_t, (s.kv_heads, s.d_head)).astype(self.dtype, copy=False)
        self.ring.write(t, time_ps, dac_kv(k_t, self.sc["a_k"], self.sc["b_k"], self.hw, self.variant),
                        dac_kv(v_t, self.sc["a_v"], self.sc["b_v"], self.hw, self.variant))

    def read(self, q_t, t: int, time_ps: int) -> StepStages:
        s, hw = self.hw.shape, self.hw
        q_t = _check("q_t", q_t, (s.heads, s.d_head)).astype(self.dtype, copy=False)
        ring = self.ring
        valid = ring.valid(t)
        q_in = dac_query(q_t, self.sc, hw, self.variant)
        qb = q_in.reshape(s.kv_heads, s.group_size, s.d_head)
        if self.variant == "softmax":
            scores = np.matmul(qb, ring.k_pow[0].transpose(0, 2, 1)) / np.sqrt(s.d_head)
            w = softmax_weights(scores, valid)
            out = np.matmul(w, ring.v_pow[0]).reshape(s.heads, s.d_head)
            return StepStages(q_in, np.where(valid, scores, 0.0).reshape(s.heads, -1),
                              w.reshape(s.heads, -1), None, out)
        decay = np.where(valid, retention_decay(ring.ages_ps(time_ps), ring.ages_tokens(t), hw), 0.0).astype(self.dtype)
        S, phi, acc = ring.read(qb, decay, valid, t)
        sub = output_code(acc, hw).reshape(s.heads, s.n_sub_tiles, s.d_head)
        return StepStages(q_in, S.reshape(s.heads, -1), phi.reshape(s.heads, -1), sub, readout(sub, self.sc))
