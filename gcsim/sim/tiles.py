"""Gain-cell tiles: the K and V arrays of all sub-tiles of a layer's heads.

State (per sequence in flight, each with its own arrays): the stored deviations from
0.45 V of every slot, kept with their powers y, y^2, y^3 for the cell law ([P, KV, M, d]),
the token held by each slot and the simulated time (ps) it was written. Retention decay
is computed from the simulated age at read time: anything that delays a step makes
stored values leak more.
Parameters: shape (window M, array size), retention (time | per_token | off).
Statistics: busy while written (write phase) and while read (Q and V phases), per K/V bank.
"""
from __future__ import annotations

import numpy as np

from .. import physics
from ..datapath import retention_decay
from .refresh import Refresh


class TileState:
    def __init__(self, hw, dtype, n_powers: int, values: bool):
        s = hw.shape
        shape = (n_powers, s.kv_heads, s.window, s.d_head) if values else (n_powers, 0, 0, 0)
        self.k_pow = np.zeros(shape, dtype)
        self.v_pow = np.zeros(shape, dtype)
        self.token = np.full(s.window, -1, np.int64)
        self.write_ps = np.zeros(s.window, np.int64)


class GainCellTiles:
    def __init__(self, ctx, layer: int, n_powers: int):
        self.ctx, self.layer = ctx, layer
        self.name = f"L{layer:02d}.tiles"
        hw = ctx.hw
        ctx.activity.add_component(self.name, hw.shape.kv_heads)
        self.states = [TileState(hw, ctx.dtype, n_powers, ctx.values) for _ in range(hw.periphery.sequences)]
        self.refresh = Refresh(ctx, self)  # refresh policy and lost-read count (refresh.py)

    def store(self, seq: int, step: int, slot: int, k_dev, v_dev, write_ps: int) -> None:
        st = self.states[seq]
        if k_dev is not None:
            n = st.k_pow.shape[0] + 1
            st.k_pow[:, :, slot] = physics.stored_powers(k_dev, n)
            st.v_pow[:, :, slot] = physics.stored_powers(v_dev, n)
        st.token[slot] = step
        st.write_ps[slot] = write_ps

    def window(self, seq: int, step: int, read_ps: int):
        """Valid slots [M] and their retention factors [M] for a read at read_ps."""
        st, w = self.states[seq], self.ctx.hw.shape.window
        valid = (st.token >= 0) & (st.token <= step) & (st.token > step - w)
        if not self.ctx.values:
            return valid, None
        decay = retention_decay(read_ps - st.write_ps, step - st.token, self.ctx.hw)
        return valid, np.where(valid, decay, 0.0).astype(self.ctx.dtype)
