"""Token writer: writes a step's DAC'ed k and v into the ring-buffer slot t mod M.

Parameters: `timing.phases_ns.write` (the write must finish before the same step's
read: the controller starts the read only after this returns), `energy kv_write_dac`
per cell written (2 x KV x d per step; x G when GQA replicates the K/V arrays).
Ports: in <- controller (WriteRequest); out -> tiles (stored values, write time).
Statistics: busy during writes, per K/V bank.
"""
from __future__ import annotations

from .messages import WriteRequest


class TokenWriter:
    def __init__(self, ctx, layer: int, tiles):
        self.ctx, self.layer, self.tiles = ctx, layer, tiles
        self.name = f"L{layer:02d}.writer"
        ctx.activity.add_component(self.name, ctx.hw.shape.kv_heads)
        self.write_ps = ctx.hw.timing.phase_ps("write")
        s = ctx.hw.shape
        copies = s.group_size if ctx.hw.periphery.gqa_mapping == "replicated" else 1
        self.cells_per_write = 2 * s.kv_heads * s.d_head * copies

    def write(self, req: WriteRequest):
        ctx = self.ctx
        t0 = ctx.env.now
        yield ctx.delay(req.seq, req.step, "write", self.write_ps)
        ctx.activity.busy(self.name, t0, ctx.env.now, step=req.step, layer=self.layer, action="write")
        ctx.activity.busy(self.tiles.name, t0, ctx.env.now, step=req.step, layer=self.layer, action="write")
        ctx.energy.book(self.name, "kv_write_dac", self.cells_per_write, self.layer, req.step)
        # the value is in the cell when the write phase ends: that is its age-0 time
        self.tiles.store(req.seq, req.step, req.slot, req.k_dev, req.v_dev, ctx.env.now)
