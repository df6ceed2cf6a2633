"""Layer controller / DAC front end: per-head scaling, clipping and quantization of q, k
and v, and the sequencing of the phases of one step of one layer:

  write (token writer) -> for each read round: Q phase (K arrays, integrators) ->
  V phase (charge-to-pulse, V arrays) -> output count (counters, in turns if shared) ->
  adder tree and output scaler (accumulator) -> routing and control -> link to host.

A read round serves the query heads that read the K/V banks at the same time: one round
for multi-head attention or `gqa_mapping: replicated`, G rounds (G query heads per K/V
bank) for `time_multiplexed` (one after another) and `pipelined` (overlapped). Retention is evaluated once per layer step, at the start of
the read (the tens of ns between phases are < 1e-5 of tau).

Parameters: the phase times, `periphery.*`, the per-head scalers of the trace.
Ports: in <- host (LayerInputs); out -> writer, integrators, ..., host (LayerOutputs).
Statistics: busy while its DACs drive (write, Q phase) and during routing/control;
stalled while waiting for the host, a link or the layer bank (several sequences).
Energy: `q_pwm_drive` per PWM row driver firing into an active sub-tile, `control` per
head and step.
"""
from __future__ import annotations

import numpy as np

from ..datapath import dac_kv, dac_query
from ..finite import all_finite, raise_first_non_finite
from .interconnect import transfer
from .messages import LayerInputs, LayerOutputs, WriteRequest


class LayerController:
    def __init__(self, ctx, layer, scalers, *, tiles, writer, integrators, ctp, counters, accumulator,
                 links, bank, periphery_bank, stages_hook=None):
        self.ctx, self.layer, self.sc = ctx, layer, scalers
        self.name = f"L{layer:02d}.controller"
        hw = ctx.hw
        ctx.activity.add_component(self.name, hw.shape.heads)
        self.tiles, self.writer, self.integrators, self.ctp = tiles, writer, integrators, ctp
        self.counters, self.accumulator, self.links = counters, accumulator, links
        self.bank, self.periphery_bank = bank, periphery_bank
        self.stages_hook = stages_hook
        t = hw.timing
        self.q_ps, self.v_ps, self.count_ps = t.phase_ps("q_phase"), t.phase_ps("v_phase"), t.phase_ps("output_count")
        self.adder_ps, self.routing_ps = t.phase_ps("adder_tree"), t.phase_ps("routing")
        s = hw.shape
        G = s.group_size
        self.pipelined = hw.periphery.gqa_mapping == "pipelined"
        n_rounds = 1 if hw.periphery.gqa_mapping == "replicated" else G
        # heads sharing K/V bank k are k*G .. k*G+G-1; round r serves one of each bank
        self.rounds = [np.arange(s.heads)[np.arange(s.heads) % n_rounds == r] for r in range(n_rounds)]
        # per round: the turns on the (possibly shared) output counters and the counter sets each uses
        self.turns = [[(turn, np.unique(turn // counters.shared_by)) for turn in counters.turns(heads)]
                      for heads in self.rounds]
        ic = hw.interconnect
        self.bits_in = s.heads * s.d_head * ic.q_bits + 2 * s.kv_heads * s.d_head * ic.kv_bits
        self.bits_out = s.heads * s.d_head * ic.out_bits
        self.law = hw.numerics.cell_law
        self.counters_units = s.heads // counters.shared_by
        # a round that serves every head books the whole bank (the fast, common case)
        self.rounds = [None if len(h) == s.heads else h for h in self.rounds]

    def _rounds_in_turn(self, seq, step, read_ps):
        """Read rounds one after another: Q phase, V phase, output count(s) each.
        Returns the request for a periphery bank shared by layers, if one was taken."""
        ctx, act, env, l = self.ctx, self.ctx.activity, self.ctx.env, self.layer
        per_req = None
        for heads, turns in zip(self.rounds, self.turns):
            t_round = env.now
            if t_round > read_ps:  # these heads waited for the shared K/V bank
                act.stall(self.integrators.name, read_ps, t_round, "K/V bank shared (GQA)", units=heads, step=step, layer=l)
            yield ctx.delay(seq, step, "q_phase", self.q_ps)
            t_v = env.now
            act.busy(self.name, t_round, t_v, units=heads, step=step, layer=l, action="PWM drive")
            act.busy(self.tiles.name, t_round, t_v, step=step, layer=l, action="K read")
            act.busy(self.integrators.name, t_round, t_v, units=heads, step=step, layer=l, action="integrate K")
            yield ctx.delay(seq, step, "v_phase", self.v_ps)
            t_c = env.now
            act.busy(self.ctp.name, t_v, t_c, units=heads, step=step, layer=l, action="drive V rows")
            act.busy(self.tiles.name, t_v, t_c, step=step, layer=l, action="V read")
            act.busy(self.integrators.name, t_v, t_c, units=heads, step=step, layer=l, action="integrate V")
            if self.periphery_bank is not None and per_req is None:
                per_req = yield from ctx.acquire(self.periphery_bank, seq, step, "periphery shared by layers",
                                                 [(self.integrators.name, heads, l)])
                t_c = env.now  # waits for counter turns start once the bank is ours
            for turn, sets in turns:
                t_turn = env.now
                if t_turn > t_c:
                    act.stall(self.integrators.name, t_c, t_turn, "output counters shared", units=turn, step=step, layer=l)
                yield ctx.delay(seq, step, "output_count", self.count_ps)
                act.busy(self.counters.name, t_turn, env.now, units=None if len(sets) == self.counters_units else sets,
                         step=step, layer=l, action="count")
        return per_req

    def _pipelined_rounds(self, seq, step, read_ps):
        """GQA rounds overlapped: the K arrays, the V arrays and the counters each serve one
        round at a time, so round r+1's Q phase runs during round r's V phase. Nothing else
        can contend inside a layer step, so the schedule is computed and booked at once."""
        ctx, act, l = self.ctx, self.ctx.activity, self.layer
        q_end = v_end = c_end = read_ps
        sched = []
        for heads in self.rounds:
            q0 = q_end
            v0 = max(q0 + self.q_ps, v_end)
            c0 = max(v0 + self.v_ps, c_end)
            q_end, v_end, c_end = q0 + self.q_ps, v0 + self.v_ps, c0 + self.count_ps
            sched.append((heads, q0, v0, c0))
        integ = self.integrators.name
        for heads, q0, v0, c0 in sched:
            kw = dict(units=heads, step=step, layer=l)
            if q0 > read_ps:
                act.stall(integ, read_ps, q0, "K/V bank shared (GQA)", **kw)
            act.busy(self.name, q0, q0 + self.q_ps, action="PWM drive", **kw)
            act.busy(integ, q0, q0 + self.q_ps, action="integrate K", **kw)
            if v0 > q0 + self.q_ps:
                act.stall(integ, q0 + self.q_ps, v0, "V arrays busy (GQA pipeline)", **kw)
            act.busy(self.ctp.name, v0, v0 + self.v_ps, action="drive V rows", **kw)
            act.busy(integ, v0, v0 + self.v_ps, action="integrate V", **kw)
            if c0 > v0 + self.v_ps:
                act.stall(integ, v0 + self.v_ps, c0, "output counters busy (GQA pipeline)", **kw)
            act.busy(self.counters.name, c0, c0 + self.count_ps, action="count", **kw)
        act.busy(self.tiles.name, read_ps, v_end, step=step, layer=l, action="K and V reads")
        # critical path: walk back from the last count along whichever stage set each start
        r, stage = len(sched) - 1, "count"
        while r >= 0:
            _, q0, v0, c0 = sched[r]
            if stage == "count":
                ctx.path.add(seq, step, "output_count", self.count_ps)
                prev_c = sched[r - 1][3] + self.count_ps if r else -1
                stage, r = ("v", r) if v0 + self.v_ps >= prev_c else ("count", r - 1)
            elif stage == "v":
                ctx.path.add(seq, step, "v_phase", self.v_ps)
                prev_v = sched[r - 1][2] + self.v_ps if r else -1
                stage, r = ("q", r) if q0 + self.q_ps >= prev_v else ("v", r - 1)
            else:
                ctx.path.add(seq, step, "q_phase", self.q_ps)
                r -= 1
        yield ctx.env.timeout(c_end - read_ps)

    def run(self, msg: LayerInputs):
        ctx, hw = self.ctx, self.ctx.hw
        env, s, l = ctx.env, hw.shape, self.layer
        seq, step = msg.seq, msg.step
        act, energy = ctx.activity, ctx.energy
        bank_req = None
        if self.bank is not None:  # several sequences take turns on this layer's hardware
            bank_req = yield from ctx.acquire(self.bank, seq, step, "layer busy (other sequence)",
                                              [("sequences", seq, l)])
        yield from transfer(ctx, self.links["host_to_controller"], self.bits_in, seq, step, l, self.name)

        # DAC front end
        q_pulse = k_dev = v_dev = None
        if ctx.values:
            q_pulse = dac_query(msg.q, self.sc, hw, self.law).reshape(s.kv_heads, s.group_size, s.d_head)
            k_dev = dac_kv(msg.k, self.sc["a_k"], self.sc["b_k"], hw, self.law)
            v_dev = dac_kv(msg.v, self.sc["a_v"], self.sc["b_v"], hw, self.law)

        if self.tiles.refresh.periodic:  # a refresh in progress holds the tiles (refresh.py)
            yield from self.tiles.refresh.before_write(seq, step)
        t0 = env.now
        yield from self.writer.write(WriteRequest(seq, step, l, step % s.window, k_dev, v_dev, t0))
        act.busy(self.name, t0, env.now, step=step, layer=l, action="write DACs")

        # read: which slots take part, and how much each has leaked
        read_ps = self.last_read_ps = env.now
        valid, decay = self.tiles.window(seq, step, read_ps)
        n_valid = int(valid.sum())
        self.tiles.refresh.count_lost(seq, step, read_ps, valid)  # retention losses (refresh.py)
        n_active = int(valid.reshape(s.n_sub_tiles, s.array_size).any(axis=1).sum())
        codes = S = phi = None
        if ctx.values:
            state = self.tiles.states[seq]
            S, phi, A = self.integrators.read(q_pulse, state, decay, valid)  # K, charge-to-pulse, V
            codes = self.counters.count(A).reshape(s.heads, s.n_sub_tiles, s.d_head)

        if self.pipelined:
            yield from self._pipelined_rounds(seq, step, read_ps)
            per_req = None
        else:
            per_req = yield from self._rounds_in_turn(seq, step, read_ps)

        t_add = env.now
        yield ctx.delay(seq, step, "adder_tree", self.adder_ps)
        act.busy(self.accumulator.name, t_add, env.now, step=step, layer=l, action="sum + scale")
        if per_req is not None:
            self.periphery_bank.release(per_req)
        out = self.accumulator.accumulate(codes, self.sc) if ctx.values else None
        if ctx.values and not all_finite(S, out):  # NaN/Inf is never a result (gcsim/finite.py)
            raise_first_non_finite({"q DAC": q_pulse.reshape(s.heads, -1), "k DAC": k_dev, "v DAC": v_dev,
                                    "S (K-array charge)": S.reshape(s.heads, -1), "phi (charge-to-pulse)":
                                    phi.reshape(s.heads, -1), "sub-tile output codes": codes,
                                    "output (adder tree and output scaler)": out},
                                   layer=l, step=step, where=f"simulator, {hw.source}")

        t_route = env.now
        yield ctx.delay(seq, step, "routing", self.routing_ps)
        act.busy(self.name, t_route, env.now, step=step, layer=l, action="routing/control")
        # the outputs wait for the link at this layer's controller (the accumulator may be shared)
        yield from transfer(ctx, self.links["bank_to_host"], self.bits_out, seq, step, l, self.name)
        if bank_req is not None:
            self.bank.release(bank_req)

        H, d = s.heads, s.d_head
        energy.book(self.name, "q_pwm_drive", H * d * n_active, l, step)
        energy.book(self.name, "control", H, l, step)
        energy.book(self.tiles.name, "k_column_read", H * n_valid, l, step)
        energy.book(self.tiles.name, "v_row_read", H * n_valid, l, step)
        energy.book(self.counters.name, "output_conversion", H * d * n_active, l, step)
        energy.book(self.accumulator.name, "adder_tree_add", H * d * max(n_active - 1, 0), l, step)
        energy.book(self.accumulator.name, "output_scaler", H * d, l, step)
        if self.stages_hook is not None and ctx.values:
            ages_ps = read_ps - self.tiles.states[seq].write_ps  # as the tiles saw them (refresh included)
            self.stages_hook(seq, step, l, ages_ps, S, phi, codes, out)
        return LayerOutputs(seq, step, l, out, env.now)
