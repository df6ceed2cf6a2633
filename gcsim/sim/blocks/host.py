"""Host port: the host's decode loop, one SimPy process per sequence in flight. Per step and
layer it computes (or takes from its source) q, k, v, sends them to the layer's controller
and waits on its inbox for the layer's outputs, which it hands back to the source.

Parameters: `timing.host_ns_per_layer` (projections and MLP before each layer's attention;
0 keeps the paper's accelerator-only figures), `periphery.host_engines` (engines shared by
the sequences in flight), `periphery.sequences`.
Ports: out `inputs` -> controller (LayerInputs, over the interconnect route: to the first
link with a cost, or straight to the controller over plain wires);
in `outputs` <- controller (LayerOutputs).
Statistics: `host` busy (computing), per engine; `sequences`, one unit per sequence,
stalled while its next layer waits for the host (`host compute`, `host busy`), a link
(`link.NAME`, listed by the links in the LayerStep), or,
inside the layer, for the layer (`layer busy (other sequence)`), the writer (`refresh`,
`writer busy (other sequence)`): the components that saw those waits list them in the
LayerStep (`waits`) and the sequence's process books them when the outputs arrive.
Source: gcsim/sim/source.py (a trace replay or a live model).
"""
from __future__ import annotations

import numpy as np

from ...hardware import PS_PER_NS
from ..kernel import Component, Inbox, Resource
from ..kernel.path import add
from ..messages import LayerStep


class Sequences(Component):
    """The sequences in flight (one unit each): where each waits. Its units are the host's
    per-sequence processes; it has no process of its own."""
    STATS = "stalled while a sequence's next layer step waits (host, layer, refresh)"
    PROCESS = False

    def __init__(self, sim, n):
        super().__init__(sim, "sequences", n)


class HostPort(Component):
    PARAMS = ("timing.host_ns_per_layer", "periphery.host_engines", "periphery.sequences")
    PORTS = {"inputs": "out -> controller: LayerInputs", "outputs": "in <- controller: LayerOutputs"}
    STATS = "busy while computing, per engine"
    ACTIONS = ()
    PROCESS = False   # one process per sequence instead (decode)

    def __init__(self, sim, source):
        hw = sim.hw
        super().__init__(sim, "host", hw.periphery.host_engines)
        self.source = source
        self.sequences = Sequences(sim, hw.periphery.sequences)
        self.host_ps = round(hw.timing.host_ns_per_layer * PS_PER_NS)
        self.engines = [Resource(f"host engine {i}", "host busy") for i in range(hw.periphery.host_engines)]
        self.dtype = np.dtype(hw.numerics.dtype)
        self.inboxes = [Inbox(sim.env) for _ in range(hw.periphery.sequences)]
        self.processes = [sim.start(self, self.decode(seq)) for seq in range(hw.periphery.sequences)]

    def on_outputs(self, job):
        """LayerOutputs: handled by the sequence's decode loop (it waits for them)."""

    def decode(self, seq: int):
        """The decode loop of one sequence (a SimPy process)."""
        sim, env, source = self.sim, self.env, self.source
        values, L, host_ps = sim.values, sim.hw.shape.layers, self.host_ps
        controllers, links_in = sim.controllers, sim.network.links_in
        rec, seqs, inbox = sim.record, self.sequences, self.inboxes[seq]
        on_outputs = self.on_outputs
        for t in range(sim.steps):
            path = {}
            for l in range(L):
                now = env._now
                rec.layer_start[seq][t, l] = now
                if host_ps:
                    engine = min(self.engines, key=lambda e: e.free_at)
                    start, path = engine.claim(now, host_ps, seq, path)
                    if start > now:
                        seqs.stall(now, start, "host busy", units=seq, step=t, layer=l)
                    end = start + host_ps
                    self.busy(start, end, units=self.engines.index(engine), step=t, layer=l, action="compute")
                    seqs.stall(start, end, "host compute", units=seq, step=t, layer=l)
                    add(path, "host compute", host_ps)
                    yield env.timeout(end - now)   # the host's own phase
                job = LayerStep(seq, t, l, path)
                if values:
                    q, k, v = source.layer_inputs(seq, t, l)
                    dt = self.dtype
                    job.q, job.k, job.v = np.asarray(q, dt), np.asarray(k, dt), np.asarray(v, dt)
                ctrl = controllers[l]
                if links_in[l]:   # over links with a cost (their waits come back in job.waits)
                    sim.network.send_inputs(self, job, ctrl)
                else:             # plain wires: straight to the controller
                    self.send(env._now, ctrl.on_inputs, job)
                _, job = yield inbox.event            # the LayerOutputs arrive (one event)
                inbox.woke()
                if job.waits:
                    for start, end, cause in job.waits:
                        seqs.stall(start, end, cause, units=seq, step=t, layer=l)
                path = job.path
                source.receive(seq, t, l, job.out)
                rec.layer_end[seq][t, l] = env._now
                rec.write[seq][t, l] = job.write_ps
                rec.read[seq][t, l] = job.read_ps
                inbox.rearm()
            rec.step_end[seq][t] = env._now
            sim.path.record(seq, t, path)
            if seq == 0:
                sim.step_done(t)

    def send_outputs(self, at_ps, job):
        """The controller's LayerOutputs to the sequence's decode loop, arriving at at_ps."""
        self.inboxes[job.seq].put(at_ps, (self.on_outputs, job))
