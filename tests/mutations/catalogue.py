"""The catalogue of planted bugs: realistic mistakes in the simulator's timing, energy, stall
labels, refresh, retention ages and routing, each a source patch (text found exactly once,
replaced) applied to a scratch copy of the tree by run.py. docs/validation.md lists them with
the measured result.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mutation:
    id: str
    area: str       # timing | energy | stall labels | refresh | retention ages | routing
    what: str       # the bug, in words
    edits: tuple    # ((file relative to the root, text found exactly once, its replacement), ...)


class NotApplicable(Exception):
    """A patch's text is not found exactly once: the code moved; update the catalogue."""


def M(id, area, what, *edits):
    return Mutation(id, area, what, tuple(edits))


BLOCKS = "gcsim/sim/blocks/"
KERNEL = "gcsim/sim/kernel/"
POLICIES = "gcsim/sim/policies/"

MUTATIONS = [
    # -- timing ---------------------------------------------------------------------------------
    M("T1", "timing", "the token writer takes 10 us longer than its write phase",
      (BLOCKS + "writer.py", '        self.write_ps = hw.timing.phase_ps("write")\n',
       '        self.write_ps = hw.timing.phase_ps("write") + 10_000_000\n')),
    M("T2", "timing", "the accumulator's adder tree takes no time",
      (BLOCKS + "accumulator.py", "        self.adder_ps = costs.adder_tree_ps(hw)  #", "        self.adder_ps = 0  #")),
    M("T3", "timing", "heads sharing a counter set are counted at once (no turns)",
      (BLOCKS + "counters.py", "            t0 = start if start >= free[st] else free[st]\n", "            t0 = start\n")),
    M("T4", "timing", "the adder tree is left out of a shared periphery bank's hold",
      (BLOCKS + "counters.py", "        res.release_at(end + (self.adder_ps if last else 0))\n", "        res.release_at(end)\n")),
    M("T5", "timing", "links ignore their bandwidth",
      (KERNEL + "channel.py", "        if self.gbps <= 0:\n            return 0\n", "        if True:\n            return 0\n")),
    M("T6", "timing", "links ignore their latency",
      (KERNEL + "channel.py", "        arrive = start + ser + self.latency_ps\n", "        arrive = start + ser\n")),
    M("T7", "timing", "links ignore their capacity (no back-pressure)",
      (KERNEL + "channel.py", "        start = self.slot_free_at(now) if self.capacity else now\n", "        start = now\n")),
    M("T8", "timing", "the host's time per layer is lost (a host without a device takes no time)",
      ("gcsim/system/work.py", "            return (0, {}) if is_step else (self.fixed_ps, {})\n", "            return (0, {})\n")),
    M("T9", "timing", "the host computes only before a step's first layer",
      (BLOCKS + "host.py", "            if compute is not None:   # the host's own phase (alone or in a batch)\n",
       "            if compute is not None and l == 0:\n")),
    M("T10", "timing", "a layer is freed for the next sequence when its routing starts, not when it ends",
      (BLOCKS + "controller.py", "            sim.host.send_outputs(end, job)\n            self._release(end)\n",
       "            sim.host.send_outputs(end, job)\n            self._release(now)\n")),
    M("T11", "timing", "overlap_write: a sequence's read does not wait for the read path",
      (BLOCKS + "controller.py", "        job.arrived_ps = self.env._now   # ready to read\n        self._admit(job, self._read)\n",
       "        job.arrived_ps = self.env._now   # ready to read\n        self._read(job)\n")),
    M("T12", "timing", "time-multiplexed GQA rounds do not hold the bank through their count",
      (BLOCKS + "tiles.py", "        self.sequential = counters.HOLDS_BANK and not self.separate and len(self.rounds) > 1",
       "        self.sequential = False")),
    M("T13", "timing", "double-buffered counters still hold the bank through the count",
      (POLICIES + "counters.py", "class DoubleBuffered(Policy):\n    HOLDS_BANK = False",
       "class DoubleBuffered(Policy):\n    HOLDS_BANK = True")),
    M("T14", "timing", "replicated GQA reads its copies in G rounds",
      (POLICIES + "gqa.py", "class Replicated(GQAMapping):\n    ONE_ROUND = True", "class Replicated(GQAMapping):\n    ONE_ROUND = False")),
    M("T15", "timing", "pipelined GQA: the V arrays are not held for the V phase",
      (BLOCKS + "ctp.py", "        v0, path = v.claim(rnd.q1, self.v_ps, rnd.job, rnd.path)",
       "        v0, path = v.claim(rnd.q1, 0, rnd.job, rnd.path)")),
    M("T16", "timing", "the V phase takes the Q phase's time",
      (BLOCKS + "ctp.py", '        self.v_ps = sim.hw.timing.phase_ps("v_phase")', '        self.v_ps = sim.hw.timing.phase_ps("q_phase")')),
    M("T17", "timing", "a counter set switching to another head takes no time (switch_cycles ignored)",
      (BLOCKS + "counters.py", "        self.switch_ps = p.switch_cycles * hw.timing.clock_period_ps", "        self.switch_ps = 0")),
    M("T18", "timing", "a periphery bank switching to another layer takes no time",
      (BLOCKS + "counters.py", "        if self.shared_layers and self.bank_layer not in (-1, l) and self.switch_ps:",
       "        if False:")),
    M("T19", "timing", "a link of capacity n lets a message in when the oldest in flight arrives, not the one "
                       "that frees a place",
      (KERNEL + "channel.py", "        return t if len(q) < self.capacity else q[len(q) - self.capacity]\n",
       "        return t if len(q) < self.capacity else q[0]\n")),
    M("T20", "timing", "a periphery bank switching layers starts its switch when the round arrives, while it "
                       "still serves the other layer",
      (BLOCKS + "counters.py", "            ready = (now if now >= res.free_at else res.free_at) + self.switch_ps\n",
       "            ready = now + self.switch_ps\n")),
    # -- refresh --------------------------------------------------------------------------------
    M("F1", "refresh", "the first refresh is dropped",
      (POLICIES + "refresh.py", "        due = self.interval_ps\n", "        due = 2 * self.interval_ps\n")),
    M("F2", "refresh", "a refresh restores nothing (ages are not reset)",
      ("gcsim/ringbuffer.py", "        self.write_ps[written] = time_ps\n", "")),
    M("F3", "refresh", "a refresh takes every sub-tile's time, not only those holding a valid slot",
      (BLOCKS + "tiles.py", "        end = start + active * req.per_subtile_ps\n",
       "        end = start + self.rings[0].n_sub_tiles * req.per_subtile_ps\n")),
    M("F4", "refresh", "a refresh does not take the write DACs (a write overlaps it)",
      (BLOCKS + "writer.py", "        self.dacs.claim(req.start, req.end - req.start, REFRESH, None)\n", "")),
    M("F5", "refresh", "refreshes stop one layer step early",
      (POLICIES + "refresh.py", "        self.expected_writes = sim.steps * hw.periphery.sequences\n",
       "        self.expected_writes = sim.steps * hw.periphery.sequences - 1\n")),
    M("F6", "refresh", "a refresh rewrites only the first sequence's arrays (the others keep their age; the slots "
                       "are counted for all)",
      (BLOCKS + "tiles.py", "            req.slots += int(written.sum())\n            ring.restore(end)\n",
       "            req.slots += int(written.sum())\n            self.rings[0].restore(end)\n")),
    # -- retention ages -------------------------------------------------------------------------
    M("A1", "retention ages", "a value's age counts from the start of its write, not its end",
      (BLOCKS + "tiles.py", "        slot = ring.write(job.step, end, job.k_dev, job.v_dev)",
       "        slot = ring.write(job.step, job.write_start, job.k_dev, job.v_dev)")),
    M("A2", "retention ages", "ages are taken at the end of the Q phase, not the start of the read",
      (BLOCKS + "tiles.py", "            ages = job.decay_ages = ring.ages_ps(read_ps)",
       "            ages = job.decay_ages = ring.ages_ps(read_ps + self.integrators.q_ps)")),
    M("A3", "retention ages", "a read counts as lost at half the loss age",
      (BLOCKS + "tiles.py", "            self.loss_age = hw.decay_tau_ps * math.log(1.0 / ret.loss_fraction)     # ps",
       "            self.loss_age = hw.decay_tau_ps * math.log(1.0 / ret.loss_fraction) / 2")),
    # -- energy ---------------------------------------------------------------------------------
    M("E1", "energy", "write-DAC energy per query head instead of per K/V head",
      (BLOCKS + "writer.py", "        self.cells_per_write = 2 * s.kv_heads * s.d_head", "        self.cells_per_write = 2 * s.heads * s.d_head")),
    M("E2", "energy", "the adder tree adds all active sub-tiles (n_active instead of n_active - 1 adds)",
      (BLOCKS + "accumulator.py", "const=-self.H_d, per_active=self.H_d)", "const=0, per_active=self.H_d)")),
    M("E3", "energy", "K column reads counted per K/V head instead of per query head",
      (BLOCKS + "tiles.py", '"k_column_read", layer, per_valid=s.heads)', '"k_column_read", layer, per_valid=s.kv_heads)')),
    M("E4", "energy", "a refresh rewrites one cell per slot and bank instead of 2 x d_head",
      (POLICIES + "refresh.py", "        self.cells_per_slot = 2 * s.d_head * self.banks", "        self.cells_per_slot = 2 * self.banks")),
    M("E5", "energy", "link energy paid on the first hop of a route only",
      (BLOCKS + "interconnect.py", "                for ch in route:  # every layer step moves",
       "                for ch in route[:1]:  # every layer step moves")),
    M("E6", "energy", "static power charged for one picosecond",
      (KERNEL + "energy.py", "        self.static_pj[block] = power_mw * elapsed_ps * 1e-3", "        self.static_pj[block] = power_mw * 1e-3")),
    M("E7", "energy", "the write DAC's energy scales with its levels instead of levels - 1",
      ("gcsim/costs.py", '        "kv_write_dac": _steps(n.kv_levels, REF_KV_LEVELS) / (REF_KV_LEVELS - 1),',
       '        "kv_write_dac": (_steps(n.kv_levels, REF_KV_LEVELS) + 1) / (REF_KV_LEVELS - 1),')),
    M("E8", "energy", "PWM drives counted per head and sub-tile, not per row driver",
      (BLOCKS + "controller.py", '"q_pwm_drive", layer, per_active=self.H_d)', '"q_pwm_drive", layer, per_active=s.heads)')),
    M("E9", "energy", "output conversions counted per head and sub-tile, not per output column",
      (BLOCKS + "counters.py", '"output_conversion", layer, per_active=self.H_d)',
       '"output_conversion", layer, per_active=self.H_d // self.shape[2])')),
    M("E10", "energy", "control energy paid per K/V head instead of per query head",
      (BLOCKS + "controller.py", '"control", layer, const=s.heads)', '"control", layer, const=s.kv_heads)')),
    M("E11", "energy", "a refresh's energy ignores the replicated GQA copies (per K/V head, not per bank)",
      (POLICIES + "refresh.py", '        self.banks = s.kv_heads * sim.policies["gqa"].copies()\n',
       "        self.banks = s.kv_heads\n")),
    # -- stall labels ---------------------------------------------------------------------------
    M("S1", "stall labels", "every wait for the write DACs is labelled `refresh`",
      (BLOCKS + "writer.py", "        refreshing = dacs.holder is REFRESH\n", "        refreshing = True\n")),
    M("S2", "stall labels", "waits for the K/V bank labelled as waits for the counters",
      (BLOCKS + "tiles.py", 'BANK_WAIT = "K/V bank shared (GQA)"', 'BANK_WAIT = "output counters shared"')),
    M("S3", "stall labels", "a wait for a link labelled `host busy`",
      (KERNEL + "channel.py", "            tr.waits.append((now, start, self.name))", '            tr.waits.append((now, start, "host busy"))')),
    M("S4", "stall labels", "a wait for a layer held by another sequence is not booked",
      (BLOCKS + "controller.py", "        if now > job.arrived_ps:  # waited for another sequence's layer step\n"
                                 "            _wait(job, job.arrived_ps, now, LAYER_BUSY)\n",
       "        if False:\n            _wait(job, job.arrived_ps, now, LAYER_BUSY)\n")),
    M("S5", "stall labels", "a turn on shared counters labelled as a wait for the bank",
      (BLOCKS + "integrators.py", 'TURN_WAIT = "output counters shared"', 'TURN_WAIT = "K/V bank shared (GQA)"')),
    M("S6", "stall labels", "the controller's hold of k, v during a refresh is not booked",
      (BLOCKS + "controller.py", "            self.stall(job.arrived_ps, job.write_start, job.write_cause, step=step, layer=l)\n",
       "            pass\n")),
    M("S7", "stall labels", "waits for the V arrays (pipelined GQA) labelled as waits for the K/V bank",
      (BLOCKS + "tiles.py", 'V_WAIT = "V arrays busy (GQA pipeline)"', 'V_WAIT = "K/V bank shared (GQA)"')),
    M("S8", "stall labels", "waits for a periphery bank shared by layers labelled as counter turns",
      (BLOCKS + "counters.py", '        cause = ("periphery shared by layers" if shared_by_layers else',
       '        cause = ("output counters shared" if shared_by_layers else')),
    # -- routing --------------------------------------------------------------------------------
    M("R1", "routing", "a layer's inputs travel its outputs' route",
      (BLOCKS + "interconnect.py", '            self.routes_in.append(self._route("host", node, hw.source))',
       '            self.routes_in.append(self._route(node, "host", hw.source))')),
    M("R2", "routing", "outputs are sized as inputs on the links",
      (BLOCKS + "interconnect.py", "Transit(job, self.bits_out, links, ctrl, _outputs_arrive)",
       "Transit(job, self.bits_in, links, ctrl, _outputs_arrive)")),
    M("R3", "routing", "k and v elements sized with the q bits on the links",
      (BLOCKS + "interconnect.py", "        self.bits_in = s.heads * s.d_head * ic.q_bits + 2 * s.kv_heads * s.d_head * ic.kv_bits",
       "        self.bits_in = s.heads * s.d_head * ic.q_bits + 2 * s.kv_heads * s.d_head * ic.q_bits")),
    M("R4", "routing", "a layer is freed when its outputs leave, before they crossed the links",
      (BLOCKS + "controller.py", "            sim.network.send_outputs(self, job, end)\n",
       "            sim.network.send_outputs(self, job, end)\n            self._release(end)\n")),
]


def _edits(m: Mutation, tree: Path):
    for file, old, new in m.edits:
        path = tree / file
        text = path.read_text() if path.is_file() else ""
        n = text.count(old)
        if n != 1:
            raise NotApplicable(f"mutation {m.id} ({m.what}) no longer applies: {file} has its text {n} times "
                                f"(expected once): {old.strip()[:80]!r}")
        yield path, text, text.replace(old, new)


def check_applies(m: Mutation, tree: Path) -> None:
    list(_edits(m, tree))


@contextlib.contextmanager
def apply(m: Mutation, tree: Path):
    """Plant `m` in `tree` for the duration of the block."""
    edits = list(_edits(m, tree))
    try:
        for path, _, new in edits:
            path.write_text(new)
        yield
    finally:
        for path, old, _ in edits:
            path.write_text(old)
