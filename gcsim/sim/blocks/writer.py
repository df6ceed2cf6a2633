"""Token writer: writes a step's DAC'ed k and v into the ring-buffer slot t mod M of the
sequence's arrays, with its write DACs.

Parameters: `timing.phases_ns.write`; `energy kv_write_dac` per cell written
(2 x KV x d per step; x G copies when GQA replicates the K/V arrays).
Ports: in `write` <- controller (WriteRequest); out `store` -> tiles (the values and their
write time); out `written` -> controller (WriteDone, when the write ends).
Statistics (per K/V bank): busy during writes (and refreshes, which use its DACs);
a write that finds the DACs busy waits (cause `refresh`, or `writer busy (other sequence)`
with the `overlap_write` issue policy), booked on the sequence and, serial issue, on
the controller that holds the k, v.
"""
from __future__ import annotations

from ..kernel import Component, Resource
from ..kernel.path import add


class TokenWriter(Component):
    PARAMS = ("timing.phases_ns.write", "periphery.gqa_mapping (copies)")
    PORTS = {"write": "in <- controller: WriteRequest", "store": "out -> tiles: values + write time",
             "written": "out -> controller: WriteDone"}
    STATS = "busy: write (and refresh); waits booked on the sequence/controller"
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

    def on_write(self, job):
        env, l = self.env, self.layer
        now = env._now
        dacs = self.dacs
        holder = dacs.holder
        cause = "refresh" if holder is self.tiles.refresh else "writer busy (other sequence)"
        start, job.path = dacs.claim(now, self.write_ps, job, job.path, cause)
        if start > now:
            seqs = self.sim.host.sequences
            seqs.stall(now, start, cause, units=job.seq, step=job.step, layer=l)
            if not self.controller.write_during_read:
                self.controller.stall(now, start, cause, step=job.step, layer=l)
            if cause == "refresh":
                self.tiles.refresh.stall_ps += start - now
        end = start + self.write_ps
        self.busy(start, end, step=job.step, layer=l, action="write")
        add(job.path, "write", self.write_ps)
        self.tiles.store(job, start, end)   # the value is in the cell when the write ends: its age-0 time
        self.send(end, self.controller.on_written, job)
