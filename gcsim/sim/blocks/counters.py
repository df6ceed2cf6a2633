"""Output counters: signed charge-to-pulse plus pulse counter per V column of each sub-tile;
the output code clip(A / out_sat, -1, 1) quantized on [-1, 1] (32 levels).

The counter sets are a resource claimed by each read round when its V phase ends. Heads
sharing a set (`periphery.counters_shared_by`) count in turns, one output_count phase
each. With `counters_shared_by_layers` > 1 one periphery bank (counters and adder tree)
serves several layers: a round claims it for its counts and, for the last round, the
adder tree too, so layers (of different sequences) contend for it. The counter policy
(gcsim/sim/policies/counters.py) says whether a round's count keeps its K/V bank busy.

Parameters: `timing.phases_ns.output_count` (and `adder_tree` for a shared periphery),
`periphery.counters_shared_by`, `counters_shared_by_layers`, `periphery.counters`,
`numerics.out_sat`, `numerics.out_levels`.
Ports: in `count` <- integrators (A, when a round's V phase ends); out `latched` ->
integrators (a round that waited or counts in turns, when its count starts); out
`counted` -> accumulator (CountDone) and, where the tiles wait for it (time-multiplexed
rounds, a refresh), `round_done` -> tiles (RoundDone), when the count ends.
Statistics: busy per physical counter set. Waits are booked by the integrators holding
the charge (from the Latched). Energy: `output_conversion` per output column of an active
sub-tile.
"""
from __future__ import annotations

import numpy as np

from ... import costs
from ...datapath import output_code
from ..kernel import Component, Resource
from ..kernel.path import add


class OutputCounters(Component):
    PARAMS = ("timing.phases_ns.output_count", "periphery.counters_shared_by", "periphery.counters_shared_by_layers",
              "periphery.counters", "numerics.out_sat", "numerics.out_levels")
    PORTS = {"count": "in <- integrators: A", "latched": "out -> integrators: Latched",
             "counted": "out -> accumulator: CountDone", "round_done": "out -> tiles: RoundDone"}
    STATS = "busy per physical counter set"
    ACTIONS = ("output_conversion",)

    def __init__(self, sim, name, shared_by_layers: bool):
        hw = sim.hw
        s, p = hw.shape, hw.periphery
        self.shared_by = p.counters_shared_by
        super().__init__(sim, name, s.heads // self.shared_by)
        self.count_ps = hw.timing.phase_ps("output_count")
        self.shared_layers = shared_by_layers
        self.adder_ps = costs.adder_tree_ps(hw) if shared_by_layers else 0  # gcsim/costs.py
        pipelined = sim.policies["gqa"].SEPARATE_ARRAYS
        cause = ("periphery shared by layers" if shared_by_layers else
                 "output counters busy (GQA pipeline)" if pipelined else "output counters shared")
        self.res = Resource(name, cause, sim.check)
        self.n = hw.numerics
        self.H_d, self.shape = s.heads * s.d_head, (s.heads, s.n_sub_tiles, s.d_head)
        self.tiles, self.integrators = {}, {}   # per layer served
        self.turns = None

    def serve(self, layer, tiles, integrators, accumulator):
        self.tiles[layer], self.integrators[layer], self.accumulator = tiles, integrators, accumulator
        self.ledger.declare(self.name, "output_conversion", layer, per_active=self.H_d)   # per layer step

    def plan_turns(self, rounds):
        """Per round: the turns (heads, counter sets used or None for all) on the shared sets."""
        n_sets = self.units
        out = []
        for heads in rounds:
            h = np.arange(self.sim.hw.shape.heads) if heads is None else heads
            sets = h // self.shared_by
            order = np.zeros(len(h), np.int64)
            seen: dict[int, int] = {}
            for i, st in enumerate(sets.tolist()):
                order[i] = seen.get(st, 0)
                seen[st] = order[i] + 1
            turns = []
            for r in range(int(order.max()) + 1):
                th = h[order == r]
                used = np.unique(th // self.shared_by)
                turns.append((None if heads is None and len(th) == len(h) else th,
                              None if len(used) == n_sets else used))
            out.append(turns)
        self.turns = out
        self.n_rounds = len(rounds)

    # -- in: A (a round's V phase is over) -------------------------------------------------
    def on_count(self, rnd):
        job = rnd.job
        l, step = job.layer, job.step
        now = self.env._now
        turns = self.turns[rnd.index]
        n, count = len(turns), self.count_ps
        last = rnd.index == self.n_rounds - 1
        hold = n * count + (self.adder_ps if last else 0)
        start, path = self.res.claim(now, hold, job, rnd.path)
        for i, (_, sets) in enumerate(turns):
            t0 = start + i * count
            self.busy(t0, t0 + count, units=sets, step=step, layer=l, action="count")
        add(path, "output_count", n * count)
        end = start + n * count
        self.res.release(path)
        if rnd.index == 0 and self.sim.values:
            job.codes = output_code(job.A, self.sim.hw).reshape(self.shape)
        rnd.path = path
        if start > now or n > 1:   # the integrators held the charge: they book it when it is latched
            rnd.count0 = start
            rnd.turns = [(th, start + i * count) for i, (th, _) in enumerate(turns) if i]
            self.send(start, self.integrators[l].on_latched, rnd)
        tiles = self.tiles[l]
        if tiles.wants_round_done and not last:   # the next time-multiplexed round may start
            self.send(end, tiles.on_round_done, rnd)
        self.send(end, self.accumulator.on_counted, rnd)
