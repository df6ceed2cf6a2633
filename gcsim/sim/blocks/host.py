"""Host port: the host's decode loop, one SimPy process per sequence in flight. Per step and
layer it computes (or takes from its source) q, k, v, sends them to the layer's controller
and waits for the layer's outputs, which it hands back to the source.

Parameters: `timing.host_ns_per_layer` (projections and MLP before each layer's attention;
0 keeps the paper's accelerator-only figures), `periphery.host_engines` (engines shared by
the sequences in flight), `periphery.sequences`.
Ports: out `inputs` -> controller (LayerInputs, over the interconnect route);
in `outputs` <- controller (LayerOutputs).
Statistics: `host` busy (computing), per engine; `sequences`, one unit per sequence,
stalled while its next layer waits for the host (`host compute`, `host busy`), for the
layer (`layer busy (other sequence)`) or a refresh (`refresh`).
Source: gcsim/sim/source.py (a trace replay or a live model).
"""
from __future__ import annotations

import numpy as np
from simpy.events import Event

from ...hardware import PS_PER_NS
from ..kernel import Component, Resource
from ..kernel.path import add
from ..messages import LayerStep


class Sequences(Component):
    """The sequences in flight (one unit each): where each waits."""
    STATS = "stalled while a sequence's next layer step waits (host, layer, refresh)"

    def __init__(self, sim, n):
        super().__init__(sim, "sequences", n)


class HostPort(Component):
    PARAMS = ("timing.host_ns_per_layer", "periphery.host_engines", "periphery.sequences")
    PORTS = {"inputs": "out -> controller: LayerInputs", "outputs": "in <- controller: LayerOutputs"}
    STATS = "busy while computing, per engine"
    ACTIONS = ()

    def __init__(self, sim, source):
        hw = sim.hw
        super().__init__(sim, "host", hw.periphery.host_engines)
        self.source = source
        self.sequences = Sequences(sim, hw.periphery.sequences)
        self.host_ps = round(hw.timing.host_ns_per_layer * PS_PER_NS)
        self.engines = [Resource(f"host engine {i}", "host busy") for i in range(hw.periphery.host_engines)]
        self.dtype = np.dtype(hw.numerics.dtype)

    def decode(self, seq: int):
        """The decode loop of one sequence (a SimPy process)."""
        sim, env, source = self.sim, self.env, self.source
        values, L, host_ps = sim.values, sim.hw.shape.layers, self.host_ps
        controllers, routes = sim.controllers, sim.network.routes_in
        rec = sim.record
        for t in range(sim.steps):
            path = {}
            for l in range(L):
                now = env._now
                rec.layer_start[seq][t, l] = now
                if host_ps:
                    engine = min(self.engines, key=lambda e: e.free_at)
                    start, path = engine.claim(now, host_ps, seq, path)
                    if start > now:
                        self.sequences.stall(now, start, "host busy", units=seq, step=t, layer=l)
                    end = start + host_ps
                    self.busy(start, end, units=self.engines.index(engine), step=t, layer=l, action="compute")
                    self.sequences.stall(start, end, "host compute", units=seq, step=t, layer=l)
                    add(path, "host compute", host_ps)
                    yield env.timeout(end - now)
                job = LayerStep(seq, t, l, path)
                if values:
                    q, k, v = source.layer_inputs(seq, t, l)
                    job.q, job.k, job.v = (np.asarray(a, dtype=self.dtype) for a in (q, k, v))
                job.done = Event(env)
                ctrl = controllers[l]
                arrive = sim.network.transfer(routes[l], ctrl.bits_in, env._now, job, self.sequences, seq)
                self.send(arrive, ctrl.on_inputs, job)
                yield job.done            # the LayerOutputs arrive (one event)
                path = job.path
                source.receive(seq, t, l, job.out)
                rec.layer_end[seq][t, l] = env._now
                rec.write[seq][t, l] = job.write_ps
                rec.read[seq][t, l] = job.read_ps
            rec.step_end[seq][t] = env._now
            sim.path.record(seq, t, path)
            if seq == 0:
                sim.step_done(t)
