"""Charge-to-pulse converters, one per K column: the HardSigmoid
phi = clip(S / S_sat, 0, 1) x T_max that drives the V array rows in the V phase.

When a round's Q charge S reaches it, the charge-to-pulse claims the tiles' V arrays for its
V window, `timing.phases_ns.v_phase` (a pipelined round waits there while the round before
still drives them), and tells the tiles which window it claimed (`phi`): they pass the V
columns' currents to the integrators when it starts. Its values, phi, come out of the bank
read's fused pass with the integrators' S (gcsim/sim/blocks/tiles.py), with `numerics.s_sat`.

Parameters: `timing.phases_ns.v_phase`.
Ports: in `charges` <- integrators (S, when the Q phase ends); out `phi` -> tiles (the V
window claimed, at once).
Statistics (per query head): busy in the V phase (driving pulses), booked when it claims
the V arrays.
Energy: inside `k_column_read` (the paper's phi(Q.K^T) item).
"""
from __future__ import annotations

from ..kernel import Component
from ..kernel.path import add


class ChargeToPulse(Component):
    PARAMS = ("timing.phases_ns.v_phase",)
    PORTS = {"charges": "in <- integrators: S", "phi": "out -> tiles: the V window claimed (phi pulses on the V rows)"}
    STATS = "busy in the V phase, per query head"
    ACTIONS = ()

    def __init__(self, sim, layer):
        super().__init__(sim, f"L{layer:02d}.ctp", sim.hw.shape.heads)
        self.layer = layer
        self.v_ps = sim.hw.timing.phase_ps("v_phase")
        self.v_arrays = None   # the tiles' V arrays (a resource), set by the engine

    # -- in: S (the Q phase is over) --------------------------------------------------------
    def on_charges(self, rnd):
        v = self.v_arrays
        v0, path = v.claim(rnd.q1, self.v_ps, rnd.job, rnd.path)
        v1 = v0 + self.v_ps
        add(path, "v_phase", self.v_ps)
        if v.track_paths:   # a pipelined round's successor may wait for this V phase: it continues this path
            v.release(path)
        rnd.path, rnd.v0, rnd.v1 = path, v0, v1
        self.busy(v0, v1, units=rnd.heads, step=rnd.job.step, layer=self.layer, action="drive V rows")
        self.send(self.env._now, self.tiles.on_phi, rnd)
