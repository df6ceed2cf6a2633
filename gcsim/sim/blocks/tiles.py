"""Gain-cell tiles of one layer: the K and V arrays of all sub-tiles of its K/V banks, for
every sequence in flight (each its own ring buffer, gcsim/ringbuffer.py), and the arbiter
that grants the K arrays to a read's rounds.

A read is served in rounds (GQA mapping policy). The tiles grant the K arrays to one round at
a time: they send the round's K-column currents to the integrators when its Q phase starts
(the controller's PWM pulses, issued with the read, drive the K rows). How long the Q phase
lasts is the integrators' decision, the V phase's window the charge-to-pulse's (it claims the
V arrays for it when the Q charge reaches it); the charge-to-pulse's message (`phi`, sent when
it has claimed them) tells the tiles both windows, and the tiles pass the V-column currents on
to the integrators when the V phase starts. The next round is granted when the arrays are
free for it, by the rule of the mapping and counter policies: pipelined (K and V arrays apart),
when the round before has left the K arrays (its Q phase is over); time-multiplexed with
double-buffered counters, when it has left the V arrays; time-multiplexed with counters that
count in turns, when its count is over (a `RoundDone` from the counters: the bank holds the
charge until then). The tiles book only their own busy time (written, read, refreshed) from
those messages.

Values: the bank read is one pass of the fused kernel over the stored codes (gcsim/kernels/)
when the read starts: it gives the K-column charges S that the integrators integrate in the Q
phase, the HardSigmoid phi = clip(S / s_sat, 0, 1) of the charge-to-pulse, and the V-column
charges A of the V phase (A needs phi of every slot of the pass, so the three come out of one
call; the components then hand them on in their phases). Retention: the values of a read
decay by the simulated age of each slot at the start of the read (the tens of ns between
phases are < 1e-5 of tau).

Refresh (gcsim/sim/policies/refresh.py): the layer's refresh asks the tiles (`refresh`); they
ask the writer to reserve its DACs (`reserve`, answered by `reserved`), wait until no layer
step is between its write and the end of its last V phase, claim their arrays for the refresh,
rewrite every valid slot (age 0 at its end), and tell the writer (`rewrite`) and the refresh
(`refreshed`).

Parameters: shape (window M, array size), `numerics.retention` (mode, loss_fraction), the
bank read's `numerics.cell_law` and `numerics.s_sat`, `periphery.gqa_mapping`,
`periphery.counters`.
Ports: in `store` <- writer (values and write interval, when the writer takes the request;
under the `serial` issue policy it carries the read that follows: the read starts when the
write ends); in `read` <- controller (ReadRequest, `overlap_write`); out `k_currents` ->
integrators (a round, when its Q phase starts); in `phi` <- ctp (the round's V window, when its
Q phase ends); out `v_currents` -> integrators (when its V phase starts); in `round_done` <-
counters (a round's count is over: next time-multiplexed round); in `refresh` <- refresh; out
`reserve` -> writer; in `reserved` <- writer; out `rewrite` -> writer; out `refreshed` -> refresh.
Statistics (per K/V bank and sequence): busy while written, read and refreshed.
Energy: `k_column_read` per active K column, `v_row_read` per active V row (per query head);
with `costs.array_read: charge`, also kappa x the charge each read integrated (gcsim/costs.py).
Counts lost reads (a slot read whose retention factor < loss_fraction) for refresh.summary.
"""
from __future__ import annotations

import math

import numpy as np

from ... import costs
from ...datapath import retention_decay
from ...errors import SimError
from ...kernels import make_store
from ...ringbuffer import RingBuffer
from ...streamio import records_array
from ..kernel import Component, Resource
from ..kernel.path import add
from ..messages import Round


BANK_WAIT = "K/V bank shared (GQA)"
V_WAIT = "V arrays busy (GQA pipeline)"


class GainCellTiles(Component):
    PARAMS = ("shape.window", "shape.array_size", "numerics.retention", "numerics.cell_law", "numerics.s_sat",
              "periphery.gqa_mapping", "periphery.counters")
    PORTS = {"store": "in <- writer: Store", "read": "in <- controller: ReadRequest",
             "k_currents": "out -> integrators: a round's K columns conduct (its Q phase starts)",
             "phi": "in <- ctp: a round's V rows driven, in the window it claimed (its Q phase is over)",
             "v_currents": "out -> integrators: a round's V columns conduct (its V phase starts)",
             "round_done": "in <- counters: RoundDone",
             "refresh": "in <- refresh: RefreshRequest", "reserve": "out -> writer: reserve the DACs for a refresh",
             "reserved": "in <- writer: the DACs reserved (from when)",
             "rewrite": "out -> writer: the refresh's interval", "refreshed": "out -> refresh: the refresh done"}
    STATS = "busy while written, read (Q, V phases) and refreshed; per K/V bank and sequence"
    ACTIONS = ("k_column_read", "v_row_read")

    def __init__(self, sim, layer, n_powers):
        hw = sim.hw
        s = hw.shape
        n_seq = hw.periphery.sequences
        super().__init__(sim, f"L{layer:02d}.tiles", s.kv_heads * n_seq)
        self.layer = layer
        # values: DAC codes read by the fused kernel where exact, else float powers (gcsim/kernels/)
        dtype = self.dtype = np.dtype(hw.numerics.dtype)
        # (device noise, numerics.noise, is drawn in the store, keyed by its layer and sequence)
        self.rings = [RingBuffer(s.window, s.array_size, n_powers=n_powers, dtype=dtype,
                                 storage=make_store(hw, dtype, device=sim.device, layer=layer, sequence=seq)
                                 if sim.values else None)
                      for seq in range(n_seq)]
        gqa, counters = sim.policies["gqa"], sim.policies["counters"]
        self.rounds = gqa.rounds()
        self.n_rounds = len(self.rounds)
        self.separate = gqa.SEPARATE_ARRAYS
        # the next round waits for the count of the one before (the bank holds its charge)
        self.sequential = counters.HOLDS_BANK and not self.separate and len(self.rounds) > 1
        self.wants_round_done = self.sequential   # the counters send a RoundDone (next round)
        check = sim.check
        # the K arrays, granted to one round at a time (held until its Q phase is over), and the
        # V arrays, claimed by the charge-to-pulse for each round's V phase
        self.k_arrays = Resource(f"{self.name}.K", BANK_WAIT, check)
        self.v_arrays = Resource(f"{self.name}.V", V_WAIT, check)
        self.v_arrays.track_paths = self.separate   # a pipelined round's V phase may wait for the one before
        self.banks = (self.k_arrays, self.v_arrays)
        self.busy_until = [0] * n_seq    # per sequence's arrays: end of their booked activity
        self.open_steps = 0          # layer steps between write and their last V phase
        self.refresh = None          # this layer's refresh (a periodic refresh policy), set by the engine
        self.refresh_request = None  # a refresh waiting for the arrays (its DACs reserved)
        self.unit_of = [None] * n_seq if n_seq == 1 else [slice(i * s.kv_heads, (i + 1) * s.kv_heads) for i in range(n_seq)]
        ret = hw.numerics.retention
        self.retention_mode = ret.mode
        if ret.mode == "time":
            self.loss_age = hw.decay_tau_ps * math.log(1.0 / ret.loss_fraction)     # ps
        elif ret.mode == "per_token" and ret.rate_per_token > 0:
            self.loss_age = math.log(1.0 / ret.loss_fraction) / ret.rate_per_token  # tokens
        else:
            self.loss_age = None                                                    # never lost
        self.lost_reads = self.slot_reads = 0
        self.ledger.declare(self.name, "k_column_read", layer, per_valid=s.heads)   # per layer step
        self.ledger.declare(self.name, "v_row_read", layer, per_valid=s.heads)
        # data-dependent read energy: pJ per uA x T_max integrated, and the charges [step, (K, V)]
        self.charge_pj = costs.charge_pj(hw)
        if self.charge_pj and not sim.values:
            raise SimError("costs.array_read: charge needs the values a read integrates: run functional "
                           "(not timing-only), or set costs.array_read=per_cell")
        self.read_charge_ua_tmax = records_array((sim.steps, 2), np.float64) if self.charge_pj else None

    def _book(self, start, end, seq, step, action):
        """Busy over the union of booked intervals (pipelined rounds overlap)."""
        until = self.busy_until[seq]
        if end <= until:
            return
        self.busy(start if start >= until else until, end, units=self.unit_of[seq], step=step, layer=self.layer,
                  action=action)
        self.busy_until[seq] = end

    # -- in: Store (from the writer: the slot's cells are written in [write_start, write_end)) ---
    def on_store(self, job):
        if job.prompt:   # serving: a new sequence's prompt in these arrays, token after token
            n = job.prompt
            w = (job.write_end - job.write_start) // n
            self.rings[job.seq].write_block(job.step - n + 1, n, job.write_start, w)
            self._book(job.write_start, job.write_end, job.seq, job.step, "prompt write")
            return
        end = job.write_end
        self.open_steps += 1
        self._book(job.write_start, end, job.seq, job.step, "write")
        ring = self.rings[job.seq]
        slot = ring.write(job.step, end, job.k_dev, job.v_dev)   # the value is in the cells at `end`: age 0
        job.write_ps = int(ring.write_ps[slot])
        if job.read_after:   # the read issued with the write starts when the write ends
            job.read_ps = end
            self.on_read(job)

    # -- in: ReadRequest -------------------------------------------------------------------
    def on_read(self, job):
        seq, step, l = job.seq, job.step, self.layer
        ring = self.rings[seq]
        read_ps = job.read_ps
        n_valid, n_active = ring.counts(step)
        job.n_valid, job.n_active = n_valid, n_active
        self._count_lost(ring, step, read_ps, n_valid)
        if self.sim.values:   # the values of the read, at the arrays' state at the read
            valid = ring.valid(step)
            ages = job.decay_ages = ring.ages_ps(read_ps)   # as the arrays saw them (refresh included)
            decay = retention_decay(ages, ring.ages_tokens(step), self.sim.hw)
            decay = np.where(valid, decay, 0.0).astype(self.dtype)
            # the bank read: one pass of the fused kernel over this bank's storage gives the charges
            # the integrators integrate (S, A) and the charge-to-pulse's pulses (phi), all heads
            job.S, job.phi, job.A = ring.read(job.q_pulse, decay, valid, step)   # step: keys of read noise
            if self.charge_pj:
                self._book_charge(job, ring, decay, valid)
        self.ledger.layer_step(l, step, n_valid, n_active)   # the declared per-layer-step actions
        job.rounds_left = self.n_rounds
        job.rounds = []
        self._grant(job, 0, read_ps, job.path)

    def _book_charge(self, job, ring, decay, valid):
        """Book the K and V reads' energy for the charge their cells integrated (all heads)."""
        qk, qv = ring.abs_charges(job.q_pulse, job.phi, decay, valid)
        qk, qv = float(qk.sum()), float(qv.sum())
        self.read_charge_ua_tmax[job.step] += (qk, qv)
        self.ledger.book_pj(self.name, "k_column_read", self.charge_pj["k_column_read"] * qk, self.layer, job.step)
        self.ledger.book_pj(self.name, "v_row_read", self.charge_pj["v_row_read"] * qv, self.layer, job.step)

    def _grant(self, job, r, ready, path):
        """Round r of `job`, ready at `ready`, gets the K arrays when they (and, on a shared
        bank, the V arrays) are free: its K columns conduct from then on."""
        k, v = self.k_arrays, self.v_arrays
        free = k.free_at if self.separate or k.free_at >= v.free_at else v.free_at
        q0, path = k.claim(ready if ready >= free else free, None, job, path)   # held until the Q phase ends
        if q0 > ready:   # held by another layer step (another sequence, a refresh)
            add(path, "stall:" + BANK_WAIT, q0 - ready)
        rnd = Round(job, r, self.rounds[r], path)
        rnd.q0 = q0
        rnd.keep_q_path = self.separate and r + 1 < self.n_rounds
        job.rounds.append(rnd)
        self.send(q0, self.integrators.on_k_currents, rnd)

    # -- in: phi (the charge-to-pulse claimed the V arrays: the round's Q phase is over) ------
    def on_phi(self, rnd):
        job = rnd.job
        seq, step, r = job.seq, job.step, rnd.index
        q0, q1, v0, v1 = rnd.q0, rnd.q1, rnd.v0, rnd.v1
        self.k_arrays.release_at(q1)
        if v0 == q1 and self._fast:   # one interval (no timeline to show)
            self._book(q0, v1, seq, step, "K, V read")
        else:
            self._book(q0, q1, seq, step, "K read")
            self._book(v0, v1, seq, step, "V read")
        if r + 1 < self.n_rounds:
            if self.separate:             # pipelined: the next round's Q phase while this one's V phase
                self._grant(job, r + 1, q1, rnd.q_path)
            elif not self.sequential:     # double-buffered counters: the bank is free after the V phase
                self._grant(job, r + 1, v1, dict(rnd.path))
        else:   # the step's last V phase: a waiting refresh may start when it ends (the arrays are free;
            self.open_steps -= 1   # a count still running reads the integrators' charges)
            if not self.open_steps and self.refresh_request is not None:
                self.send(v1, self.on_free, None)
        self.send(v0, self.integrators.on_v_currents, rnd)

    # -- in: RoundDone (from the counters, when a round's count is over) -------------------
    def on_round_done(self, rnd):
        """Time-multiplexed rounds whose counters count in turns: the count has read the bank's
        charges, the bank is free and the next round starts."""
        self._grant(rnd.job, rnd.index + 1, self.env._now, dict(rnd.path))

    # -- refresh (gcsim/sim/policies/refresh.py) ---------------------------------------------
    def on_refresh(self, req):
        """RefreshRequest: a refresh falls due. Nothing to do once the run has written every
        layer step it will, or while nothing is written; else the writer reserves its DACs."""
        now = self.env._now
        if sum(r.writes for r in self.rings) >= req.expected_writes:
            req.finished = True
        elif self.open_steps or any(r.written().any() for r in self.rings):
            self.send(now, self.writer.on_reserve, req)
            return
        self.send(now, self.refresh.on_refreshed, req)

    def on_reserved(self, req):
        """The writer's DACs are reserved for the refresh from req.dacs_from: it starts when no
        layer step is between its write and its last V phase (else when the last one ends)."""
        if self.open_steps:
            self.refresh_request = req
        else:
            self._refresh(req)

    def on_free(self, _):
        """The last open layer step's V phase is over: the waiting refresh goes ahead."""
        req, self.refresh_request = self.refresh_request, None
        self._refresh(req)

    def _refresh(self, req):
        """Every valid slot is read and rewritten: the sub-tiles of a bank one after another (the
        fullest sequence's), all banks and sequences in parallel; age 0 again at the end."""
        now = self.env._now
        k, v = self.k_arrays, self.v_arrays
        start = max([now, req.dacs_from, k.free_at, v.free_at] + self.busy_until)
        active = max(r.counts(r.last)[1] if r.written().any() else 0 for r in self.rings)
        end = start + active * req.per_subtile_ps
        for res in self.banks:   # claimed: a read finding them busy waits
            res.claim(start, end - start, req, None)
        step = max(r.last for r in self.rings)
        for ring in self.rings:
            written = ring.written()
            if written.any() and start - int(ring.write_ps[written].min()) > req.safe_age_ps:
                req.assumption_violations += 1
            req.slots += int(written.sum())
            ring.restore(end)
        self.busy(start, end, step=step, layer=self.layer, action="refresh")
        self.busy_until = [end] * len(self.busy_until)
        req.start, req.end, req.step = start, end, step
        self.send(now, self.writer.on_rewrite, req)
        self.send(now, self.refresh.on_refreshed, req)

    def _count_lost(self, ring, step, read_ps, n_valid):
        """Count the valid slots read at read_ps whose retention factor < loss_fraction."""
        self.slot_reads += n_valid
        if self.loss_age is None or not n_valid:
            return
        # write times (and tokens) rise in ring order from the oldest slot: check it first
        oldest = ring.oldest_slot(step)
        if self.retention_mode == "time":
            if read_ps - int(ring.write_ps[oldest]) <= self.loss_age:
                return
            valid = ring.valid(step)
            self.lost_reads += int(((read_ps - ring.write_ps) > self.loss_age)[valid].sum())
        else:
            if step - int(ring.token[oldest]) <= self.loss_age:
                return
            valid = ring.valid(step)
            self.lost_reads += int(((step - ring.token) > self.loss_age)[valid].sum())
