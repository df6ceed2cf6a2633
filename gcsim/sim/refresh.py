"""Refresh policy of a layer's gain-cell tiles, and the count of lost slot reads.

Description fields (`numerics.retention`):

- `refresh: none | periodic`;
- `refresh_interval_ns`: periodic refreshes of a layer fall due at k x interval (k = 1, 2, ...);
- `refresh_ns_per_subtile`: time to read and rewrite one sub-tile (all its valid slots); the
  sub-tiles of a K/V bank are refreshed one after another, all banks of the layer (and the
  arrays of every sequence in flight) in parallel, so a refresh takes
  refresh_ns_per_subtile x (sub-tiles holding a valid slot, of the fullest sequence);
- `loss_fraction`: a slot read counts as *lost* when its retention factor has fallen below it
  (exp(-age / tau) < loss_fraction, i.e. age > tau ln(1 / loss_fraction); per_token mode: by
  age in tokens).

`none`: nothing is rewritten; `lost_reads` counts the (layer step, slot) reads of a stored
value that had decayed past the threshold (one count per slot, for all K/V banks at once).

`periodic`: a refresh due at time D starts at max(D, the end of the tiles' last activity)
(a refresh never interrupts a step: it waits until the step's V phase is over) and holds the
layer's tiles and write DACs busy (`refresh`) for its duration. A step that reaches the layer
during a refresh stalls until it ends: cause `refresh`, booked on `sequences` (its unit) and
on the layer's controller, and on the step's critical path. Each valid slot is read and
rewritten: energy booked under component `Lxx.refresh` as `k_column_read` + `v_row_read` per
K/V bank and slot read and `kv_write_dac` per cell rewritten (x G copies when GQA is
`replicated`). The rewrite restores the slot's write time (age 0 at the end of the refresh).
This is exact only if the value had lost less than half a DAC level since its last write or
refresh, so that re-quantizing the read value gives the level originally written:
max |deviation| x (1 - exp(-interval / tau)) < (kv range / (kv_levels - 1)) / 2; refreshes
whose oldest slot violates it are counted in `assumption_violations` (the value is still
restored as if the assumption held).

Refreshes are materialised lazily when a step reaches the layer (they are booked at their
own times, possibly in the past, where the tiles were idle); refreshes falling due after a
layer's last step of the run are not simulated.
Read `summary(sim)` for the counts of a finished `Simulator`.
"""
from __future__ import annotations

import math

import numpy as np

from ..hardware import PS_PER_NS
from ..physics import V_ZERO_V


class Refresh:
    """The refresh policy and lost-read count of one layer's tiles."""

    def __init__(self, ctx, tiles):
        self.ctx, self.tiles = ctx, tiles
        hw = ctx.hw
        ret, s, n = hw.numerics.retention, hw.shape, hw.numerics
        self.layer = tiles.layer
        self.writer_name = f"L{self.layer:02d}.writer"
        self.controller_name = f"L{self.layer:02d}.controller"
        self.energy_name = f"L{self.layer:02d}.refresh"
        self.periodic = ret.refresh == "periodic"
        self.interval_ps = round(ret.refresh_interval_ns * PS_PER_NS)
        self.per_subtile_ps = round(ret.refresh_ns_per_subtile * PS_PER_NS)
        self.next_due_ps = self.interval_ps
        self.mode = ret.mode
        if ret.mode == "time":
            self.loss_age = hw.decay_tau_ps * math.log(1.0 / ret.loss_fraction)     # ps
        elif ret.mode == "per_token" and ret.rate_per_token > 0:
            self.loss_age = math.log(1.0 / ret.loss_fraction) / ret.rate_per_token  # tokens
        else:
            self.loss_age = None                                                    # never lost
        copies = s.group_size if hw.periphery.gqa_mapping == "replicated" else 1
        self.banks = s.kv_heads * copies
        self.cells_per_slot = 2 * s.d_head * self.banks
        half_level = (n.kv_range_v[1] - n.kv_range_v[0]) / ((n.kv_levels or 2 ** 16) - 1) / 2
        max_dev = max(abs(n.kv_range_v[0] - V_ZERO_V), abs(n.kv_range_v[1] - V_ZERO_V))
        # largest age at which a rewrite still restores the level written (time mode)
        self.safe_age_ps = (-hw.decay_tau_ps * math.log(1.0 - half_level / max_dev)
                            if ret.mode == "time" and half_level < max_dev else math.inf)
        # statistics
        self.refreshes = 0
        self.busy_ps = 0
        self.stall_ps = 0
        self.slots_refreshed = 0
        self.assumption_violations = 0
        self.lost_reads = 0
        self.slot_reads = 0

    # -- periodic refresh --------------------------------------------------------------
    def before_write(self, seq: int, step: int):
        """Run the refreshes due before this step can use the tiles; stall while one runs.
        Generator for `yield from` (returns at once unless the policy is periodic)."""
        if not self.periodic:
            return
        ctx = self.ctx
        env, act = ctx.env, ctx.activity
        now = env.now
        free = max(act.bank_end_ps[self.tiles.name], act.bank_end_ps[self.writer_name])
        while self.next_due_ps <= max(now, free):
            start = max(self.next_due_ps, free)
            self.next_due_ps += self.interval_ps
            free = self._refresh(start, step)
        if free > now:
            dt = free - now
            self.stall_ps += dt
            ctx.path.add(seq, step, "stall:refresh", dt)
            act.stall("sequences", now, free, "refresh", units=seq, step=step, layer=self.layer)
            act.stall(self.controller_name, now, free, "refresh", step=step, layer=self.layer)
            yield env.timeout(dt)

    def _refresh(self, start: int, step: int) -> int:
        """Refresh every valid slot of every sequence's arrays from `start`; returns the end."""
        s = self.ctx.hw.shape
        states = self.tiles.states
        valid = [st.token >= 0 for st in states]
        active = max(int(v.reshape(s.n_sub_tiles, s.array_size).any(axis=1).sum()) for v in valid)
        dur = active * self.per_subtile_ps
        if dur == 0:
            return start
        end = start + dur
        act, energy = self.ctx.activity, self.ctx.energy
        act.busy(self.tiles.name, start, end, step=step, layer=self.layer, action="refresh")
        act.busy(self.writer_name, start, end, step=step, layer=self.layer, action="refresh")
        n_slots = 0
        for st, v in zip(states, valid):
            if v.any() and start - int(st.write_ps[v].min()) > self.safe_age_ps:
                self.assumption_violations += 1
            n_slots += st.restore(end)  # the rewritten level is the one written: age 0 from here
        energy.book(self.energy_name, "k_column_read", self.banks * n_slots, self.layer, step)
        energy.book(self.energy_name, "v_row_read", self.banks * n_slots, self.layer, step)
        energy.book(self.energy_name, "kv_write_dac", self.cells_per_slot * n_slots, self.layer, step)
        self.refreshes += 1
        self.busy_ps += dur
        self.slots_refreshed += n_slots
        return end

    # -- lost reads --------------------------------------------------------------------
    def count_lost(self, seq: int, step: int, read_ps: int, valid: np.ndarray) -> None:
        """Count the valid slots read at `read_ps` whose retention factor < loss_fraction."""
        n_valid = int(valid.sum())
        self.slot_reads += n_valid
        if self.loss_age is None or not n_valid:
            return
        st = self.tiles.states[seq]
        w = self.ctx.hw.shape.window
        # write times (and tokens) rise in ring order from the oldest slot: check it first
        oldest = (step + 1) % w if step >= w - 1 else 0
        if self.mode == "time":
            if read_ps - int(st.write_ps[oldest]) <= self.loss_age:
                return
            self.lost_reads += int(((read_ps - st.write_ps) > self.loss_age)[valid].sum())
        else:
            if step - int(st.token[oldest]) <= self.loss_age:
                return
            self.lost_reads += int(((step - st.token) > self.loss_age)[valid].sum())


def summary(sim) -> dict:
    """Refresh and lost-read counts of a finished Simulator, in total and per layer."""
    per = [c.tiles.refresh for c in sim.controllers]
    keys = ("refreshes", "busy_ps", "stall_ps", "slots_refreshed", "assumption_violations", "lost_reads",
            "slot_reads")
    out = {k: sum(getattr(r, k) for r in per) for k in keys}
    out["policy"] = sim.hw.numerics.retention.refresh
    out["per_layer"] = {k: [getattr(r, k) for r in per] for k in keys}
    return out
