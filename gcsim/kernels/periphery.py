"""Fused kernels of a layer step's periphery (numba): the DAC front end of q, k and v, the
output counters' codes and the digital readout (adder tree and output scaler).

A second implementation of `gcsim.datapath`'s numpy path (which composes `gcsim.physics`),
written because a GPT-2 layer step is many numpy calls on [12, 64] arrays whose cost is the
per-call overhead, not the arithmetic: one compiled loop per stage instead of ~10 numpy calls.
Every operation is the numpy path's, in the same precision and order, so the results are
bit for bit the same (tests/test_datapath_kernels.py): no fastmath (no reassociation, no
fused multiply-adds), clips written as np.maximum / np.minimum compute them (a bound equal
to the value wins, NaN passes through), rounding half to even (np.rint).
`gcsim.datapath` routes its numpy CPU arrays here when numba is present; the numpy path
stays for other cases and is the oracle of the tests. Single-threaded: nothing to split.
"""
from __future__ import annotations

import numpy as np

from . import bitline

AVAILABLE = bitline.AVAILABLE
_compiled = {}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def applies(x) -> bool:
    """Whether these kernels compute exactly what the numpy path does for array x: numba
    present, a float32 or float64 numpy array (on the CPU), C-contiguous (reshaped as views)."""
    return AVAILABLE and type(x) is np.ndarray and x.dtype in _FLOATS and x.flags.c_contiguous


_dac_rows = None   # _dac compiled, called by _dac_step


def compiled():
    """{'dac', 'dac_step', 'output_code', 'readout', 'all_finite'}: the compiled kernels (compiled or loaded
    from numba's cache once)."""
    global _dac_rows
    if not _compiled:
        import numba

        jit = numba.njit(cache=True, nogil=True)
        _dac_rows = jit(_dac)
        _compiled.update(dac=_dac_rows, dac_step=jit(_dac_step), output_code=jit(_output_code),
                         readout=jit(_readout), all_finite=jit(_all_finite))
    return _compiled


def _dac(x, a, b, lo, hi, step, quantize, shift, out):
    """DAC front end of rows x [R, D] (row r belongs to head r % H): per-head scaler
    a x + b (a, b float64 [H]), clip to [lo, hi] and the level code round(. / step), all in
    float64 whatever x's dtype (datapath._dac says why); then the level in out's dtype,
    T(step) x T(code), minus T(shift) (0.45 V for stored k and v, 0 for q). quantize False:
    no quantization, T(clipped) - T(shift)."""
    R, D = x.shape
    H = a.shape[0]
    f = out.dtype.type
    step_t, shift_t = f(step), f(shift)
    for r in range(R):
        ah, bh = a[r % H], b[r % H]
        for e in range(D):
            w = ah * np.float64(x[r, e]) + bh
            if w <= lo:      # np.maximum(w, lo): lo unless w > lo; NaN stays NaN
                w = lo
            if w >= hi:      # np.minimum(w, hi)
                w = hi
            if quantize:
                out[r, e] = step_t * f(np.rint(w / step)) - shift_t
            else:
                out[r, e] = f(w) - shift_t


def _dac_step(q, k, v, a_q, b_q, a_k, b_k, a_v, b_v, q_lo, q_hi, q_step, q_quantize,
              kv_lo, kv_hi, kv_step, kv_quantize, shift, q_out, k_out, v_out):
    """The DACs of one layer step in one call: q [H, d] to pulse fractions, k and v [KV, d] to
    stored deviations (shift 0.45 V), each as _dac."""
    _dac_rows(q, a_q, b_q, q_lo, q_hi, q_step, q_quantize, 0.0, q_out)
    _dac_rows(k, a_k, b_k, kv_lo, kv_hi, kv_step, kv_quantize, shift, k_out)
    _dac_rows(v, a_v, b_v, kv_lo, kv_hi, kv_step, kv_quantize, shift, v_out)


def _output_code(acc, out_sat, step, quantize, out):
    """Output counters of charges acc [N] (any float dtype T): clip(acc / T(out_sat), -1, 1),
    then T(step) x round(. / T(step)) (quantize False: the clipped value), all in T as
    physics.output_code computes it."""
    f = out.dtype.type
    sat_t, step_t, lo, hi = f(out_sat), f(step), f(-1.0), f(1.0)
    for i in range(acc.shape[0]):
        y = acc[i] / sat_t
        if y <= lo:
            y = lo
        if y >= hi:
            y = hi
        if quantize:
            y = step_t * np.rint(y / step_t)
        out[i] = y


def _readout(sub, a, b, out):
    """Adder tree and output scaler: sub [N, H, S, D] codes -> out [N, H, D] =
    T(a_h) x (sum over s) + T(b_h), the sum as numpy reduces a non-inner axis: from 0, then
    s = 0, 1, ... in order (so a sum of -0.0 is +0.0); d innermost (vector instructions,
    the same additions per element)."""
    N, H, S, D = sub.shape
    f = out.dtype.type
    acc = np.empty(D, out.dtype)
    for n in range(N):
        for h in range(H):
            acc[:] = f(0.0)
            for s in range(S):
                for e in range(D):
                    acc[e] = acc[e] + sub[n, h, s, e]
            ah, bh = f(a[h]), f(b[h])
            for e in range(D):
                out[n, h, e] = ah * acc[e] + bh


def _all_finite(x):
    """Whether every element of x (1-d) is finite: v - v is 0 for a finite v and NaN for
    NaN or +-Inf. One pass with no early exit, so the loop vectorises; it runs on the S and
    outputs of every layer step (gcsim/finite.py)."""
    ok = True
    for i in range(x.shape[0]):
        v = x[i]
        ok &= (v - v) == 0
    return ok
