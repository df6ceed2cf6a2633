"""Gain-cell tiles of one layer: the K and V arrays of all sub-tiles of its K/V banks, for
every sequence in flight (each its own ring buffer, gcsim/ringbuffer.py), and the arbiter
that grants the arrays to a read's rounds.

A read is served in rounds (GQA mapping policy): each round's Q phase (PWM query pulses on
the K arrays, charges integrated) and V phase (phi pulses on the V arrays) claim the
arrays as resources: the K/V bank (time-multiplexed: held from Q through the round's
count unless the counters are double-buffered) or the K arrays and the V arrays apart
(pipelined). A round that finds them busy waits; the schedule comes from the claims, and
the tiles grant each round to the controller (a `Grant` when its Q phase starts: the PWM
drivers fire, the integrators integrate). The tiles book only their own busy time (written,
read, refreshed); the phase times travel in the `Round` to the components that work in them.
Retention: the values of a read decay by the simulated age of each slot at the start of
the read (the tens of ns between phases are < 1e-5 of tau).

Parameters: shape (window M, array size), `numerics.retention` (mode, loss_fraction),
`timing.phases_ns.q_phase` / `v_phase`, `periphery.gqa_mapping`, `periphery.counters`.
Ports: in `store` <- writer (values and write interval, when the writer takes the request;
under the `serial` issue policy it carries the read that follows: the read starts when the
write ends); in `read` <- controller (ReadRequest, `overlap_write`); out `grant` -> controller (a Round, when its Q phase starts);
in `round_done` <- counters (a round's count is over: bank released, next time-multiplexed
round); in `refresh` <- refresh; out `free` -> refresh (TilesFree).
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


class GainCellTiles(Component):
    PARAMS = ("shape.window", "shape.array_size", "numerics.retention", "timing.phases_ns.q_phase",
              "timing.phases_ns.v_phase", "periphery.gqa_mapping", "periphery.counters")
    PORTS = {"store": "in <- writer: Store", "read": "in <- controller: ReadRequest",
             "grant": "out -> controller: Grant", "round_done": "in <- counters: RoundDone",
             "refresh": "in <- refresh: Refresh", "free": "out -> refresh: TilesFree"}
    STATS = "busy while written, read (Q, V phases) and refreshed; per K/V bank and sequence"
    ACTIONS = ("k_column_read", "v_row_read")

    def __init__(self, sim, layer, n_powers):
        hw = sim.hw
        s = hw.shape
        n_seq = hw.periphery.sequences
        super().__init__(sim, f"L{layer:02d}.tiles", s.kv_heads * n_seq)
        self.layer, self.kv = layer, s.kv_heads
        # values: DAC codes read by the fused kernel where exact, else float powers (gcsim/kernels/)
        dtype = self.dtype = np.dtype(hw.numerics.dtype)
        # (device noise, numerics.noise, is drawn in the store, keyed by its layer and sequence)
        self.rings = [RingBuffer(s.window, s.array_size, n_powers=n_powers, dtype=dtype,
                                 storage=make_store(hw, dtype, device=sim.device, layer=layer, sequence=seq)
                                 if sim.values else None)
                      for seq in range(n_seq)]
        self.q_ps, self.v_ps = hw.timing.phase_ps("q_phase"), hw.timing.phase_ps("v_phase")
        gqa, counters = sim.policies["gqa"], sim.policies["counters"]
        self.rounds = gqa.rounds()
        self.separate = gqa.SEPARATE_ARRAYS
        self.count_holds_bank = counters.HOLDS_BANK and not self.separate
        self.sequential = self.count_holds_bank and len(self.rounds) > 1   # next round after this count
        check = sim.check
        if self.separate:
            self.k_arrays = Resource(f"{self.name}.K", "K/V bank shared (GQA)", check)
            self.v_arrays = Resource(f"{self.name}.V", "V arrays busy (GQA pipeline)", check)
            self.banks = (self.k_arrays, self.v_arrays)
        else:
            self.bank = Resource(f"{self.name}.bank", "K/V bank shared (GQA)", check)
            self.banks = (self.bank,)
        self.busy_until = [0] * n_seq    # per sequence's arrays: end of their reserved activity
        self.open_steps = 0          # layer steps between write and their last V phase
        self.refresh = None          # set by the engine (refresh policy of this layer)
        self.wants_round_done = self.sequential   # the counters send a RoundDone (next round)
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
        self.H = s.heads
        self.ledger.declare(self.name, "k_column_read", layer, per_valid=s.heads)   # per layer step
        self.ledger.declare(self.name, "v_row_read", layer, per_valid=s.heads)
        # data-dependent read energy: pJ per uA x T_max integrated, and the charges [step, (K, V)]
        self.charge_pj = costs.charge_pj(hw)
        if self.charge_pj and not sim.values:
            raise SimError("costs.array_read: charge needs the values a read integrates: run functional "
                           "(not timing-only), or set costs.array_read=per_cell")
        self.read_charge_ua_tmax = records_array((sim.steps, 2), np.float64) if self.charge_pj else None

    def _book(self, start, end, seq, step, action):
        """Busy over the union of reserved intervals (pipelined rounds overlap)."""
        until = self.busy_until[seq]
        if end <= until:
            return
        self.busy(start if start >= until else until, end, units=self.unit_of[seq], step=step, layer=self.layer,
                  action=action)
        self.busy_until[seq] = end

    # -- in: Store (from the writer: the slot's cells are written in [write_start, end)) ---
    def on_store(self, job):
        if job.prompt:   # serving: a new sequence's prompt in these arrays, token after token
            n, w = job.prompt, self.writer.write_ps
            self.rings[job.seq].write_block(job.step - n + 1, n, job.write_start, w)
            self._book(job.write_start, job.write_start + n * w, job.seq, job.step, "prompt write")
            return
        end = job.write_start + self.writer.write_ps
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
            # the bank read: one pass of the fused kernel over this bank's storage gives what the
            # integrators and the charge-to-pulse will hold in their phases (S, phi, A; all heads)
            job.S, job.phi, job.A = ring.read(job.q_pulse, decay, valid, step)   # step: keys of read noise
            if self.charge_pj:
                self._book_charge(job, ring, decay, valid)
        self.ledger.layer_step(l, step, n_valid, n_active)   # the declared per-layer-step actions
        job.rounds_left = len(self.rounds)
        if self.sequential:
            self._round(job, 0, read_ps, job.path)
        else:
            path = job.path
            for r in range(len(self.rounds)):
                self._round(job, r, read_ps, path if r == 0 else dict(path))

    def _book_charge(self, job, ring, decay, valid):
        """Book the K and V reads' energy for the charge their cells integrated (all heads)."""
        qk, qv = ring.abs_charges(job.q_pulse, job.phi, decay, valid)
        qk, qv = float(qk.sum()), float(qv.sum())
        self.read_charge_ua_tmax[job.step] += (qk, qv)
        self.ledger.book_pj(self.name, "k_column_read", self.charge_pj["k_column_read"] * qk, self.layer, job.step)
        self.ledger.book_pj(self.name, "v_row_read", self.charge_pj["v_row_read"] * qv, self.layer, job.step)

    # -- in: RoundDone (from the counters, when a round's count is over) -------------------
    def on_round_done(self, rnd):
        """Time-multiplexed rounds: the count has read the bank's charges, the bank is free
        and the next round starts."""
        now = self.env._now
        bank = self.bank
        if now > bank.free_at:
            bank.free_at = now
        bank.release(rnd.path)
        self._round(rnd.job, rnd.index + 1, now, dict(rnd.path))

    def _step_done(self, at):
        """The step's last V phase ends at `at`: a waiting refresh may start then (the arrays
        are free; a count still running reads the integrators' charges)."""
        self.open_steps -= 1
        if self.open_steps == 0 and self.refresh is not None and self.refresh.waiting:
            self.send(at, self.refresh.on_tiles_free, at)

    def _round(self, job, r, ready, path):
        heads = self.rounds[r]
        step, seq = job.step, job.seq
        q_ps, v_ps = self.q_ps, self.v_ps
        if self.separate:
            q0, path = self.k_arrays.claim(ready, q_ps, job, path)
            q1 = q0 + q_ps
            add(path, "q_phase", q_ps)
            self.k_arrays.release(path)
            v0, path = self.v_arrays.claim(q1, v_ps, job, path)
        else:
            q0, path = self.bank.claim(ready, q_ps + v_ps, job, path)
            q1 = v0 = q0 + q_ps
            add(path, "q_phase", q_ps)
        v1 = v0 + v_ps
        add(path, "v_phase", v_ps)
        if self.separate:
            self.v_arrays.release(path)
        elif not self.count_holds_bank:
            self.bank.release(path)
        if v0 == q1 and self.activity.timeline is None:   # one interval (no timeline to show)
            self._book(q0, v1, seq, step, "K, V read")
        else:
            self._book(q0, q1, seq, step, "K read")
            self._book(v0, v1, seq, step, "V read")
        if r == len(self.rounds) - 1:
            self._step_done(v1)
        rnd = Round(job, r, heads, path)
        rnd.q0, rnd.q1, rnd.v0, rnd.v1 = q0, q1, v0, v1
        self.send(q0, self.controller.on_grant, rnd)

    # -- in: Refresh ------------------------------------------------------------------------
    def on_refresh(self, r):
        """Every valid slot is read and rewritten in [start, end): age 0 again at `end`."""
        self.busy(r.start, r.end, step=r.step, layer=self.layer, action="refresh")
        self.busy_until = [r.end] * len(self.busy_until)
        for ring in self.rings:
            ring.restore(r.end)

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
