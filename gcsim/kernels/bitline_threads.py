"""The bank read split over threads: numba's parallel runtime runs n fixed unit ranges of
the serial kernel (gcsim/kernels/bitline.py) at once.

The split is fixed by n alone (unit ranges units * c // n), and each output element is
written by one range in the kernel's order, so results do not depend on how many threads
run the ranges. Imported only by a split read: numba's threading layer (OpenMP where the
system has it, else TBB or numba's workqueue) loads with it.
"""
from __future__ import annotations

import numba

from . import bitline

bitline.compiled()
_kernel = bitline._compiled["kernel"]   # the serial kernel's dispatcher


@numba.njit(cache=True, nogil=True, parallel=True)
def bank_read_chunks(q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size, S, phi, A, n):
    units = q.shape[0] * q.shape[1]
    for c in numba.prange(n):
        _kernel(q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size, S, phi, A,
                units * c // n, units * (c + 1) // n)
