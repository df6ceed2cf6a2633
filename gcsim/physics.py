"""Physics of the gain-cell attention hardware, as small pure array functions.

This module is the single copy of the math: the numeric reference model
(`gcsim.reference`) composes these functions over whole sequences and the
simulator's components call them on the data they hold, so a disagreement between
the two can only come from timing, never from a second copy of the arithmetic.

Sources: Leroux et al., Nature Computational Science 5, 813-824 (2025) (section 2
of docs/paper-model.md) and the authors' released training code (GainCellAttention,
MIT), whose numeric model these functions reproduce.

Units: stored values and their deviations are volts (V), cell read currents are
microamperes (uA), pulse widths are fractions of T_max unless a name says `_ns`,
ages are picoseconds (`_ps`) or tokens.
"""
from __future__ import annotations

import numpy as np

# ---- array library ----------------------------------------------------------------------
#
# Every function takes arrays of any array-API library (numpy, CuPy, PyTorch, jax.numpy,
# array-api-strict) and returns arrays of the same library, on the same device. The
# namespace `xp` comes from the inputs (array-api-compat) or is passed explicitly.
# Plain numpy inputs (and Python numbers) use the numpy module itself, whose main
# namespace follows the array API since numpy 2.0: the numpy path stays as fast as
# before and gives the same bits.


def namespace(*arrays, xp=None):
    """Array namespace of `arrays` (numpy for numpy arrays and Python numbers), or `xp`."""
    if xp is not None:
        return xp
    if all(type(a) is np.ndarray for a in arrays):  # the common case, checked cheaply first
        return np
    if all(isinstance(a, (np.ndarray, np.generic, int, float, bool)) or a is None for a in arrays):
        return np
    import array_api_compat  # only needed for arrays other than numpy's

    others = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool))]
    return array_api_compat.array_namespace(*others)


def _device(x):
    if isinstance(x, np.ndarray):
        return None
    import array_api_compat

    return array_api_compat.device(x)


def _const(xp, c, like):
    """Constant c with the dtype (and device) of array `like`: the same typing as a numpy
    scalar of like's dtype (strongly typed, unlike a Python float)."""
    if xp is np:
        return like.dtype.type(c)
    return xp.asarray(c, dtype=like.dtype, device=_device(like))


def _is_float(xp, x) -> bool:
    if xp is np:  # the same answer, without isdtype's cost on the per-step path
        return x.dtype.kind == "f"
    return xp.isdtype(x.dtype, "real floating")


def _as_float(x, xp):
    """x as a float array, keeping float32 as float32 (Python float scalars do not upcast)."""
    x = xp.asarray(x)
    return x if _is_float(xp, x) else xp.astype(x, xp.float64)


# Signed zero of a stored value: VDD/2 (paper sec. 2.3).
V_ZERO_V = 0.45
# Read word-line voltage at which the cubic fit was taken (paper sec. 2.3).
V_READ_V = 0.9
# Linear cell law slope, uA per V of deviation (paper sec. 2.3).
LINEAR_SLOPE_UA_PER_V = 19.3
# The paper's 10-coefficient SPICE fit C_ij, i = 0..3 outer, j = 0..3-i inner:
# f(y) = sum_i sum_j C_ij * y**i * V_READ**j  (paper sec. 2.3, released code).
CUBIC_C_IJ = (0.17393044, 0.15653739, 0.14088365, 0.12679529, 5.51975209,
              4.96777688, 4.4709992, -1.44776001, -1.30298401, 46.05483778)

CELL_LAWS = ("linear", "cubic")


def cubic_coefficients(v_read_v: float = V_READ_V) -> np.ndarray:
    """Collapse the 10 C_ij into the four polynomial coefficients c_0..c_3 of y.

    At v_read_v = 0.9 this gives (0.52136, 13.61226, -2.62045, 46.05484) uA/V**i.
    """
    coeffs = np.zeros(4)
    idx = 0
    for i in range(4):
        for j in range(4 - i):
            coeffs[i] += CUBIC_C_IJ[idx] * v_read_v ** j
            idx += 1
    return coeffs


_CUBIC = cubic_coefficients()


def cell_linear_ua(y_v, *, xp=None):
    """Linear cell law: read current (uA) for a stored deviation y (V) from 0.45 V."""
    xp = namespace(y_v, xp=xp)
    return LINEAR_SLOPE_UA_PER_V * xp.asarray(y_v)


def cell_cubic_ua(y_v, *, xp=None):
    """Cubic cell law (SPICE fit): c0 + c1 y + c2 y^2 + c3 y^3, in uA, y in V."""
    xp = namespace(y_v, xp=xp)
    y = xp.asarray(y_v)
    c0, c1, c2, c3 = (_const(xp, c, y) if _is_float(xp, y) else float(c) for c in _CUBIC)
    return c0 + y * (c1 + y * (c2 + y * c3))


def cell_current_ua(y_v, law: str, *, xp=None):
    """Read current of a gain cell for deviation y_v under `law` ('linear' or 'cubic')."""
    if law == "linear":
        return cell_linear_ua(y_v, xp=xp)
    if law == "cubic":
        return cell_cubic_ua(y_v, xp=xp)
    raise ValueError(f"unknown cell law {law!r}; expected one of {CELL_LAWS}")


def quantize(x, lo: float, hi: float, levels: int | None, round_fn=None, *, xp=None):
    """DAC / counter quantizer of the paper's code: x -> step * round(x / step).

    step = (hi - lo) / (levels - 1). `levels` None or 0 means no quantization.
    The input is expected to be clipped to [lo, hi] already. Note that rounding is
    on a grid through 0, not through `lo`: for lo = 0 the two coincide (q, k, v);
    for the signed output range [-1, 1] with 32 levels, step = 2/31 and the clipped
    extremes +-1 round to +-16 steps (numpy rounds half to even), i.e. the published
    model has 33 output codes (-16..16); we reproduce it as published.
    round_fn: the rounding, xp.round (half to even) by default; a hook for e.g. a
    straight-through rounding when training through the quantizer with autodiff.
    """
    if not levels:
        return x
    if levels < 2:
        raise ValueError(f"quantizer needs at least 2 levels, got {levels}")
    xp = namespace(x, xp=xp)
    step = (hi - lo) / (levels - 1)
    if xp is np and round_fn is None and np.ndim(x):   # the same operations in place (fewer temporaries)
        y = np.divide(_as_float(x, xp), step)
        np.rint(y, out=y)
        return np.multiply(step, y, out=y)
    return step * (round_fn or xp.round)(_as_float(x, xp) / step)


def quantize_code(x, lo: float, hi: float, levels: int, *, xp=None):
    """Integer code of `quantize`: round(x / step) (what a counter or DAC register holds)."""
    xp = namespace(x, xp=xp)
    step = (hi - lo) / (levels - 1)
    return xp.astype(xp.round(xp.asarray(x) / step), xp.int32)


def scale_clip_quantize(x, a, b, lo: float, hi: float, levels: int | None, round_fn=None, *, xp=None):
    """Per-head affine scaler, clip to the DAC range, quantize: the DAC front end.

    a, b broadcast against x (e.g. shape [..., heads, 1] for x [..., heads, d]).
    """
    xp = namespace(x, xp=xp)
    x = _as_float(x, xp)
    if xp is np and x.ndim:   # the same operations in place (fewer temporaries per step)
        y = np.multiply(np.asarray(a, dtype=x.dtype), x)
        b = np.asarray(b, dtype=x.dtype)
        y = np.add(y, b, out=y) if np.broadcast_shapes(y.shape, b.shape) == y.shape else y + b
        np.minimum(np.maximum(y, lo, out=y), hi, out=y)   # clip, without np.clip's wrapper cost
        return quantize(y, lo, hi, levels, round_fn, xp=xp)
    dev = _device(x)
    a = xp.asarray(a, dtype=x.dtype) if dev is None else xp.asarray(a, dtype=x.dtype, device=dev)
    b = xp.asarray(b, dtype=x.dtype) if dev is None else xp.asarray(b, dtype=x.dtype, device=dev)
    scaled = a * x + b
    return quantize(xp.clip(scaled, lo, hi), lo, hi, levels, round_fn, xp=xp)


def hard_sigmoid(s_ua, s_sat_ua: float, t_max_ns: float | None = None, *, xp=None):
    """Charge-to-pulse converter: phi = clip(S / S_sat, 0, 1), a fraction of T_max, or the
    pulse width in ns when t_max_ns is given (15 ns in the paper).

    S is the integrated bit-line charge in uA*T_max (the sum of currents weighted by
    pulse fractions); S_sat = 80 in the paper.
    """
    xp = namespace(s_ua, xp=xp)
    phi = xp.clip(_as_float(s_ua, xp) / s_sat_ua, 0.0, 1.0)
    return phi if t_max_ns is None else phi * t_max_ns


def output_code(a_ua, out_sat_ua: float, levels: int | None, round_fn=None, *, xp=None):
    """Signed charge-to-pulse plus counter: clip(A / out_sat, -1, 1), quantized on [-1, 1]."""
    xp = namespace(a_ua, xp=xp)
    if xp is np and np.ndim(a_ua):   # the same operations in place
        y = np.divide(_as_float(a_ua, xp), out_sat_ua)
        np.minimum(np.maximum(y, -1.0, out=y), 1.0, out=y)
        return quantize(y, -1.0, 1.0, levels, round_fn, xp=xp)
    return quantize(xp.clip(_as_float(a_ua, xp) / out_sat_ua, -1.0, 1.0), -1.0, 1.0, levels, round_fn, xp=xp)


def decay_from_age(age_ps, tau_ps: float | None, *, xp=None):
    """Retention factor exp(-age / tau) of a stored deviation; tau None = no decay."""
    xp = namespace(age_ps, xp=xp)
    age = xp.asarray(age_ps, dtype=xp.float64)
    if tau_ps is None:
        return xp.ones_like(age)
    return xp.exp(-age / float(tau_ps))


def decay_per_token(age_tokens, rate_per_token: float, *, xp=None):
    """The paper's code form: exp(-rate * age in tokens), rate = 1.6e-4 per token."""
    xp = namespace(age_tokens, xp=xp)
    return xp.exp(-float(rate_per_token) * xp.asarray(age_tokens, dtype=xp.float64))


# ---- sliding window / ring buffer ---------------------------------------------------

def ring_slot(t, window: int, *, xp=None):
    """Slot that token t is written to: the oldest one, t mod M."""
    xp = namespace(t, xp=xp)
    return xp.asarray(t) % window


def sub_tile_of_slot(slot, array_size: int, *, xp=None):
    """Sub-tile holding a slot: slot // array size (64 in the paper)."""
    xp = namespace(slot, xp=xp)
    return xp.asarray(slot) // array_size


def slot_tokens(t: int, window: int, *, xp=np):
    """Token held by each slot while token t is being read (after its own write).

    Returns int64 [window]; -1 for a slot not yet written (t < M - 1). The window
    includes token t itself, so slot s holds the largest u <= t with u mod M == s.
    """
    slots = xp.arange(window, dtype=xp.int64)
    tokens = t - ((t - slots) % window)
    return xp.where(tokens >= 0, tokens, -1)


def valid_slots(t: int, window: int, *, xp=np):
    """Boolean [window]: which slots take part in the read at step t."""
    return slot_tokens(t, window, xp=xp) >= 0


# ---- array dot products through the cell law ------------------------------------------
#
# A cell law is a polynomial f(y) = sum_i c_i y**i (linear: c = (0, 19.3); cubic: four
# terms). Retention scales the stored deviation, f(y * d) = sum_i c_i d**i y**i, so a
# bit-line sum over cells with per-slot decay d_j is sum_i c_i d_j**i (x . y_j**i): a few
# matrix products against the stored powers y**i instead of evaluating f per cell.

def law_coefficients(law: str) -> np.ndarray:
    """Polynomial coefficients c_0..c_n (uA / V**i) of a cell law (numpy float64; use
    them as Python numbers with any array library)."""
    if law == "linear":
        return np.array([0.0, LINEAR_SLOPE_UA_PER_V])
    if law == "cubic":
        return _CUBIC.copy()
    raise ValueError(f"unknown cell law {law!r}; expected one of {CELL_LAWS}")


def stored_powers(y_v, n_terms: int, *, xp=None):
    """Powers y**1 .. y**(n_terms-1) of stored deviations, stacked on a new axis 0."""
    xp = namespace(y_v, xp=xp)
    y = xp.asarray(y_v)
    powers = [y]
    for _ in range(1, n_terms - 1):
        powers.append(powers[-1] * y)
    return xp.stack(powers)


def bitline_charges_qk(q, yk_pow, decay, valid, coeffs, *, xp=None):
    """K-array bit-line charges S (uA x T_max) for a bank of heads.

    q: [KV, G, d] pulse fractions (G query heads per K/V head); yk_pow: [P, KV, M, d]
    stored K deviations and their powers; decay: [M] retention factor per slot;
    valid: [M] bool, slots that take part; coeffs: c_0..c_P of the cell law.
    Returns S [KV, G, M]; S_j = sum_d q_d f(y_dj * decay_j), 0 on invalid slots.
    """
    xp = namespace(q, yk_pow, decay, xp=xp)
    s = (_const(xp, coeffs[0], q) * xp.sum(q, axis=-1))[..., None]  # broadcasts over slots
    d_pow = xp.ones_like(decay)
    for i in range(1, len(coeffs)):
        d_pow = d_pow * decay
        s = s + (_const(xp, coeffs[i], q) * d_pow) * xp.matmul(q, xp.matrix_transpose(yk_pow[i - 1, ...]))
    return s * xp.astype(valid, s.dtype)


def bitline_charges_av(phi, yv_pow, decay, coeffs, array_size: int, *, xp=None):
    """V-array bit-line charges A (uA x T_max) per sub-tile for a bank of heads.

    phi: [KV, G, M] pulse fractions driving the V rows (0 on invalid slots);
    yv_pow: [P, KV, M, d]; decay: [M]. Returns A [KV, G, n_sub, d] with
    A_s,d = sum_{j in s} phi_j f(y_jd * decay_j).
    """
    xp = namespace(phi, yv_pow, decay, xp=xp)
    kv, g, m = phi.shape
    n_sub = m // array_size
    w = xp.reshape(phi, (kv, g, n_sub, array_size))
    out = (_const(xp, coeffs[0], phi) * xp.sum(w, axis=-1))[..., None]  # broadcasts over d
    d_pow = xp.ones_like(decay)
    for i in range(1, len(coeffs)):
        d_pow = d_pow * decay
        wi = xp.permute_dims(xp.reshape(phi * (_const(xp, coeffs[i], phi) * d_pow), (kv, g, n_sub, array_size)),
                             (0, 2, 1, 3))
        yi = xp.reshape(yv_pow[i - 1, ...], (kv, n_sub, array_size, yv_pow.shape[-1]))
        out = out + xp.permute_dims(xp.matmul(wi, yi), (0, 2, 1, 3))
    return out


# ---- per-cell form (device non-idealities) ---------------------------------------------
#
# With a fixed-pattern spread of the cells (gcsim/noise.py) each cell has its own current
# factor and retention time constant, so the polynomial can no longer be factored per slot:
# each cell's current is evaluated, then summed along the bit lines.

def decay_per_cell(decay, inv_tau, *, xp=None):
    """Per-cell retention factors from per-slot ones: decay [M] (or any shape broadcasting
    against inv_tau) is exp(-age / tau) at the nominal tau; a cell with tau_cell = tau / inv_tau
    retains exp(-age inv_tau / tau) = decay ** inv_tau. inv_tau None: decay itself."""
    if inv_tau is None:
        return decay
    xp = namespace(decay, inv_tau, xp=xp)
    return xp.pow(decay, inv_tau)


def cell_currents_ua(y_v, decay, coeffs, gain=None, *, xp=None):
    """Read current (uA) of each cell: gain x f(y x decay), with f the cell law of
    coefficients c_0..c_n; y_v, decay and gain broadcast (gain None = 1)."""
    xp = namespace(y_v, decay, xp=xp)
    y = y_v * decay
    out = _const(xp, coeffs[-1], y) * xp.ones_like(y)
    for c in coeffs[-2::-1]:  # Horner
        out = out * y + _const(xp, c, y)
    return out if gain is None else out * gain


def bitline_charges_qk_cells(q, i_k, valid, *, xp=None):
    """K-array charges from per-cell currents: q [KV, G, d] pulse fractions, i_k [KV, M, d]
    currents (uA), valid [M] -> S [KV, G, M] = sum_d q_d i_dj, 0 on invalid slots."""
    xp = namespace(q, i_k, xp=xp)
    s = xp.matmul(q, xp.matrix_transpose(i_k))
    return s * xp.astype(valid, s.dtype)


def bitline_charges_av_cells(phi, i_v, array_size: int, *, xp=None):
    """V-array charges per sub-tile from per-cell currents: phi [KV, G, M] (0 on invalid
    slots), i_v [KV, M, d] -> A [KV, G, n_sub, d] = sum_{j in s} phi_j i_jd."""
    xp = namespace(phi, i_v, xp=xp)
    kv, g, m = phi.shape
    n_sub = m // array_size
    w = xp.permute_dims(xp.reshape(phi, (kv, g, n_sub, array_size)), (0, 2, 1, 3))   # [KV, n_sub, G, a]
    iv = xp.reshape(i_v, (kv, n_sub, array_size, i_v.shape[-1]))                    # [KV, n_sub, a, d]
    return xp.permute_dims(xp.matmul(w, iv), (0, 2, 1, 3))


# ---- integrated |I| of a bank read (the data-dependent array energy, gcsim/costs.py) ----
#
# The bit-line sums above are signed: cells with y < 0 (cubic: below ~ -0.04 V) subtract.
# The energy drawn from the supply follows the absolute current of every cell that conducts:
# a K cell (row d, column j) for the query pulse q_d, a V cell (row j, column d) for phi_j.
# Per read, Q_K = sum_j sum_d q_d |f(y_dj d_j)| and Q_V = sum_j phi_j sum_d |f(y_jd d_j)|:
# each needs only one sum of |f| per K row (over the slots read) or per V row (over d).

def cell_abs_ua(y_v, decay, coeffs, gain=None, *, xp=None):
    """|I| (uA) of each cell, |gain x f(y x decay)| (cell_currents_ua): y [..., M, d] stored
    deviations, decay [M] per slot or [..., M, d] per cell, gain per cell or None."""
    xp = namespace(y_v, decay, xp=xp)
    decay = xp.asarray(decay)
    if decay.ndim == 1:
        decay = decay[:, None]
    return xp.abs(cell_currents_ua(xp.asarray(y_v), decay, coeffs, gain, xp=xp))


def read_abs_charges(q, phi, k_row_abs_ua, v_row_abs_ua, *, xp=None):
    """Integrated |I| x pulse width (uA x T_max) of the cells a bank read drives.

    q [KV, G, d] query pulse fractions; phi [KV, G, M] charge-to-pulse fractions (0 on
    invalid slots); k_row_abs_ua [KV, d]: per K row, sum over the valid slots j of
    |f(y_dj d_j)|; v_row_abs_ua [KV, M]: per V row (slot), sum over d of |f(y_jd d_j)|.
    Returns (Q_K, Q_V), each [KV, G]: one entry per query head.
    """
    xp = namespace(q, phi, k_row_abs_ua, v_row_abs_ua, xp=xp)
    qk = xp.sum(xp.asarray(q, dtype=xp.float64) * k_row_abs_ua[:, None, :], axis=-1)
    qv = xp.sum(xp.asarray(phi, dtype=xp.float64) * v_row_abs_ua[:, None, :], axis=-1)
    return qk, qv
