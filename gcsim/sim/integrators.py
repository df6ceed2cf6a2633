"""Charge integrators: bit-line integration during the pulse phases.

Q phase: the query's PWM pulses drive the K array rows; each K column integrates
S_j = sum_d q_d f(y_dj decay_j) (uA x T_max). V phase: the phi pulses drive the V rows;
each V column of each sub-tile integrates A_s,d = sum_{j in s} phi_j f(y_jd decay_j).
Values come from `gcsim.physics` (the same functions as the reference model).
Parameters: cell law, array size. Statistics: busy in Q and V phases, per query head;
stalled while a head waits for a shared K/V bank (GQA) or shared output counters.
Energy: `k_column_read` per active K column, `v_row_read` per active V row.
"""
from __future__ import annotations

from .. import physics


class ChargeIntegrators:
    def __init__(self, ctx, layer: int, coeffs):
        self.ctx, self.layer, self.coeffs = ctx, layer, coeffs
        self.name = f"L{layer:02d}.integrators"
        ctx.activity.add_component(self.name, ctx.hw.shape.heads)

    def qk(self, q_pulse, state, decay, valid):
        return physics.bitline_charges_qk(q_pulse, state.k_pow, decay, valid, self.coeffs)

    def av(self, phi, state, decay):
        return physics.bitline_charges_av(phi, state.v_pow, decay, self.coeffs, self.ctx.hw.shape.array_size)
