"""Digital accumulator: the adder tree summing the sub-tile codes of each output
dimension, then the per-head affine output scaler y = a_out x sum + b_out.
Parameters: `timing.phases_ns.adder_tree`; shared like the counters (same periphery
bank). Statistics: busy per head. Energy: `adder_tree_add` per add
((active sub-tiles - 1) x d per head), `output_scaler` per output element.
"""
from __future__ import annotations

from ..datapath import readout


class DigitalAccumulator:
    def __init__(self, ctx, name: str):
        self.ctx, self.name = ctx, name
        ctx.activity.add_component(self.name, ctx.hw.shape.heads)

    def accumulate(self, codes, scalers):
        return readout(codes, scalers)
