"""The write path of a CodeStore (numba): one slot's written k and v, as their write-DAC codes,
in one call (the store's write is per layer step: two calls and their glue cost more than the
encoding of 2 x 12 x 64 values).

A stored deviation y is exactly a DAC level when y = T(code) x T(step) - T(0.45 V) in the
store's dtype T; the code is round((y + 0.45) / step), checked by recomputing the level.
"""
from __future__ import annotations

import numpy as np

_compiled = {}


def write_slot():
    """The compiled kernel (compiled or loaded from numba's cache once)."""
    if not _compiled:
        import numba

        global _code
        jit = numba.njit(cache=True, nogil=True, inline="always")
        _code = jit(_code)   # the per-value rule, inlined into _write_slot
        _compiled["write"] = numba.njit(cache=True, nogil=True)(_write_slot)
    return _compiled["write"]


def _write_slot(k_dev, v_dev, step, zero, inv_step, k_codes, v_codes, slot):
    """k_dev, v_dev [KV, D] (dtype T; step, zero, inv_step of T) -> their codes in
    k_codes[:, :, slot] (K column-major, [KV, D, M]) and v_codes[:, slot, :] (V row-major,
    [KV, M, D]). Returns False if a value is not exactly a level (its code is then 0)."""
    KV, D = k_dev.shape
    bad = 0
    for kv in range(KV):
        for d in range(D):
            c, miss = _code(k_dev[kv, d], step, zero, inv_step)
            k_codes[kv, d, slot] = c
            bad += miss
        for d in range(D):
            c, miss = _code(v_dev[kv, d], step, zero, inv_step)
            v_codes[kv, slot, d] = c
            bad += miss
    return bad == 0


def _code(y, step, zero, inv_step):
    """(code, 1 if y is not exactly the level of that code else 0): code round((y + zero) /
    step), 0 where no code 0..255 fits (or y is NaN)."""
    c = np.rint((y + zero) * inv_step)
    fits = c >= 0 and c <= 255          # False for NaN
    ci = np.uint8(c if fits else 0)
    return ci, 0 if fits and ci * step - zero == y else 1
