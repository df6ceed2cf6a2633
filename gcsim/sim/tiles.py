"""Gain-cell tiles: the K and V arrays of all sub-tiles of a layer's heads.

State (per sequence in flight, each with its own arrays): the stored value of every cell
(its write-DAC code, one byte, where that is exact; else the deviation from 0.45 V with
its powers y, y^2, y^3 for the cell law: `gcsim.kernels`),
the token held by each slot and the simulated time (ps) it was written. Retention decay
is computed from the simulated age at read time: anything that delays a step makes
stored values leak more.
Parameters: shape (window M, array size), retention (time | per_token | off).
Statistics: busy while written (write phase) and while read (Q and V phases), per K/V bank.
"""
from __future__ import annotations

import numpy as np

from ..datapath import retention_decay
from ..kernels import make_store
from ..ringbuffer import RingBuffer
from .refresh import Refresh


class GainCellTiles:
    def __init__(self, ctx, layer: int, n_powers: int):
        self.ctx, self.layer = ctx, layer
        self.name = f"L{layer:02d}.tiles"
        hw = ctx.hw
        ctx.activity.add_component(self.name, hw.shape.kv_heads)
        s = hw.shape
        # values: DAC codes read by the fused kernel where exact, else float powers (kernels/)
        self.states = [RingBuffer(s.window, s.array_size, n_powers=n_powers, dtype=ctx.dtype,
                                  storage=make_store(hw, ctx.dtype) if ctx.values else None)
                       for _ in range(hw.periphery.sequences)]
        self.refresh = Refresh(ctx, self)  # refresh policy and lost-read count (refresh.py)

    def store(self, seq: int, step: int, slot: int, k_dev, v_dev, write_ps: int) -> None:
        self.states[seq].write(step, write_ps, k_dev, v_dev)

    def window(self, seq: int, step: int, read_ps: int):
        """Valid slots [M] and their retention factors [M] for a read at read_ps."""
        st = self.states[seq]
        valid = st.valid(step)
        if not self.ctx.values:
            return valid, None
        decay = retention_decay(st.ages_ps(read_ps), st.ages_tokens(step), self.ctx.hw)
        return valid, np.where(valid, decay, 0.0).astype(self.ctx.dtype)
