"""Charge integrators: bit-line integration during the pulse phases, per query head.

Q phase: the query's PWM pulses drive the K array rows; each K column integrates
S_j = sum_d q_d f(y_dj decay_j) (uA x T_max). V phase: the phi pulses (charge-to-pulse)
drive the V rows; each V column of each sub-tile integrates
A_s,d = sum_{j in s} phi_j f(y_jd decay_j). The values come from `gcsim.physics` (the same
functions as the reference model) in one pass over the tiles' storage when the tiles take
the read request (`gcsim.kernels`: the fused kernel over DAC codes, tested against
`gcsim.physics`, or physics over float powers), for the whole bank, the charge-to-pulse
inside that pass; this component keeps the integrators' time.

Parameters: `numerics.cell_law`, `shape.array_size`.
Ports: in `pulses` <- controller (QPulses, when a round's Q phase starts); out `charges`
-> ctp (S, when the Q phase ends); in `phi` <- ctp (when the V phase starts); out `count`
-> counters (A, when the V phase ends); in `latched` <- counters (a round that waited for
the counters, when its count starts).
Statistics (per query head): busy in Q and V phases (from the round's pulses); stalled
while its round waits for the K/V bank (`K/V bank shared (GQA)`, from the read request to
the Q phase), the V arrays (`V arrays busy (GQA pipeline)`, Q end to V start), the
counters (`output counters shared`, `output counters busy (GQA pipeline)`) or a periphery
bank shared by layers (`periphery shared by layers`): it holds the charge.
"""
from __future__ import annotations

from ..kernel import Component

BANK_WAIT = "K/V bank shared (GQA)"
V_WAIT = "V arrays busy (GQA pipeline)"
TURN_WAIT = "output counters shared"


class ChargeIntegrators(Component):
    PARAMS = ("numerics.cell_law", "shape.array_size")
    PORTS = {"pulses": "in <- controller: QPulses", "charges": "out -> ctp: S", "phi": "in <- ctp: phi pulses",
             "count": "out -> counters: A", "latched": "in <- counters: Latched"}
    STATS = "busy in Q and V phases; stalled while waiting for the arrays or holding a charge it cannot pass on"
    ACTIONS = ()

    def __init__(self, sim, layer, coeffs):
        super().__init__(sim, f"L{layer:02d}.integrators", sim.hw.shape.heads)
        self.layer, self.coeffs = layer, coeffs
        self.array_size = sim.hw.shape.array_size

    # -- in: QPulses (the round's Q phase starts) ------------------------------------------
    def on_pulses(self, rnd):
        job, heads, l = rnd.job, rnd.heads, self.layer
        if rnd.q0 > job.read_ps:   # these heads waited for the K/V bank since the read request
            self.stall(job.read_ps, rnd.q0, BANK_WAIT, units=heads, step=job.step, layer=l)
        self.busy(rnd.q0, rnd.q1, units=heads, step=job.step, layer=l, action="integrate K")
        self.send(rnd.q1, self.ctp.on_charges, rnd)

    # -- in: phi pulses (the round's V phase starts) ---------------------------------------
    def on_phi(self, rnd):
        job, heads, l = rnd.job, rnd.heads, self.layer
        if rnd.v0 > rnd.q1:        # held S while the V arrays served another round
            self.stall(rnd.q1, rnd.v0, V_WAIT, units=heads, step=job.step, layer=l)
        self.busy(rnd.v0, rnd.v1, units=heads, step=job.step, layer=l, action="integrate V")
        self.send(rnd.v1, self.counters.on_count, rnd)

    # -- in: Latched (the counters took the charge later than the V phase's end) -----------
    def on_latched(self, rnd):
        job, l = rnd.job, self.layer
        if rnd.count0 > rnd.v1:
            self.stall(rnd.v1, rnd.count0, self.counters.res.cause, units=rnd.heads, step=job.step, layer=l)
        for heads, t0 in rnd.turns or ():
            self.stall(rnd.count0, t0, TURN_WAIT, units=heads, step=job.step, layer=l)
