"""Charge integrators: bit-line integration during the pulse phases, per query head.

Q phase: the tiles grant a round the K arrays (`k_currents`: the controller's PWM pulses drive
the K rows); the integrators integrate each K column, S_j = sum_d q_d f(y_dj decay_j)
(uA x T_max), for their Q window, `timing.phases_ns.q_phase`: they decide when it ends and
pass S to the charge-to-pulse then. V phase: the charge-to-pulse drives the V rows with phi
in the window it claimed; the tiles pass the V columns' currents on (`v_currents`), and the
integrators integrate A_s,d = sum_{j in s} phi_j f(y_jd decay_j) per sub-tile until the
window's end, then pass A to the counters. The values are the bank read's (one fused pass
over the tiles' storage when the read starts: gcsim/sim/blocks/tiles.py).

Parameters: `timing.phases_ns.q_phase`.
Ports: in `k_currents` <- tiles (a round, when its Q phase starts); out `charges` -> ctp (S,
when the Q phase ends); in `v_currents` <- tiles (when the V phase starts); out `count` ->
counters (A, when the V phase ends); in `latched` <- counters (a round that waited for the
counters, when its count starts).
Statistics (per query head): busy in Q and V phases; stalled while its round waits for the
K/V bank (`K/V bank shared (GQA)`, from the read request to the Q phase), the V arrays
(`V arrays busy (GQA pipeline)`, Q end to V start), the counters (`output counters shared`,
`output counters busy (GQA pipeline)`) or a periphery bank shared by layers (`periphery
shared by layers`): it holds the charge.
"""
from __future__ import annotations

from ..kernel import Component
from ..kernel.path import add
from .tiles import BANK_WAIT, V_WAIT

TURN_WAIT = "output counters shared"


class ChargeIntegrators(Component):
    PARAMS = ("timing.phases_ns.q_phase",)
    PORTS = {"k_currents": "in <- tiles: a round's K columns conduct", "charges": "out -> ctp: S",
             "v_currents": "in <- tiles: a round's V columns conduct", "count": "out -> counters: A",
             "latched": "in <- counters: Latched"}
    STATS = "busy in Q and V phases; stalled while waiting for the arrays or holding a charge it cannot pass on"
    ACTIONS = ()

    def __init__(self, sim, layer):
        super().__init__(sim, f"L{layer:02d}.integrators", sim.hw.shape.heads)
        self.layer = layer
        self.q_ps = sim.hw.timing.phase_ps("q_phase")

    # -- in: K currents (the round's Q phase starts) ---------------------------------------
    def on_k_currents(self, rnd):
        job, heads, l = rnd.job, rnd.heads, self.layer
        q0 = rnd.q0
        if q0 > job.read_ps:   # these heads waited for the K/V bank since the read request
            self.stall(job.read_ps, q0, BANK_WAIT, units=heads, step=job.step, layer=l)
        q1 = rnd.q1 = q0 + self.q_ps   # the Q window: theirs
        add(rnd.path, "q_phase", self.q_ps)
        if rnd.keep_q_path:
            rnd.q_path = dict(rnd.path)
        self.busy(q0, q1, units=heads, step=job.step, layer=l, action="integrate K")
        self.send(q1, self.ctp.on_charges, rnd)

    # -- in: V currents (the round's V phase starts) ---------------------------------------
    def on_v_currents(self, rnd):
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
