"""Charge-to-pulse converters, one per K column: the HardSigmoid
phi = clip(S / S_sat, 0, 1) x T_max that drives the V array rows in the V phase.
Parameters: `numerics.s_sat`, `timing.t_max_ns`. Statistics: busy in the V phase
(driving pulses), per query head. Their energy is inside `k_column_read` (paper's
phi(Q.K^T) item)."""
from __future__ import annotations

from .. import physics


class ChargeToPulse:
    def __init__(self, ctx, layer: int):
        self.ctx, self.layer = ctx, layer
        self.name = f"L{layer:02d}.ctp"
        ctx.activity.add_component(self.name, ctx.hw.shape.heads)

    def convert(self, S):
        return physics.hard_sigmoid(S, self.ctx.hw.numerics.s_sat)
