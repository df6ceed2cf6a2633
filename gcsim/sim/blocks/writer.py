"""Token writer: writes a step's DAC'ed k and v into the ring-buffer slot t mod M of the
sequence's arrays, with its write DACs.

Parameters: `timing.phases_ns.write`; `energy kv_write_dac` per cell written
(2 x KV x d per step; x G copies when GQA replicates the K/V arrays). Serving: a prompt's
K/V of n tokens is one request, n write phases long.
Ports: in `write` <- controller (WriteRequest); out `store` -> tiles (the values and their
write interval, when the writer takes the request, with the read that follows it under the
`serial` issue policy); out `written` -> controller (WriteDone, when the write ends; only
with `overlap_write`, where the controller issues the read itself); in `refresh` <- refresh
(a refresh uses its DACs).
Statistics (per K/V bank): busy during writes and refreshes. A write that finds the DACs
busy waits (cause `refresh`, or `writer busy (other sequence)` with the `overlap_write`
issue policy): on the step's critical path and listed for its sequence; the request
carries when the write started, so that the controller books its own hold.
"""
from __future__ import annotations

from ..kernel import Component, Resource
from ..kernel.path import add


class TokenWriter(Component):
    PARAMS = ("timing.phases_ns.write", "periphery.gqa_mapping (copies)")
    PORTS = {"write": "in <- controller: WriteRequest", "store": "out -> tiles: values + write interval",
             "written": "out -> controller: WriteDone", "refresh": "in <- refresh: Refresh"}
    STATS = "busy: write and refresh"
    ACTIONS = ("kv_write_dac",)

    def __init__(self, sim, layer):
        hw = sim.hw
        s = hw.shape
        super().__init__(sim, f"L{layer:02d}.writer", s.kv_heads)
        self.layer = layer
        self.write_ps = hw.timing.phase_ps("write")
        self.cells_per_write = 2 * s.kv_heads * s.d_head * sim.policies["gqa"].copies()
        self.ledger.declare(self.name, "kv_write_dac", layer, const=self.cells_per_write)   # per layer step
        self.dacs = Resource(self.name, "writer busy (other sequence)", sim.check)
        self.refresh = None   # the layer's refresh component (periodic refresh), set by the engine
        self.refresh_wait_ps = 0   # writes delayed by a refresh (refresh summary's stall_ps)

    # -- in: WriteRequest ------------------------------------------------------------------
    def on_write(self, job):
        now = self.env._now
        dacs = self.dacs
        refreshing = dacs.holder is self.refresh and self.refresh is not None
        cause = "refresh" if refreshing else "writer busy (other sequence)"
        hold = self.write_ps * (job.prompt or 1)   # a prompt's K/V: one write phase per token
        start, job.path = dacs.claim(now, hold, job, job.path, cause)
        if start > now:
            if job.waits is None:
                job.waits = []
            job.waits.append((now, start, cause))
            if refreshing:
                self.refresh_wait_ps += start - now
        job.write_start, job.write_cause = start, cause
        end = start + hold
        what = "prompt write" if job.prompt else "write"
        self.busy(start, end, step=job.step, layer=self.layer, action=what)
        add(job.path, what, hold)
        if job.prompt:   # not a layer step: its cells are booked here, not by the declared count
            self.energy("kv_write_dac", job.prompt * self.cells_per_write, self.layer, job.step)
        self.send(now, self.tiles.on_store, job)   # the tiles reserve the slot's cells for [start, end) now
        if not job.read_after:
            self.send(end, self.controller.on_written, job)

    # -- in: Refresh ------------------------------------------------------------------------
    def on_refresh(self, r):
        self.busy(r.start, r.end, step=r.step, layer=self.layer, action="refresh")
