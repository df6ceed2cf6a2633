"""Refresh policy of a layer's gain-cell tiles (`numerics.retention.refresh`).

- `none`: nothing is rewritten; the tiles count `lost_reads`, the (layer step, slot) reads
  of a stored value that had decayed past `loss_fraction` (one count per slot, for all K/V
  banks at once; exp(-age / tau) < loss_fraction, i.e. age > tau ln(1 / loss_fraction);
  per_token mode: by age in tokens).
- `periodic`: one SimPy process per layer (`LayerRefresh`). Refreshes fall due at k x
  `refresh_interval_ns` (k = 1, 2, ...). A refresh due at D waits until no layer step is
  between its write and the end of its last V phase (a refresh never interrupts a step's
  use of the arrays), then claims the write DACs and the K/V arrays for
  `refresh_ns_per_subtile` x (sub-tiles holding a valid slot, of the fullest sequence):
  the sub-tiles of a bank one after another, all banks (and every sequence's arrays) in
  parallel. A write that finds them busy waits (cause `refresh`, on the sequence, the
  controller and the step's critical path). Each valid slot is read and rewritten: energy
  under component `Lxx.refresh`, `k_column_read` + `v_row_read` per K/V bank and slot,
  `kv_write_dac` per cell rewritten (x G copies when GQA is `replicated`); the rewrite
  restores the slot's write time (age 0 at the end of the refresh). This is exact only if
  the value had lost less than half a DAC level since its last write or refresh, so that
  re-quantizing the read value gives the level originally written:
  max |deviation| x (1 - exp(-interval / tau)) < (kv range / (kv_levels - 1)) / 2; refreshes
  whose oldest slot violates it are counted in `assumption_violations`.
  A layer is refreshed while it still has layer steps to serve in the run: refreshes
  falling due after a layer's last step has arrived there are not simulated.
Read `summary(sim)` for the counts of a finished `Simulator`.
"""
from __future__ import annotations

import math

from ...hardware import PS_PER_NS
from ...physics import V_ZERO_V
from ..kernel import Component, Inbox
from ..messages import Refresh
from . import Policy, register


@register("refresh", "none")
class NoRefresh(Policy):
    def attach(self, sim, tiles, writer):
        return None


@register("refresh", "periodic")
class Periodic(Policy):
    def attach(self, sim, tiles, writer):
        return LayerRefresh(sim, tiles, writer)


class LayerRefresh(Component):
    """The periodic refresh of one layer's tiles (a SimPy process): when a refresh falls
    due it waits for the tiles to be free (a TilesFree from them), claims the write DACs and
    the arrays, and sends a Refresh to the writer and the tiles, which book their own time
    and the tiles restore their values."""
    PARAMS = ("numerics.retention.refresh_interval_ns", "numerics.retention.refresh_ns_per_subtile")
    PORTS = {"free": "in <- tiles: TilesFree", "refresh": "out -> writer, tiles: Refresh"}
    STATS = "energy only (the writer and the tiles book their own time in a refresh)"
    ACTIONS = ("k_column_read", "v_row_read", "kv_write_dac")
    PROCESS = False   # its own process: run()

    def __init__(self, sim, tiles, writer):
        super().__init__(sim, f"L{tiles.layer:02d}.refresh", 1)
        hw = sim.hw
        ret, s, n = hw.numerics.retention, hw.shape, hw.numerics
        self.tiles, self.writer, self.layer = tiles, writer, tiles.layer
        self.interval_ps = round(ret.refresh_interval_ns * PS_PER_NS)
        self.per_subtile_ps = round(ret.refresh_ns_per_subtile * PS_PER_NS)
        self.banks = s.kv_heads * sim.policies["gqa"].copies()
        self.cells_per_slot = 2 * s.d_head * self.banks
        half_level = (n.kv_range_v[1] - n.kv_range_v[0]) / ((n.kv_levels or 2 ** 16) - 1) / 2
        max_dev = max(abs(n.kv_range_v[0] - V_ZERO_V), abs(n.kv_range_v[1] - V_ZERO_V))
        # largest age at which a rewrite still restores the level written (time mode)
        self.safe_age_ps = (-hw.decay_tau_ps * math.log(1.0 - half_level / max_dev)
                            if ret.mode == "time" and half_level < max_dev else math.inf)
        self.expected_writes = sim.steps * hw.periphery.sequences
        self.waiting = False
        self.refreshes = self.busy_ps = self.slots_refreshed = self.assumption_violations = 0
        self.inbox = Inbox(sim.env)
        sim.start(self, self.run())

    @property
    def stall_ps(self) -> int:
        """Time writes waited for a refresh (the writer's count)."""
        return self.writer.refresh_wait_ps

    def on_tiles_free(self, at_ps):
        """TilesFree: handled by run() (it waits for it)."""

    def run(self):
        env, tiles, writer, inbox = self.env, self.tiles, self.writer, self.inbox
        due = self.interval_ps
        while True:
            yield env.timeout(max(0, due - env._now))
            due += self.interval_ps
            if sum(r.writes for r in tiles.rings) >= self.expected_writes:
                return   # no layer step will come here again
            if tiles.open_steps:
                self.waiting = True      # the tiles send a TilesFree when their last step lets go
                yield inbox.event
                inbox.woke()
                self.waiting = False
            now = env._now
            free = max([now, writer.dacs.free_at] + tiles.busy_until + [b.free_at for b in tiles.banks])
            active = max(r.counts(r.last)[1] if r.written().any() else 0 for r in tiles.rings)
            dur = active * self.per_subtile_ps
            if dur:
                self._refresh(free, free + dur)

    def _refresh(self, start, end):
        tiles, writer, l = self.tiles, self.writer, self.layer
        for res in (writer.dacs,) + tiles.banks:   # claimed: a write or read finding them busy waits
            res.free_at, res.holder, res.holder_path = end, self, None
        step = max(r.last for r in tiles.rings)
        n_slots = 0
        for ring in tiles.rings:
            valid = ring.written()
            if valid.any() and start - int(ring.write_ps[valid].min()) > self.safe_age_ps:
                self.assumption_violations += 1
            n_slots += int(valid.sum())
        msg = Refresh(start, end, step)
        now = self.env._now   # the writer and the tiles book the interval they are claimed for now
        self.send(now, writer.on_refresh, msg)
        self.send(now, tiles.on_refresh, msg)
        self.energy("k_column_read", self.banks * n_slots, l, step)
        self.energy("v_row_read", self.banks * n_slots, l, step)
        self.energy("kv_write_dac", self.cells_per_slot * n_slots, l, step)
        self.refreshes += 1
        self.busy_ps += end - start
        self.slots_refreshed += n_slots


KEYS = ("refreshes", "busy_ps", "stall_ps", "slots_refreshed", "assumption_violations", "lost_reads", "slot_reads")


def summary(sim) -> dict:
    """Refresh and lost-read counts of a finished Simulator, in total and per layer."""
    per = []
    for tiles in sim.tiles:
        r = tiles.refresh
        row = {k: getattr(r, k) if r is not None else 0 for k in KEYS[:5]}
        row.update(lost_reads=tiles.lost_reads, slot_reads=tiles.slot_reads)
        per.append(row)
    out = {k: sum(row[k] for row in per) for k in KEYS}
    out["policy"] = str(sim.hw.numerics.retention.refresh)
    out["per_layer"] = {k: [row[k] for row in per] for k in KEYS}
    return out
