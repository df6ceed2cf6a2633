"""Host port: the host's decode loop, one SimPy process per sequence in flight. Per step and
layer it computes (or takes from its source) q, k, v, sends them to the layer's controller
and waits on its inbox for the layer's outputs, which it hands back to the source; after the
last layer, the step's own work (with a host device: final norm, LM head, sampling).

Parameters: `host` (the host device: its roofline gives the host's time and energy,
gcsim/system/work.py) and `timing.host_ns_per_layer` (the host's time per layer without a
device, or an override of the roofline's; 0 and no device keep the paper's accelerator-only
figures), `periphery.batching` (how the sequences' host work is grouped:
gcsim/sim/policies/batching.py), `periphery.host_engines` (engines shared by the sequences
in flight), `periphery.sequences`.
Ports: out `inputs` -> controller (LayerInputs, over the interconnect route: to the first
link with a cost, or straight to the controller over plain wires);
in `outputs` <- controller (LayerOutputs).
Statistics: `host` busy (computing), per engine; `sequences`, one unit per sequence,
stalled while its next layer waits for the host (`host compute`, `host busy`, `host batch`:
the other sequences of a lockstep batch), a link
(`link.NAME`, listed by the links in the LayerStep), or,
inside the layer, for the layer (`layer busy (other sequence)`), the writer (`refresh`,
`writer busy (other sequence)`): the components that saw those waits list them in the
LayerStep (`waits`) and the sequence's process books them when the outputs arrive.
Energy (with a host device): `host_busy` (ps busy, at busy_power_w pJ each), `host_flop`,
`host_byte`, booked per batch on the layer it precedes (the step's work on the last layer).
Source: gcsim/sim/source.py (a trace replay or a live model).
"""
from __future__ import annotations

import numpy as np

from ...system.work import ACTIONS, HostWork
from ..kernel import Component, Inbox, Resource
from ..messages import LayerStep


class Sequences(Component):
    """The sequences in flight (one unit each): where each waits. Its units are the host's
    per-sequence processes; it has no process of its own."""
    STATS = "stalled while a sequence's next layer step waits (host, layer, refresh)"
    PROCESS = False

    def __init__(self, sim, n):
        super().__init__(sim, "sequences", n)


class HostPort(Component):
    PARAMS = ("host", "timing.host_ns_per_layer", "periphery.batching", "periphery.host_engines",
              "periphery.sequences")
    PORTS = {"inputs": "out -> controller: LayerInputs", "outputs": "in <- controller: LayerOutputs"}
    STATS = "busy while computing, per engine"
    ACTIONS = ACTIONS
    PROCESS = False   # one process per sequence instead (decode)

    def __init__(self, sim, source):
        hw = sim.hw
        super().__init__(sim, "host", hw.periphery.host_engines)
        self.source = source
        self.sequences = Sequences(sim, hw.periphery.sequences)
        self.work = HostWork(hw)
        self.L = hw.shape.layers
        for action, pj in self.work.actions_pj().items():
            self.ledger.table[action] = pj
            self.ledger.add_action(action)
        self.batching = sim.policies["batching"]
        self.batching.start(range(hw.periphery.sequences))
        self.engines = [Resource(f"host engine {i}", "host busy") for i in range(hw.periphery.host_engines)]
        self.dtype = np.dtype(hw.numerics.dtype)
        self.inboxes = [Inbox(sim.env) for _ in range(hw.periphery.sequences)]
        self.processes = [sim.start(self, self.decode(seq)) for seq in range(hw.periphery.sequences)]

    def on_outputs(self, job):
        """LayerOutputs: handled by the sequence's decode loop (it waits for them)."""

    def decode(self, seq: int):
        """The decode loop of one sequence (a SimPy process)."""
        sim, env, source = self.sim, self.env, self.source
        values, L = sim.values, sim.hw.shape.layers
        compute = self.batching.compute if self.work.any else None
        step_work = self.work.device is not None
        controllers, links_in = sim.controllers, sim.network.links_in
        rec, seqs, inbox = sim.record, self.sequences, self.inboxes[seq]
        on_outputs = self.on_outputs
        for t in range(sim.steps):
            path = {}
            for l in range(L):
                now = env._now
                rec.layer_start[seq][t, l] = now
                if compute is not None:   # the host's own phase (alone or in a batch)
                    path = yield from compute(self, seq, t, l, path)
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
            if step_work:   # final norm, LM head, sampling
                path = yield from compute(self, seq, t, L, path)
            rec.step_end[seq][t] = env._now
            sim.path.record(seq, t, path)
            if seq == 0:
                sim.step_done(t)
        self.batching.leave(self, seq)

    def book(self, actions: dict, phase: int, step: int) -> None:
        """The host's energy actions of a batch (gcsim/system/work.py), on the layer they
        precede (the step's work on the last layer)."""
        layer = min(phase, self.L - 1)
        for action, count in actions.items():
            if count:
                self.energy(action, count, layer, step)

    def send_outputs(self, at_ps, job):
        """The controller's LayerOutputs to the sequence's decode loop, arriving at at_ps."""
        self.inboxes[job.seq].put(at_ps, (self.on_outputs, job))
