"""K/V storage of one layer's gain-cell arrays, and the bank read over it.

Two forms with one interface (`write(slot, k_dev, v_dev, step)`, `read(q, decay, valid, step)`):

  CodeStore   each cell as its write-DAC code (uint8), read by the fused numba kernel
              (bitline.py). Exact when the write DAC quantizes and nothing perturbs a
              written value: then a stored deviation is code * step - 0.45 V, bit for bit.
  PowerStore  each cell as its deviation and powers y, y^2, y^3 in float, read through
              `gcsim.physics` (the float path: unquantized writes, write noise, per-cell
              spread, other array libraries).

Device non-idealities (`numerics.noise`, gcsim/noise.py) live in PowerStore, the one place
the simulator's tiles and the reference's DecodeState hold values: write noise on each write,
read noise on S and A of each read, the fixed-pattern per-cell current and retention spread
(then the bank read takes the per-cell form of physics). The store knows its position
(layer, sequence); writes and reads pass the step. `make_store` picks CodeStore where it is
exact, no noise is on and the kernel is available (read noise and tau spread would fit a
kernel too, but the fused kernel has no hook for them yet: the float path is used).
K codes are kept column-major per head ([KV, d, M]: a K column is a slot) and V codes
row-major ([KV, M, d]: a V row is a slot), the order each array is read in.
"""
from __future__ import annotations

import numpy as np

from .. import noise as gnoise
from .. import physics
from . import bitline, charge, encode
from .device import namespace_for, to_host


class NotOnGrid(ValueError):
    """A value written to a CodeStore is not exactly a write-DAC level."""


class PowerStore:
    """Stored deviations and their cell-law powers, read through physics (any array library:
    `xp` with `device`; writes and reads take and give host numpy arrays)."""

    kind = "powers"

    def __init__(self, kv_heads: int, window: int, d_head: int, dtype, coeffs, array_size: int,
                 s_sat: float, *, xp=np, device=None, noise=None, layer: int = 0, sequence: int = 0):
        """noise: the description's `numerics.noise` (None or all 0: the ideal chip); layer and
        sequence: where these arrays are, the keys of its draws."""
        self.coeffs, self.array_size, self.s_sat, self.xp, self.device = coeffs, array_size, s_sat, xp, device
        self.n_pow = len(coeffs) - 1
        self._np_dtype = np.dtype(dtype)
        self._dtype = getattr(xp, self._np_dtype.name)
        shape = (self.n_pow, kv_heads, window, d_head)
        self.k_pow = xp.zeros(shape, dtype=self._dtype, **self._on())
        self.v_pow = xp.zeros(shape, dtype=self._dtype, **self._on())
        self.noise = noise if noise is not None and noise.active else None
        self.position = (sequence, layer)
        cells = gnoise.cell_factors(self.noise, sequence, layer, kv_heads, np.arange(window), d_head)
        self.cells = {k: None if v is None else self._dev(v.astype(self._np_dtype)) for k, v in cells.items()}
        self.per_cell = self.noise is not None and self.noise.per_cell

    def _on(self):
        return {} if self.device is None else {"device": self.device}

    def _dev(self, x, dtype=None):
        if self.xp is np:
            return x
        return self.xp.asarray(np.asarray(x), dtype=dtype or self._dtype, **self._on())

    def write(self, slot: int, k_dev, v_dev, step: int | None = None) -> None:
        xp = self.xp
        if self.noise is not None and self.noise.write_sigma_v > 0:  # keys: (seq, layer, K/V head, slot, d, step)
            keys = (*self.position, np.arange(np.shape(k_dev)[0])[:, None], slot, np.arange(np.shape(k_dev)[1]),
                    _step(step))
            k_dev = gnoise.write_noise(np.asarray(k_dev), self.noise, "write_k", *keys)
            v_dev = gnoise.write_noise(np.asarray(v_dev), self.noise, "write_v", *keys)
        self.k_pow[:, :, slot, ...] = physics.stored_powers(self._dev(k_dev), self.n_pow + 1, xp=xp)
        self.v_pow[:, :, slot, ...] = physics.stored_powers(self._dev(v_dev), self.n_pow + 1, xp=xp)

    def read(self, q, decay, valid, step: int | None = None):
        """q [KV,G,d] pulse fractions; decay [M] (0 on invalid slots); valid [M] bool; step:
        the token read (keys of read noise). Returns S, phi [KV,G,M] and A [KV,G,n_sub,d] (numpy)."""
        xp = self.xp
        noisy = self.noise is not None and self.noise.read_sigma_rel > 0
        if noisy:
            kv, g, _ = np.shape(q)
            heads = np.arange(kv)[:, None, None] * g + np.arange(g)[None, :, None]
        q, decay, valid = self._dev(q), self._dev(decay), self._dev(valid, xp.bool)
        if self.per_cell:
            c = self.cells
            i_k = physics.cell_currents_ua(self.k_pow[0, ...], physics.decay_per_cell(
                decay[:, None], c["inv_tau_k"], xp=xp), self.coeffs, c["gain_k"], xp=xp)
            S = physics.bitline_charges_qk_cells(q, i_k, valid, xp=xp)
        else:
            S = physics.bitline_charges_qk(q, self.k_pow, decay, valid, self.coeffs, xp=xp)
        if noisy:  # keys: (seq, layer, head, slot, step)
            S = S * self._read_factor("read_s", heads, np.arange(S.shape[-1])[None, None, :], step)
        phi = physics.hard_sigmoid(S, self.s_sat, xp=xp)
        if self.per_cell:
            i_v = physics.cell_currents_ua(self.v_pow[0, ...], physics.decay_per_cell(
                decay[:, None], c["inv_tau_v"], xp=xp), self.coeffs, c["gain_v"], xp=xp)
            A = physics.bitline_charges_av_cells(phi, i_v, self.array_size, xp=xp)
        else:
            A = physics.bitline_charges_av(phi, self.v_pow, decay, self.coeffs, self.array_size, xp=xp)
        if noisy:  # keys: (seq, layer, head, sub-tile, d, step)
            A = A * self._read_factor("read_a", heads[..., None], np.arange(A.shape[2])[:, None],
                                      np.arange(A.shape[3]), step)
        return to_host(S), to_host(phi), to_host(A)

    def _read_factor(self, stream, *keys):
        *pos, step = keys
        return self._dev(gnoise.read_factor(self.noise, stream, *self.position, *pos, _step(step))
                         .astype(self._np_dtype))

    def powers(self):
        return to_host(self.k_pow), to_host(self.v_pow)

    def row_abs_currents(self, decay, valid):
        """Per K row the sum of |I| over the valid slots [KV, d], per V row (slot) the sum of
        |I| over d [KV, M] (uA, float64 numpy): what physics.read_abs_charges takes."""
        decay = np.asarray(to_host(decay), np.float64)
        cells = {k: None if v is None else np.asarray(to_host(v), np.float64) for k, v in self.cells.items()}
        rows = []
        for pw, arr in ((self.k_pow, "k"), (self.v_pow, "v")):   # with the cells' spread, if any
            cell_decay = physics.decay_per_cell(decay[:, None], cells.get(f"inv_tau_{arr}"))
            rows.append(physics.cell_abs_ua(np.asarray(to_host(pw[0]), np.float64), cell_decay, self.coeffs,
                                            cells.get(f"gain_{arr}")))
        return np.einsum("kmd,m->kd", rows[0], np.asarray(valid, np.float64)), rows[1].sum(axis=-1)

    def nbytes(self) -> int:
        return 2 * int(np.prod(self.k_pow.shape)) * self._np_dtype.itemsize


class CodeStore:
    """Write-DAC codes, one uint8 per cell, read by the fused kernel (numpy, CPU)."""

    kind = "codes"

    def __init__(self, kv_heads: int, window: int, d_head: int, dtype, coeffs, array_size: int,
                 s_sat: float, *, kv_range_v, kv_levels: int):
        if not bitline.AVAILABLE:
            raise RuntimeError("CodeStore needs numba (pip install numba)")
        bitline.get_threads()   # a bad GCSIM_THREADS is reported before the run, not in it
        if len(coeffs) not in (2, 4):
            raise ValueError(f"the kernel handles cell laws of degree 1 or 3, got {len(coeffs) - 1}")
        if window % array_size:
            raise ValueError(f"window {window} is not a whole number of {array_size}-slot arrays")
        if kv_levels > 256:
            raise ValueError(f"{kv_levels} write-DAC levels do not fit in one byte")
        self.dtype = np.dtype(dtype)
        f = self.dtype.type
        lo, hi = kv_range_v
        step = (hi - lo) / (kv_levels - 1)  # the grid of physics.quantize
        self.step, self.zero, self.inv_step = f(step), f(physics.V_ZERO_V), f(1.0 / step)
        self.n_codes = round(hi / step) + 1   # codes 0..round(hi / step) (codes_exact: lo >= 0)
        self.coeffs, self.array_size, self.s_sat = coeffs, array_size, s_sat
        self.n_pow = len(coeffs) - 1
        self._coeffs, self._s_sat = np.asarray(coeffs, self.dtype), f(s_sat)
        self._read_kernel = bitline.compiled()
        self._write_kernel = encode.write_slot()
        self.k_codes = np.zeros((kv_heads, d_head, window), np.uint8)
        self.v_codes = np.zeros((kv_heads, window, d_head), np.uint8)
        self._slot_shape = (kv_heads, d_head)

    def write(self, slot: int, k_dev, v_dev, step: int | None = None) -> None:
        """Store deviations that the write DAC produced ([KV, d] each), as their codes."""
        k_dev, v_dev = np.asarray(k_dev), np.asarray(v_dev)
        for dev in (k_dev, v_dev):
            if dev.dtype != self.dtype:
                raise TypeError(f"CodeStore of {self.dtype} got a {dev.dtype} value")
            if dev.shape != self._slot_shape:   # the kernel does not check its indices
                raise ValueError(f"CodeStore slot of shape {list(self._slot_shape)} got a {list(dev.shape)} value")
        if not self._write_kernel(k_dev, v_dev, self.step, self.zero, self.inv_step, self.k_codes, self.v_codes,
                                  slot % self.v_codes.shape[1]):
            raise NotOnGrid("a written value is not a write-DAC level (code * step - 0.45 V); "
                            "use the float store (PowerStore) for perturbed writes")

    def values(self):
        """Stored deviations as floats: K [KV, M, d], V [KV, M, d] (for inspection and tests)."""
        k = self.k_codes.transpose(0, 2, 1).astype(self.dtype) * self.step - self.zero
        return k, self.v_codes.astype(self.dtype) * self.step - self.zero

    def powers(self):
        """Deviations and their powers [P, KV, M, d] for K and V, as PowerStore keeps them."""
        return tuple(physics.stored_powers(x, self.n_pow + 1) for x in self.values())

    def row_abs_currents(self, decay, valid):
        """As PowerStore.row_abs_currents, from a table of |I| per (code, slot)."""
        decay = np.asarray(decay, np.float64)
        levels = np.arange(self.n_codes, dtype=np.float64) * float(self.step) - float(self.zero)  # y of each code
        table = physics.cell_abs_ua(levels[None, :], decay, self.coeffs)   # [M, codes]: |I| per slot and code
        kv, d, m = self.k_codes.shape
        k_rows, v_rows = np.zeros((kv, d)), np.zeros((kv, m))
        charge.row_abs_currents()(self.k_codes, self.v_codes, table, np.asarray(valid, np.float64), k_rows, v_rows)
        return k_rows, v_rows

    def read(self, q, decay, valid, step: int | None = None):
        """As PowerStore.read: S, phi [KV,G,M] and A [KV,G,n_sub,d]."""
        q = np.ascontiguousarray(q, self.dtype)
        kv, g, d = q.shape
        m = self.k_codes.shape[2]
        S = np.empty((kv, g, m), self.dtype)
        phi = np.empty_like(S)
        A = np.empty((kv, g, m // self.array_size, d), self.dtype)
        self._read_kernel(q, self.k_codes, self.v_codes, self.step, self.zero,
                                 np.asarray(decay, self.dtype), np.asarray(valid, np.bool_), self._coeffs,
                                 self._s_sat, self.array_size, S, phi, A)
        return S, phi, A

    def nbytes(self) -> int:
        return int(self.k_codes.nbytes + self.v_codes.nbytes)


def codes_exact(hw) -> bool:
    """Whether the description's written values are exactly write-DAC levels."""
    n = hw.numerics
    if not n.kv_levels:
        return False
    lo, hi = n.kv_range_v
    step = (hi - lo) / (n.kv_levels - 1)
    # codes round(x / step) on the grid through 0 must fit 0..255; nothing may perturb a write
    # or a cell's current (then a stored value is not a code)
    return lo >= 0 and round(hi / step) <= 255 and not n.noise.write_sigma_v and not n.noise.cell_sigma_rel


def make_store(hw, dtype, *, kind: str = "auto", device: str = "cpu", layer: int = 0, sequence: int = 0):
    """The K/V store of one layer (one sequence) for description `hw`, at (layer, sequence)
    (the keys of its device noise draws, `numerics.noise`).

    kind: 'auto' (codes where exact, no noise is on and numba is present, else powers),
    'codes', 'powers'. device: 'cpu' or another array library (kernels/device.py), which
    always uses the powers form read through physics.
    """
    s, n = hw.shape, hw.numerics
    coeffs = physics.law_coefficients(n.cell_law)
    args = (s.kv_heads, s.window, s.d_head, dtype, coeffs, s.array_size, n.s_sat)
    xp, dev = namespace_for(device)
    if kind == "auto":
        kind = "codes" if (xp is np and codes_exact(hw) and not n.noise.active and bitline.AVAILABLE) else "powers"
    if kind == "codes":
        if n.noise.active:
            raise ValueError("compact code storage has no device noise (numerics.noise); use the float store")
        if xp is not np:
            raise ValueError(f"compact code storage runs on the cpu device, not {device!r}")
        if not codes_exact(hw):
            raise ValueError("compact code storage needs a quantizing write DAC (numerics.kv_levels)")
        return CodeStore(*args, kv_range_v=n.kv_range_v, kv_levels=n.kv_levels)
    if kind == "powers":
        return PowerStore(*args, xp=xp, device=dev, noise=n.noise, layer=layer, sequence=sequence)
    raise ValueError(f"unknown store kind {kind!r}; expected 'auto', 'codes' or 'powers'")


def _step(step):
    if step is None:
        raise ValueError("a store with read or write noise needs the step of each write and read (its keys)")
    return step
