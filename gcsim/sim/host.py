"""Host port: takes each layer's q, k, v from a source (gcsim/sim/source.py: a trace
replay or a live model) step by step and layer by layer, and gives it the outputs back.

Parameters: `timing.host_ns_per_layer` (projections and MLP on the host before each
layer's attention; 0 keeps the paper's accelerator-only figures) and
`periphery.host_engines` (engines shared by the sequences in flight).
Ports: out -> layer controller (LayerInputs); in <- accumulator (LayerOutputs).
Statistics: `host` busy (computing), per engine; `sequences`, one unit per sequence in
flight, stalled while its next layer's inputs wait for the host (`host compute`,
`host busy`) or for a layer another sequence holds.
"""
from __future__ import annotations

import numpy as np
import simpy

from ..hardware import PS_PER_NS
from .messages import LayerInputs, LayerOutputs


class HostPort:
    name = "host"

    def __init__(self, ctx, source):
        self.ctx = ctx
        self.source = source
        self.host_ps = round(ctx.hw.timing.host_ns_per_layer * PS_PER_NS)
        n = ctx.hw.periphery.host_engines
        ctx.activity.add_component(self.name, n)
        ctx.activity.add_component("sequences", ctx.hw.periphery.sequences)
        self.engines = simpy.Store(ctx.env, capacity=n)
        self.engines.items.extend(range(n))

    def layer_inputs(self, seq: int, step: int, layer: int):
        """Compute (on the host) and hand over one layer's inputs."""
        ctx = self.ctx
        if self.host_ps:
            t0 = ctx.env.now
            engine = yield self.engines.get()
            if ctx.env.now > t0:
                ctx.path.add(seq, step, "stall:host busy", ctx.env.now - t0)
                ctx.activity.stall("sequences", t0, ctx.env.now, "host busy", units=seq, step=step, layer=layer)
            t1 = ctx.env.now
            yield ctx.delay(seq, step, "host compute", self.host_ps)
            ctx.activity.busy(self.name, t1, ctx.env.now, units=engine, step=step, layer=layer, action="compute")
            ctx.activity.stall("sequences", t1, ctx.env.now, "host compute", units=seq, step=step, layer=layer)
            yield self.engines.put(engine)
        if ctx.values:
            q, k, v = (np.asarray(a, dtype=ctx.dtype) for a in self.source.layer_inputs(seq, step, layer))
            return LayerInputs(seq, step, layer, q, k, v, ctx.env.now)
        return LayerInputs(seq, step, layer, None, None, None, ctx.env.now)

    def receive(self, msg: LayerOutputs) -> None:
        self.source.receive(msg.seq, msg.step, msg.layer, msg.out)
