"""Charge integrators: bit-line integration during the pulse phases.

Q phase: the query's PWM pulses drive the K array rows; each K column integrates
S_j = sum_d q_d f(y_dj decay_j) (uA x T_max). V phase: the phi pulses drive the V rows;
each V column of each sub-tile integrates A_s,d = sum_{j in s} phi_j f(y_jd decay_j).
Values come from the tiles' storage in one pass (`gcsim.kernels`: the fused kernel over
DAC codes, tested against `gcsim.physics`, or physics over float powers).
Parameters: cell law, array size. Statistics: busy in Q and V phases, per query head;
stalled while a head waits for a shared K/V bank (GQA) or shared output counters.
Energy: `k_column_read` per active K column, `v_row_read` per active V row.
"""
from __future__ import annotations


class ChargeIntegrators:
    def __init__(self, ctx, layer: int, coeffs):
        self.ctx, self.layer, self.coeffs = ctx, layer, coeffs
        self.name = f"L{layer:02d}.integrators"
        ctx.activity.add_component(self.name, ctx.hw.shape.heads)

    def read(self, q_pulse, state, decay, valid):
        """S [KV,G,M] of the Q phase, the charge-to-pulse phi and A [KV,G,n_sub,d] of the V
        phase, in one pass over the tiles' storage (the fused kernel over DAC codes, or
        physics over float powers: gcsim.kernels)."""
        return state.read(q_pulse, decay, valid)
