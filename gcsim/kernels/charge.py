"""Row sums of |I| over DAC codes (numba): the data-dependent array energy of a CodeStore.

Per K row d, the sum over the valid slots j of |I(code_dj, j)|; per V row (slot) j, the sum
over d of |I(code_jd, j)|, with |I| looked up in a table [M, codes] built from the cell law
(gcsim.physics.cell_abs_ua: one copy of the law). A loop over one-byte codes; numpy's gather
of the table is several times slower at GPT-2's 12 x 64 x 1024 cells per array.
"""
from __future__ import annotations

import numpy as np

_compiled = {}


def row_abs_currents():
    """The compiled kernel (compiled or loaded from numba's cache once)."""
    if not _compiled:
        import numba

        _compiled["rows"] = numba.njit(cache=True, nogil=True)(_row_abs_currents)
    return _compiled["rows"]


def _row_abs_currents(kc, vc, table, validf, k_rows, v_rows):
    """kc [KV,D,M], vc [KV,M,D] uint8 codes; table [M, codes] |I| (uA); validf [M] 1.0/0.0.
    Adds into k_rows [KV,D] and v_rows [KV,M] (float64, zeroed by the caller)."""
    KV, D, M = kc.shape
    for kv in range(KV):
        for d in range(D):
            row = kc[kv, d]
            acc = 0.0
            for j in range(M):
                acc += validf[j] * table[j, row[j]]
            k_rows[kv, d] += acc
        for j in range(M):
            row = vc[kv, j]
            acc = 0.0
            for d in range(D):
                acc += table[j, row[d]]
            v_rows[kv, j] += acc
