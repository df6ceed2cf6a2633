"""Output counters: signed charge-to-pulse plus pulse counter per V column of each sub-tile;
the output code clip(A / out_sat, -1, 1) quantized on [-1, 1] (32 levels).

The counter bank serves one read round at a time: a round claims it when its V phase ends
(the A charges reach it) and holds it until its last head is counted (and, on a periphery
bank shared by layers, the last round's adder tree is done). Inside the bank each set of
counters (`periphery.counters_shared_by` heads share one) counts its heads one after
another, in head order: a head's count starts when its set is free, so the turns of heads
sharing a set come out of the contention for it. A shared unit switching to another user
takes `periphery.switch_cycles`: a set before counting another head than the one it counted
last, a periphery bank shared by layers (`counters_shared_by_layers` > 1) before serving
another layer than the last. The counter policy (gcsim/sim/policies/counters.py) says
whether a round's count keeps its K/V bank busy.

Parameters: `timing.phases_ns.output_count` (and `adder_tree` for a shared periphery),
`periphery.counters_shared_by`, `counters_shared_by_layers`, `switch_cycles`,
`periphery.counters`, `numerics.out_sat`, `numerics.out_levels`.
Ports: in `count` <- integrators (A, when a round's V phase ends); out `latched` ->
integrators (a round that waited or counts in turns, when its count starts); out
`counted` -> accumulator (CountDone) and, where the tiles wait for it (time-multiplexed
rounds whose counters count in turns), `round_done` -> tiles (RoundDone), when the count ends.
Statistics: busy per physical counter set (counting, and switching to another user). Waits
are booked by the integrators holding the charge (from the Latched). Energy:
`output_conversion` per output column of an active sub-tile.
"""
from __future__ import annotations

import numpy as np

from ... import costs
from ...datapath import output_code
from ..kernel import Component, Resource
from ..kernel.path import add


class OutputCounters(Component):
    PARAMS = ("timing.phases_ns.output_count", "periphery.counters_shared_by", "periphery.counters_shared_by_layers",
              "periphery.switch_cycles", "periphery.counters", "numerics.out_sat", "numerics.out_levels")
    PORTS = {"count": "in <- integrators: A", "latched": "out -> integrators: Latched",
             "counted": "out -> accumulator: CountDone", "round_done": "out -> tiles: RoundDone"}
    STATS = "busy per physical counter set (counting, switching users)"
    ACTIONS = ("output_conversion",)

    def __init__(self, sim, name, shared_by_layers: bool):
        hw = sim.hw
        s, p = hw.shape, hw.periphery
        self.shared_by = p.counters_shared_by
        super().__init__(sim, name, s.heads // self.shared_by)
        self.count_ps = hw.timing.phase_ps("output_count")
        self.switch_ps = p.switch_cycles * hw.timing.clock_period_ps
        self.shared_layers = shared_by_layers
        self.adder_ps = costs.adder_tree_ps(hw) if shared_by_layers else 0  # gcsim/costs.py
        gqa = sim.policies["gqa"]
        cause = ("periphery shared by layers" if shared_by_layers else
                 "output counters busy (GQA pipeline)" if gqa.SEPARATE_ARRAYS else "output counters shared")
        self.res = Resource(name, cause, sim.check)
        rounds = gqa.rounds()
        self.n_rounds = len(rounds)
        self.res.track_paths = self.n_rounds > 1   # a round may wait for an earlier round's count
        # per set: when its last count ends and the head it counted (a set switching heads pays switch_ps)
        self.set_free = [0] * self.units
        self.set_user = [-1] * self.units
        self.bank_layer = -1     # the layer the bank counted last (a shared periphery switching layers)
        self.round_heads = [self._heads(h, s.heads) for h in rounds]
        self.H_d, self.shape = s.heads * s.d_head, (s.heads, s.n_sub_tiles, s.d_head)
        self.tiles, self.integrators = {}, {}   # per layer served

    def _heads(self, heads, n_heads):
        """A round's heads [(head, its set)]; whether each set has one head and never switches
        users (then every head is counted at once when the round gets the bank), and the sets
        it uses (None: all)."""
        h = list(range(n_heads)) if heads is None else [int(x) for x in heads]
        pairs = [(x, x // self.shared_by) for x in h]
        sets = sorted({st for _, st in pairs})
        at_once = len(sets) == len(pairs) and (self.switch_ps == 0 or self.shared_by == 1)
        return pairs, at_once, None if len(sets) == self.units else np.array(sets)

    def serve(self, layer, tiles, integrators, accumulator):
        self.tiles[layer], self.integrators[layer], self.accumulator = tiles, integrators, accumulator
        self.ledger.declare(self.name, "output_conversion", layer, per_active=self.H_d)   # per layer step

    # -- in: A (a round's V phase is over) -------------------------------------------------
    def on_count(self, rnd):
        job = rnd.job
        l, step = job.layer, job.step
        now = self.env._now
        count, res = self.count_ps, self.res
        last = rnd.index == self.n_rounds - 1
        path = rnd.path
        ready = now
        if self.shared_layers and self.bank_layer not in (-1, l) and self.switch_ps:
            # the bank switches from another layer before this round: the wait is for it
            ready = (now if now >= res.free_at else res.free_at) + self.switch_ps
            self.busy(ready - self.switch_ps, ready, step=step, layer=l, action="switch")
            add(path, "stall:" + res.cause, ready - now)
        start, path = res.claim(ready, None, job, path)   # the bank, until the last head is counted
        self.bank_layer = l
        pairs, at_once, sets = self.round_heads[rnd.index]
        if at_once:       # one head per set and no switch: every head counted at once
            end = start + count
            self.busy(start, end, units=sets, step=step, layer=l, action="count")
            add(path, "output_count", count)
            turns = ()
        else:
            end, turns = self._turns(pairs, start, l, step, path)
        res.release_at(end + (self.adder_ps if last else 0))
        res.release(path)
        if rnd.index == 0 and self.sim.values:
            job.codes = output_code(job.A, self.sim.hw).reshape(self.shape)
        rnd.path = path
        if start > now or turns:   # the integrators held the charge: they book it when it is latched
            rnd.count0, rnd.turns = start, turns
            self.send(start, self.integrators[l].on_latched, rnd)
        tiles = self.tiles[l]
        if tiles.wants_round_done and not last:   # the next time-multiplexed round may start
            self.send(end, tiles.on_round_done, rnd)
        self.send(end, self.accumulator.on_counted, rnd)

    def _turns(self, pairs, start, layer, step, path):
        """Each head is counted when its set is free, after a switch if the set counted another
        head last. Returns the end of the last count and the heads that started after `start`
        with their start [(heads, t0)]."""
        free, user, count, sw = self.set_free, self.set_user, self.count_ps, self.switch_ps
        starts: dict[int, list] = {}      # t0 -> [(head, set, switched)]
        for h, st in pairs:
            t0 = start if start >= free[st] else free[st]
            switched = sw and user[st] not in (-1, h)
            if switched:
                t0 += sw
            free[st], user[st] = t0 + count, h
            starts.setdefault(t0, []).append((h, st, switched))
        end = max(t0 + count for t0 in starts)
        for t0, group in sorted(starts.items()):   # one booking per turn: the sets that count then
            for what, begin, sets in (("switch", t0 - sw, [st for _, st, s in group if s]),
                                      ("count", t0, [st for _, st, _ in group])):
                if sets:
                    self.busy(begin, begin + (sw if what == "switch" else count),
                              units=None if len(sets) == self.units else np.array(sets), step=step, layer=layer,
                              action=what)
        # on the critical path: the counts of the set that ends last, and its switches
        last = max(pairs, key=lambda p: free[p[1]])[1]
        n_counts = sum(1 for _, st in pairs if st == last)
        add(path, "output_count", n_counts * count)
        add(path, "switch:counters", end - start - n_counts * count)
        turns = [(np.array([h for h, _, _ in group]), t0) for t0, group in sorted(starts.items()) if t0 > start]
        return end, turns
