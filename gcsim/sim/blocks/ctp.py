"""Charge-to-pulse converters, one per K column: the HardSigmoid
phi = clip(S / S_sat, 0, 1) x T_max that drives the V array rows in the V phase.

Parameters: `numerics.s_sat`, `timing.t_max_ns`.
Ports: in `charges` <- integrators (S, when the Q phase ends); out `phi` -> integrators
(the V rows driven, when the V phase starts: the arrays' grant in the Round).
Statistics (per query head): busy in the V phase (driving pulses), booked when it takes
the charge.
Energy: inside `k_column_read` (the paper's phi(Q.K^T) item).
"""
from __future__ import annotations

from ... import physics
from ..kernel import Component


class ChargeToPulse(Component):
    PARAMS = ("numerics.s_sat", "timing.t_max_ns")
    PORTS = {"charges": "in <- integrators: S", "phi": "out -> integrators: phi pulses on the V rows"}
    STATS = "busy in the V phase, per query head"
    ACTIONS = ()

    def __init__(self, sim, layer):
        super().__init__(sim, f"L{layer:02d}.ctp", sim.hw.shape.heads)
        self.layer = layer
        self.s_sat = sim.hw.numerics.s_sat

    # -- in: S (the Q phase is over) --------------------------------------------------------
    def on_charges(self, rnd):
        self.busy(rnd.v0, rnd.v1, units=rnd.heads, step=rnd.job.step, layer=self.layer, action="drive V rows")
        self.send(rnd.v0, self.integrators.on_phi, rnd)

    def convert(self, S):
        return physics.hard_sigmoid(S, self.s_sat)
