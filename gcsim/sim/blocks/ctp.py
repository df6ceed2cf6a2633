"""Charge-to-pulse converters, one per K column: the HardSigmoid
phi = clip(S / S_sat, 0, 1) x T_max that drives the V array rows in the V phase.

Parameters: `numerics.s_sat`, `timing.t_max_ns`.
Ports: in `charge` <- integrators (S); out `pulses` -> V array rows (phi).
Statistics (per query head): busy in the V phase (driving pulses).
Energy: inside `k_column_read` (the paper's phi(Q.K^T) item).
"""
from __future__ import annotations

from ... import physics
from ..kernel import Component


class ChargeToPulse(Component):
    PARAMS = ("numerics.s_sat", "timing.t_max_ns")
    PORTS = {"charge": "in <- integrators: S", "pulses": "out -> V arrays: phi"}
    STATS = "busy in the V phase, per query head"
    ACTIONS = ()

    def __init__(self, sim, layer):
        super().__init__(sim, f"L{layer:02d}.ctp", sim.hw.shape.heads)
        self.layer = layer
        self.s_sat = sim.hw.numerics.s_sat

    def convert(self, S):
        return physics.hard_sigmoid(S, self.s_sat)
