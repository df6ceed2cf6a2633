"""Refresh policy of a layer's gain-cell tiles (`numerics.retention.refresh`).

- `none`: nothing is rewritten; the tiles count `lost_reads`, the (layer step, slot) reads
  of a stored value that had decayed past `loss_fraction` (one count per slot, for all K/V
  banks at once; exp(-age / tau) < loss_fraction, i.e. age > tau ln(1 / loss_fraction);
  per_token mode: by age in tokens).
- `periodic`: one SimPy process per layer (`LayerRefresh`). Refreshes fall due at k x
  `refresh_interval_ns` (k = 1, 2, ...). A refresh due at D asks the tiles for it (a
  RefreshRequest); they ask the writer to reserve its write DACs for it from when they are
  free (writes arriving later wait for the refresh), wait until no layer step is between its
  write and the end of its last V phase (a refresh never interrupts a step's use of the
  arrays), then claim their K and V arrays for `refresh_ns_per_subtile` x (sub-tiles
  holding a valid slot, of the fullest sequence), from the latest of that moment, the DACs'
  reservation and the end of the arrays' booked activity: the sub-tiles of a bank one after
  another, all banks (and every sequence's arrays) in parallel. The writer takes its DACs for
  the same interval. A write that finds them busy waits (cause `refresh`, on the sequence,
  the controller and the step's critical path). Nothing happens while nothing is written. Each valid slot is read and rewritten: energy
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
from ..messages import RefreshRequest
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
    due it asks the tiles for one (they reserve the writer's DACs, wait for their arrays,
    claim them and tell the writer), and books its energy when they report it done."""
    PARAMS = ("numerics.retention.refresh_interval_ns", "numerics.retention.refresh_ns_per_subtile")
    PORTS = {"refresh": "out -> tiles: RefreshRequest", "refreshed": "in <- tiles: the refresh done"}
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
        self.refreshes = self.busy_ps = self.slots_refreshed = self.assumption_violations = 0
        self.inbox = Inbox(sim.env)
        sim.start(self, self.run())

    @property
    def stall_ps(self) -> int:
        """Time writes waited for a refresh (the writer's count)."""
        return self.writer.refresh_wait_ps

    def on_refreshed(self, req):
        """The tiles' answer: handled by run() (it waits for it)."""

    def run(self):
        env, inbox = self.env, self.inbox
        due = self.interval_ps
        while True:
            yield env.timeout(max(0, due - env._now))
            due += self.interval_ps
            req = RefreshRequest(self.expected_writes, self.per_subtile_ps, self.safe_age_ps)
            self.send(env._now, self.tiles.on_refresh, req)
            _, req = yield inbox.event
            inbox.woke()
            if req.finished:
                return   # no layer step will come here again
            if req.start is not None:
                self._done(req)

    def _done(self, req):
        l, step, n_slots = self.layer, req.step, req.slots
        self.energy("k_column_read", self.banks * n_slots, l, step)
        self.energy("v_row_read", self.banks * n_slots, l, step)
        self.energy("kv_write_dac", self.cells_per_slot * n_slots, l, step)
        self.refreshes += 1
        self.busy_ps += req.end - req.start
        self.slots_refreshed += n_slots
        self.assumption_violations += req.assumption_violations


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
