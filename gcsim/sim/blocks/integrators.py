"""Charge integrators: bit-line integration during the pulse phases, per query head.

Q phase: the query's PWM pulses drive the K array rows; each K column integrates
S_j = sum_d q_d f(y_dj decay_j) (uA x T_max). V phase: the phi pulses (charge-to-pulse)
drive the V rows; each V column of each sub-tile integrates
A_s,d = sum_{j in s} phi_j f(y_jd decay_j). Values come from `gcsim.physics` (the same
functions as the reference model), for the whole bank at the start of the read, in one pass
over the tiles' storage (`gcsim.kernels`: the fused kernel over DAC codes, tested against
`gcsim.physics`, or physics over float powers); the charge-to-pulse is inside that pass.

Parameters: `numerics.cell_law`, `shape.array_size`.
Ports: in `charges` <- tiles (the arrays' state and retention at the read).
Statistics (per query head): busy in Q and V phases; stalled while its round waits for
the K/V bank (`K/V bank shared (GQA)`), the V arrays (`V arrays busy (GQA pipeline)`),
the counters (`output counters shared`, `output counters busy (GQA pipeline)`) or a
periphery bank shared by layers (`periphery shared by layers`): it holds the charge.
"""
from __future__ import annotations

from ..kernel import Component


class ChargeIntegrators(Component):
    PARAMS = ("numerics.cell_law", "shape.array_size")
    PORTS = {"charges": "in <- tiles: stored values and retention at the read"}
    STATS = "busy in Q and V phases; stalled while holding a charge it cannot pass on"
    ACTIONS = ()

    def __init__(self, sim, layer, coeffs):
        super().__init__(sim, f"L{layer:02d}.integrators", sim.hw.shape.heads)
        self.layer, self.coeffs = layer, coeffs
        self.array_size = sim.hw.shape.array_size

    def integrate(self, job, ring, valid, decay):
        """S (K-array charges), phi (charge-to-pulse) and A (V-array charges) of the bank."""
        job.S, job.phi, job.A = ring.read(job.q_pulse, decay, valid, job.step)   # step: keys of read noise
