"""Token writer: writes a step's DAC'ed k and v into the ring-buffer slot t mod M of the
sequence's arrays, with its write DACs.

Parameters: `timing.phases_ns.write`; `energy kv_write_dac` per cell written
(2 x KV x d per step; x G copies when GQA replicates the K/V arrays). Serving: a prompt's
K/V of n tokens is one request, n write phases long.
Ports: in `write` <- controller (WriteRequest); out `store` -> tiles (the values and their
write interval, when the writer takes the request, with the read that follows it under the
`serial` issue policy); out `written` -> controller (WriteDone, when the write ends; only
with `overlap_write`, where the controller issues the read itself); in `reserve` <- tiles (a
refresh falls due: the DACs are kept for it from when they are free, writes arriving meanwhile
wait); out `reserved` -> tiles (from when); in `rewrite` <- tiles (the refresh's interval: the
DACs rewrite the slots then).
Statistics (per K/V bank): busy during writes and refreshes. A write that finds the DACs
busy waits (cause `refresh`, or `writer busy (other sequence)` with the `overlap_write`
issue policy): on the step's critical path and listed for its sequence; the request
carries when the write started, so that the controller books its own hold.
"""
from __future__ import annotations

from ..kernel import Component, Resource
from ..kernel.path import add

REFRESH = "refresh"


class TokenWriter(Component):
    PARAMS = ("timing.phases_ns.write", "periphery.gqa_mapping (copies)")
    PORTS = {"write": "in <- controller: WriteRequest", "store": "out -> tiles: values + write interval",
             "written": "out -> controller: WriteDone", "reserve": "in <- tiles: reserve the DACs for a refresh",
             "reserved": "out -> tiles: the DACs reserved (from when)",
             "rewrite": "in <- tiles: the refresh's interval"}
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
        self.reserved = None   # writes waiting for a refresh that has the DACs reserved: [(job, arrived ps)]
        self.refresh_wait_ps = 0   # writes delayed by a refresh (refresh summary's stall_ps)

    # -- in: WriteRequest ------------------------------------------------------------------
    def on_write(self, job):
        if self.reserved is not None:   # kept for a refresh: the write waits for its interval
            self.reserved.append((job, self.env._now))
        else:
            self._write(job, self.env._now)

    def _write(self, job, ready):
        now = self.env._now
        dacs = self.dacs
        refreshing = dacs.holder is REFRESH
        cause = REFRESH if refreshing else "writer busy (other sequence)"
        hold = self.write_ps * (job.prompt or 1)   # a prompt's K/V: one write phase per token
        start, job.path = dacs.claim(ready, hold, job, job.path, cause)
        if start > ready:
            if job.waits is None:
                job.waits = []
            job.waits.append((ready, start, cause))
            if refreshing:
                self.refresh_wait_ps += start - ready
        job.write_start, job.write_cause = start, cause
        end = job.write_end = start + hold
        what = "prompt write" if job.prompt else "write"
        self.busy(start, end, step=job.step, layer=self.layer, action=what)
        add(job.path, what, hold)
        if job.prompt:   # not a layer step: its cells are booked here, not by the declared count
            self.energy("kv_write_dac", job.prompt * self.cells_per_write, self.layer, job.step)
        self.send(now, self.tiles.on_store, job)   # the tiles reserve the slot's cells for [start, end) now
        if not job.read_after:
            self.send(end, self.controller.on_written, job)

    # -- in: reserve (a refresh falls due) ----------------------------------------------------
    def on_reserve(self, req):
        now = self.env._now
        free = self.dacs.free_at
        req.dacs_from = now if now >= free else free
        self.reserved = []
        self.send(now, self.tiles.on_reserved, req)

    # -- in: rewrite (the refresh's interval) -------------------------------------------------
    def on_rewrite(self, req):
        self.dacs.claim(req.start, req.end - req.start, REFRESH, None)
        self.busy(req.start, req.end, step=req.step, layer=self.layer, action="refresh")
        waiting, self.reserved = self.reserved, None
        for job, arrived in waiting:   # in the order they came
            self._write(job, arrived)
