"""Fused bit-line kernel over compact K/V storage (numba): one bank read of one layer.

A second implementation of the physics of a bank read, written for speed; tested code for
code against `gcsim.physics` (tests/test_kernels.py). Each stored cell is its write-DAC code
(one uint8); the cell's deviation y = code * step - 0.45 V and its powers are recomputed in
registers, so a read streams one byte per cell instead of three stored powers in float.

For a K/V head bank with G query heads, per slot j and sub-tile s (as physics does):
  S_j  = c0 sum_d q_d + sum_i (c_i d_j^i) (sum_d q_d y_dj^i),  0 on an invalid slot
  phi  = clip(S / S_sat, 0, 1)
  A_sd = c0 sum_{j in s} phi_j + sum_i sum_{j in s} (phi_j c_i d_j^i) y_jd^i
with the same grouping of operations as physics; only the order of the dot products'
additions differs (physics leaves it to BLAS), so float64 codes agree and float32 codes
differ only where the exact value lies at a code boundary.

Work is split into (K/V head, query head) units; every output element is computed by one
unit in a fixed order, so results do not depend on the number of threads.
Why numba: the read is memory-bound in numpy (three float powers per cell, ~226 MB per
GPT-2 step); a compiled loop over one-byte codes is needed to pass it, numba compiles
plain Python loops with no C toolchain at install time, is widely used and well kept.
Threads: the kernel is compiled serial over a range of units; with n > 1 threads the
caller and n - 1 helper threads take units one at a time (gcsim/kernels/bitline_threads.py),
and the caller never waits long for a helper that the machine runs late. numba's parallel
runtime (prange, used before) waits for every thread at the end of each read: with the
second core busy a GPT-2 replay on 2 threads fell to 22-84 steps/s.
Threads: GCSIM_THREADS (or NUMBA_NUM_THREADS, its older name), default 1, or set_threads(n).
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

from ..errors import SimError

# numba (and LLVM) cost ~60 MB and a second to import: only a run that reads codes pays it
AVAILABLE = importlib.util.find_spec("numba") is not None
_compiled = {}
_threads = {}
THREADS_ENV = ("GCSIM_THREADS", "NUMBA_NUM_THREADS")   # the first one set counts


def set_threads(n: int) -> None:
    """Threads a bank read is split over (default: GCSIM_THREADS, else NUMBA_NUM_THREADS, else 1)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SimError(f"kernel threads: expected a whole number >= 1, found {n!r}")
    _threads["n"] = int(n)


def get_threads() -> int:
    """set_threads' n, else what the environment asks for."""
    return _threads.get("n") or threads_from_environment(os.environ)


def threads_from_environment(environ) -> int:
    """The kernel threads the environment asks for (1 when it names none)."""
    for name in THREADS_ENV:
        text = environ.get(name, "").strip()
        if text:
            if not (text.isdigit() and int(text) >= 1):
                raise SimError(f"environment variable {name}: expected a whole number >= 1, found {text!r}")
            return int(text)
    return 1


def _bank_read_split(kernel):
    def bank_read(q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size, S, phi, A):
        """One bank read (arguments as _bank_read), its units split over get_threads() threads."""
        units = q.shape[0] * q.shape[1]
        n = min(get_threads(), units)
        if n == 1:
            kernel(q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size, S, phi, A, 0, units)
            return
        from . import bitline_threads   # the thread team, started by the first split read

        bitline_threads.bank_read_team(q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size,
                                       S, phi, A, n)
    return bank_read


def compiled():
    """The numba-compiled bank read (compiled or loaded from cache once), split over threads."""
    global _slot_weights, _units, _unit
    if not _compiled:
        import numba

        # fastmath "contract" only: multiply-add pairs become FMAs (rounded once, as BLAS);
        # no reassociation, so the additions keep their order
        jit = numba.njit(cache=True, nogil=True, fastmath={"contract"})
        # the parts become compiled functions under their own names, as the compiled callers
        # (_bank_read here, the thread team in bitline_threads.py) find them
        _slot_weights, _unit = jit(_slot_weights), jit(_unit)
        _units = jit(_units)
        kernel = _compiled["kernel"] = jit(_bank_read)
        _compiled["bank_read"] = _bank_read_split(kernel)
    return _compiled["bank_read"]


def _bank_read(q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size, S, phi, A, u0, u1):
    """q [KV,G,D]; kc [KV,D,M] / vc [KV,M,D] uint8 codes; decay [M]; valid [M] bool;
    coeffs c_0..c_n (n = 1: linear law, 3: cubic), all floats of q's dtype.
    Writes S, phi [KV,G,M] and A [KV,G,n_sub,D] of units u0..u1-1 (unit = kv * G + g)."""
    kcoef, validf = _slot_weights(decay, valid, coeffs)
    _units(q, kc, vc, step, zero, kcoef, validf, coeffs, s_sat, array_size, S, phi, A, u0, u1)


def _slot_weights(decay, valid, coeffs):
    """Per slot j: kcoef [3, M] = c_i d_j^i (d^i as physics forms it: d_pow = d_pow * decay
    from ones), validf [M] = 1 on a valid slot, else 0; in coeffs' dtype."""
    M = decay.shape[0]
    n_pow = coeffs.shape[0] - 1
    f = coeffs.dtype.type
    kcoef = np.zeros((3, M), coeffs.dtype)
    validf = np.zeros(M, coeffs.dtype)
    for j in range(M):
        d_pow = f(1)
        for i in range(1, n_pow + 1):
            d_pow = d_pow * decay[j]
            kcoef[i - 1, j] = coeffs[i] * d_pow
        validf[j] = f(1) if valid[j] else f(0)
    return kcoef, validf


def _units(q, kc, vc, step, zero, kcoef, validf, coeffs, s_sat, array_size, S, phi, A, u0, u1):
    """The bank read of units u0..u1-1, given the slot weights of _slot_weights."""
    G = q.shape[1]
    for unit in range(u0, u1):  # one (K/V head, query head) per unit
        kv = unit // G
        g = unit % G
        _unit(q, kc, vc, step, zero, kcoef, validf, coeffs, s_sat, array_size, kv, g, S[kv, g], phi[kv, g], A[kv, g])


def _unit(q, kc, vc, step, zero, kcoef, validf, coeffs, s_sat, array_size, kv, g, S_row, phi_row, A_unit):
    """One unit (K/V head kv, query head g): writes S_row, phi_row [M] and A_unit [n_sub, D]."""
    D = q.shape[2]
    M = kc.shape[2]
    a = array_size
    n_sub = M // a
    n_pow = coeffs.shape[0] - 1
    f = q.dtype.type
    zero_f, one_f = f(0), f(1)
    c0 = coeffs[0]
    acc = zero_f
    for d in range(D):
        acc += q[kv, g, d]
    s0 = c0 * acc    # c0 sum_d q_d
    t1 = np.zeros(M, q.dtype)
    t2 = np.zeros(M, q.dtype)
    t3 = np.zeros(M, q.dtype)
    # K array: t_i[j] = sum_d q_d y_dj^i, d in order (rows taken four at a time only to
    # save loads and stores of t: the additions keep their order)
    d = 0
    while d < D:
        nd = min(4, D - d)
        r0 = kc[kv, d]
        r1 = kc[kv, d + 1] if nd > 1 else r0
        r2 = kc[kv, d + 2] if nd > 2 else r0
        r3 = kc[kv, d + 3] if nd > 3 else r0
        q0 = q[kv, g, d]
        q1 = q[kv, g, d + 1] if nd > 1 else zero_f
        q2 = q[kv, g, d + 2] if nd > 2 else zero_f
        q3 = q[kv, g, d + 3] if nd > 3 else zero_f
        if nd == 4 and n_pow == 3:
            for j in range(M):
                y0 = f(r0[j]) * step - zero
                y1 = f(r1[j]) * step - zero
                y2 = f(r2[j]) * step - zero
                y3 = f(r3[j]) * step - zero
                z0 = y0 * y0
                z1 = y1 * y1
                z2 = y2 * y2
                z3 = y3 * y3
                t1[j] = (((t1[j] + q0 * y0) + q1 * y1) + q2 * y2) + q3 * y3
                t2[j] = (((t2[j] + q0 * z0) + q1 * z1) + q2 * z2) + q3 * z3
                t3[j] = (((t3[j] + q0 * (z0 * y0)) + q1 * (z1 * y1)) + q2 * (z2 * y2)) + q3 * (z3 * y3)
        elif nd == 4:
            for j in range(M):
                t1[j] = ((((t1[j] + q0 * (f(r0[j]) * step - zero)) + q1 * (f(r1[j]) * step - zero))
                          + q2 * (f(r2[j]) * step - zero)) + q3 * (f(r3[j]) * step - zero))
        else:  # the last rows of a d not divisible by 4, one at a time
            for k in range(nd):
                rk = kc[kv, d + k]
                qk = q[kv, g, d + k]
                for j in range(M):
                    y = f(rk[j]) * step - zero
                    t1[j] += qk * y
                    if n_pow == 3:
                        t2[j] += qk * (y * y)
                        t3[j] += qk * (y * y * y)
        d += nd
    # S, then the charge-to-pulse phi, and the V-row weights phi c_i d^i
    w1 = np.empty(M, q.dtype)
    w2 = np.empty(M, q.dtype)
    w3 = np.empty(M, q.dtype)
    for j in range(M):
        s = s0 + kcoef[0, j] * t1[j]
        if n_pow == 3:
            s = s + kcoef[1, j] * t2[j]
            s = s + kcoef[2, j] * t3[j]
        s = s * validf[j]
        S_row[j] = s
        p = min(max(s / s_sat, zero_f), one_f)
        phi_row[j] = p
        w1[j] = p * kcoef[0, j]
        w2[j] = p * kcoef[1, j]
        w3[j] = p * kcoef[2, j]
    # V array, per sub-tile: a_i[d] = sum_j w_i[j] y_jd^i, j in order (four rows at a time)
    a1 = np.empty(D, q.dtype)
    a2 = np.empty(D, q.dtype)
    a3 = np.empty(D, q.dtype)
    for sub in range(n_sub):
        j0 = sub * a
        phisum = zero_f
        for j in range(j0, j0 + a):
            phisum += phi_row[j]
        a1[:] = 0
        a2[:] = 0
        a3[:] = 0
        j = j0
        while j < j0 + a:
            if j + 4 <= j0 + a and n_pow == 3:
                r0, r1, r2, r3 = vc[kv, j], vc[kv, j + 1], vc[kv, j + 2], vc[kv, j + 3]
                p0, p1, p2, p3 = w1[j], w1[j + 1], w1[j + 2], w1[j + 3]
                u0, u1, u2, u3 = w2[j], w2[j + 1], w2[j + 2], w2[j + 3]
                v0, v1, v2, v3 = w3[j], w3[j + 1], w3[j + 2], w3[j + 3]
                for e in range(D):
                    y0 = f(r0[e]) * step - zero
                    y1 = f(r1[e]) * step - zero
                    y2 = f(r2[e]) * step - zero
                    y3 = f(r3[e]) * step - zero
                    z0 = y0 * y0
                    z1 = y1 * y1
                    z2 = y2 * y2
                    z3 = y3 * y3
                    a1[e] = (((a1[e] + p0 * y0) + p1 * y1) + p2 * y2) + p3 * y3
                    a2[e] = (((a2[e] + u0 * z0) + u1 * z1) + u2 * z2) + u3 * z3
                    a3[e] = (((a3[e] + v0 * (z0 * y0)) + v1 * (z1 * y1)) + v2 * (z2 * y2)) + v3 * (z3 * y3)
                j += 4
            else:
                r0 = vc[kv, j]
                p0, u0, v0 = w1[j], w2[j], w3[j]
                for e in range(D):
                    y = f(r0[e]) * step - zero
                    a1[e] += p0 * y
                    if n_pow == 3:
                        a2[e] += u0 * (y * y)
                        a3[e] += v0 * (y * y * y)
                j += 1
        base = c0 * phisum
        for e in range(D):
            v = base + a1[e]
            if n_pow == 3:
                v = v + a2[e]
                v = v + a3[e]
            A_unit[sub, e] = v
