"""Output counters: signed charge-to-pulse plus pulse counter per V column of each
sub-tile, the output code clip(A / out_sat, -1, 1) quantized on [-1, 1] (32 levels).

A bank may be shared: by `periphery.counters_shared_by` heads of a layer (the heads
take turns, each turn one output_count phase) and by `counters_shared_by_layers`
layers (one periphery bank, counters + adder tree, serving several layers: a SimPy
resource, contended when several sequences are in flight).
Statistics: busy per physical counter set. Energy: `output_conversion` per output
column of an active sub-tile.
"""
from __future__ import annotations

import numpy as np

from .. import physics


class OutputCounters:
    def __init__(self, ctx, name: str):
        self.ctx, self.name = ctx, name
        hw = ctx.hw
        self.shared_by = hw.periphery.counters_shared_by
        ctx.activity.add_component(self.name, hw.shape.heads // self.shared_by)

    def count(self, A):
        n = self.ctx.hw.numerics
        return physics.output_code(A, n.out_sat, n.out_levels)

    def turns(self, heads: np.ndarray) -> list[np.ndarray]:
        """Split the heads of one read round into turns on the shared counter sets."""
        sets = heads // self.shared_by
        order = np.zeros(len(heads), np.int64)
        seen: dict[int, int] = {}
        for i, s in enumerate(sets.tolist()):
            order[i] = seen.get(s, 0)
            seen[s] = order[i] + 1
        return [heads[order == r] for r in range(int(order.max()) + 1)] if len(heads) else []
