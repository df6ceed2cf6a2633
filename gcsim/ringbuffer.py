"""The K/V ring buffer of one layer's gain-cell arrays: one set of rules for the
simulator's tiles, the reference model's `DecodeState` and refresh.

Token t is written to slot t mod M (M = window). For each slot the buffer keeps the
token it holds (-1: never written), the simulated time (integer ps) the value was
written (its age-0 time; a refresh moves it), and, when values are kept, the stored
deviations from 0.45 V with their powers y, y^2, ... for the cell-law polynomial
(`k_pow`, `v_pow`: [P, KV, M, d]). Storage is private to this class (`store`/`k_pow`/
`v_pow`), so it can switch to a compact form (e.g. the DAC codes) without the users
changing.

The read at step t sees the slots holding tokens u with t - M < u <= t (`valid`). Slots
fill in order from slot 0 while tokens are written one per step, so the number of valid
slots and of sub-tiles holding one (`active_sub_tiles`, what the energy model pays for)
are kept as counts instead of being recomputed from the mask at every read.
"""
from __future__ import annotations

import numpy as np

from . import physics

EMPTY = np.iinfo(np.int64).min // 2  # token of a slot never written: below any window


class RingBuffer:
    """Slots of a sliding window of M tokens in sub-tiles of `array_size` slots."""

    def __init__(self, window: int, array_size: int, *, kv_heads: int = 0, d_head: int = 0, n_powers: int = 0,
                 dtype=np.float32, storage=None):
        """storage: a `gcsim.kernels` store (`make_store`: DAC codes read by the fused kernel,
        or float powers read through physics) that holds the values and does `read`;
        None keeps the powers arrays here (n_powers of them; 0 heads: no values)."""
        self.window, self.array_size = window, array_size
        self.n_sub_tiles = window // array_size
        self.token = np.full(window, EMPTY, np.int64)    # token held by each slot
        self.write_ps = np.zeros(window, np.int64)       # when its value was written (age 0)
        self._storage = storage
        shape = (n_powers, kv_heads, window, d_head) if storage is None else (0, 0, 0, 0)
        self._k = np.zeros(shape, dtype)
        self._v = np.zeros(shape, dtype)
        self._first = 0          # first token written (negative after `prefill`)
        self._last = -1          # last token written
        self._in_order = True    # every token first..last written, one per step
        self.writes = 0

    # -- writing ---------------------------------------------------------------------------
    def write(self, t: int, time_ps: int, k_dev=None, v_dev=None) -> int:
        """Store token t (its stored deviations [KV, d], if values are kept) written at
        time_ps; returns its slot."""
        slot = t % self.window
        if k_dev is not None:
            self.store(slot, k_dev, v_dev, t)
        self.token[slot] = t
        self.write_ps[slot] = time_ps
        self._in_order = self._in_order and t == self._last + 1
        self._last = t
        self.writes += 1
        return slot

    def prefill(self, tokens: int, period_ps: int, values=None) -> None:
        """Fill the window as if tokens -tokens .. -1 had been written one per period_ps
        before time 0 (values(u) -> (k_dev, v_dev) for token u, or None): a run then
        starts at full window (benchmarks of long windows, without replaying them)."""
        if self._last != -1 or tokens >= self.window:
            raise ValueError(f"prefill needs an empty buffer and fewer than {self.window} tokens")
        self._first = self._last = -tokens - 1
        for u in range(-tokens, 0):
            k_dev, v_dev = values(u) if values is not None else (None, None)
            self.write(u, u * period_ps, k_dev, v_dev)
        self._first = -tokens
        self.writes = 0  # what was there before time 0 is not this run's work

    def write_block(self, first: int, n: int, start_ps: int, period_ps: int) -> None:
        """A new sequence in these arrays (serving: a request's prompt): every slot emptied,
        then tokens first .. first + n - 1 (n <= M) written one per period_ps from start_ps
        (token first + i is in the cells at start_ps + (i + 1) x period_ps). Timing only: no
        values are stored."""
        if not 0 < n <= self.window:
            raise ValueError(f"a block of {n} tokens does not fit a window of {self.window}")
        self.token[:] = EMPTY
        self.write_ps[:] = 0
        u = np.arange(first, first + n, dtype=np.int64)
        self.token[u % self.window] = u
        self.write_ps[u % self.window] = start_ps + (u - first + 1) * period_ps
        self._first, self._last, self._in_order = first, first + n - 1, True
        self.writes += n

    def store(self, slot: int, k_dev, v_dev, step: int | None = None) -> None:
        """Values of `slot`; step: the token written (the key of write noise in the store)."""
        if self._storage is not None:
            self._storage.write(slot, k_dev, v_dev, step)
            return
        n = self._k.shape[0] + 1
        self._k[:, :, slot] = physics.stored_powers(k_dev, n)
        self._v[:, :, slot] = physics.stored_powers(v_dev, n)

    @property
    def k_pow(self) -> np.ndarray:
        """Stored K deviations and their powers [P, KV, M, d] (from a code store: computed)."""
        return self._k if self._storage is None else self._storage.powers()[0]

    @property
    def v_pow(self) -> np.ndarray:
        return self._v if self._storage is None else self._storage.powers()[1]

    @property
    def storage_kind(self) -> str:
        """'codes', 'powers' (a kernels store) or 'arrays' (powers kept here)."""
        return "arrays" if self._storage is None else self._storage.kind

    def read(self, q, decay, valid, step: int | None = None):
        """One bank read through the storage: q [KV, G, d] pulse fractions, decay [M] (0 on
        invalid slots), valid [M], step (the token read: the key of read noise) ->
        S, phi [KV, G, M] and A [KV, G, n_sub, d]."""
        return self._storage.read(q, decay, valid, step)

    def abs_charges(self, q, phi, decay, valid):
        """Integrated |I| x pulse width (uA x T_max) of the read of `read(q, decay, valid)`
        that gave phi: (Q_K, Q_V), each [KV, G] (gcsim.physics.read_abs_charges)."""
        return physics.read_abs_charges(q, phi, *self._storage.row_abs_currents(decay, valid))

    def restore(self, time_ps: int) -> int:
        """Refresh: every written slot is rewritten with its level, age 0 at time_ps.
        Returns the number of slots rewritten."""
        written = self.written()
        self.write_ps[written] = time_ps
        return int(written.sum())

    # -- reading ---------------------------------------------------------------------------
    def written(self) -> np.ndarray:
        """Bool [M]: the slots that hold a token."""
        return self.token != EMPTY

    def valid(self, t: int) -> np.ndarray:
        """Bool [M]: the slots the read at step t takes part in."""
        tok = self.token
        return (tok <= t) & (tok > t - self.window)  # never written: EMPTY, below any window

    def counts(self, t: int) -> tuple[int, int]:
        """(valid slots, sub-tiles holding a valid slot) for the read at step t."""
        if self._in_order and t == self._last:
            n = min(t - self._first + 1, self.window)
            return n, -(-n // self.array_size)
        v = self.valid(t)
        return int(v.sum()), int(v.reshape(self.n_sub_tiles, self.array_size).any(axis=1).sum())

    def active_sub_tiles(self, t: int) -> int:
        return self.counts(t)[1]

    def ages_ps(self, time_ps: int) -> np.ndarray:
        """Age [M] (ps) of every slot's value at time_ps."""
        return time_ps - self.write_ps

    def ages_tokens(self, t: int) -> np.ndarray:
        """Age [M] in tokens of every slot at step t."""
        return t - self.token

    @property
    def last(self) -> int:
        """The last token written (-1: none)."""
        return self._last

    def oldest_slot(self, t: int) -> int:
        """Slot of the oldest valid token at step t (tokens rise in ring order from it)."""
        return (t + 1) % self.window if t - self._first >= self.window - 1 else self._first % self.window
