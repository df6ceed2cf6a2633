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
        self.engines = [Resource(f"host engine {i}", "host busy") for i in range(hw.periphery.host_engines)]
        self.dtype = np.dtype(hw.numerics.dtype)
        n = hw.periphery.sequences
        self.inboxes = [Inbox(sim.env) for _ in range(n)]
        self.rows = [0] * n            # records written per sequence (decode steps)
        self.requests = getattr(source, "requests", None)
        if self.requests is None:      # a trace: every sequence decodes its steps from time 0
            self.batching.start(range(n))
            self.processes = [sim.start(self, self.decode(seq)) for seq in range(n)]
        else:                          # serving: requests arrive; each K/V bank serves one at a time
            self.admission = sim.policies["admission"]
            self.waiting, self.idle, self.arrived_all = [], {}, False
            self.served = []           # per request: its times (gcsim/serving/metrics.py)
            self.processes = [sim.start(self, self.serve(seq)) for seq in range(n)]
            sim.start(self, self.arrivals())

    def on_outputs(self, job):
        """LayerOutputs: handled by the sequence's decode loop (it waits for them)."""

    def decode(self, seq: int):
        """The decode loop of one sequence of a trace (a SimPy process)."""
        for t in range(self.sim.steps):
            yield from self.step(seq, t, {})
        self.batching.leave(self, seq)

    def step(self, seq: int, t: int, path: dict):
        """One decode step of sequence `seq` at position t (a SimPy process step): the host's
        work and the chip's attention layer by layer, then the step's own work."""
        sim, env, source = self.sim, self.env, self.source
        values, L = sim.values, self.L
        compute = self.batching.compute if self.work.any else None
        controllers, links_in = sim.controllers, sim.network.links_in
        rec, seqs, inbox = sim.record, self.sequences, self.inboxes[seq]
        row = self.rows[seq]
        for l in range(L):
            now = env._now
            rec.layer_start[seq][row, l] = now
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
            rec.layer_end[seq][row, l] = env._now
            rec.write[seq][row, l] = job.write_ps
            rec.read[seq][row, l] = job.read_ps
            inbox.rearm()
        if self.work.device is not None:   # final norm, LM head, sampling
            path = yield from compute(self, seq, t, L, path)
        rec.step_end[seq][row] = env._now
        sim.path.record(seq, row, path)
        self.rows[seq] = row + 1
        if seq == 0:
            sim.step_done(row)

    # -- serving ------------------------------------------------------------------------------
    def arrivals(self):
        """The requests arrive (a SimPy process): each waits for a free K/V bank."""
        env = self.env
        for req in self.requests:
            if req.arrival_ps > env._now:
                yield env.timeout(req.arrival_ps - env._now)
            self.waiting.append(req)
            self._wake_idle()
        self.arrived_all = True
        self._wake_idle()

    def _wake_idle(self):
        idle, self.idle = self.idle, {}
        for seq in sorted(idle):   # the lowest free bank first
            idle[seq].succeed()

    def next_request(self, seq: int):
        """The request K/V bank `seq` serves next (admission policy), once one is waiting;
        None when every request has arrived and none waits."""
        while not self.waiting:
            if self.arrived_all:
                return None
            ev = self.idle[seq] = self.env.event()
            yield ev
        req = self.admission.pick(self.waiting)
        self.waiting.remove(req)
        return req

    def serve(self, seq: int):
        """K/V bank `seq` serves requests one after another (a SimPy process): the prefill on
        the host (its first token), the prompt's K/V written into the bank's arrays of every
        layer, then a decode step per further token."""
        env, seqs = self.env, self.sequences
        mark, pending = 0, {}   # the end of the bank's last recorded step; the time since, by cause
        while True:
            req = yield from self.next_request(seq)
            if req is None:
                return
            admitted = env._now
            times = {"request": req.index, "bank": seq, "arrival_ps": req.arrival_ps, "admitted_ps": admitted,
                     "prompt": req.prompt, "output": req.output}
            path = pending
            add(path, "idle (no request)", admitted - mark)
            # the prefill: a batch of its own on the first free host engine
            ps, actions = self.work.prefill(req.prompt)
            engine = min(self.engines, key=lambda e: e.free_at)
            start, path = engine.claim(admitted, ps, ("prefill", req.index), path)
            end = start + ps
            if start > admitted:
                seqs.stall(admitted, start, "host busy", units=seq, step=0, layer=0)
            self.busy(start, end, units=self.engines.index(engine), step=req.prompt - 1, layer=0, action="prefill")
            self.book(actions, 0, req.prompt - 1)
            seqs.stall(start, end, "host prefill", units=seq, step=0, layer=0)
            add(path, "host prefill", ps)
            yield env.timeout(end - admitted)
            times["first_token_ps"] = env._now
            path = yield from self.write_prompt(seq, req, path)
            tokens = []
            for i in range(req.output - 1):   # the prefill gave the first token
                yield from self.step(seq, req.prompt + i, path if i == 0 else {})
                tokens.append(env._now)
            if req.output > 1:   # else no step recorded it: the next request's first step will
                pending = {}
            mark = env._now
            self.batching.leave(self, seq)
            times["finish_ps"] = env._now
            times["token_ps"] = tokens
            self.served.append(times)

    def write_prompt(self, seq: int, req, path: dict):
        """The prompt's K/V (its last `window` tokens) into the bank's arrays of every layer,
        all layers at once; the request waits for the last (its path: that layer's)."""
        sim, env, inbox = self.sim, self.env, self.inboxes[seq]
        n = min(req.prompt, sim.hw.shape.window)
        start = env._now
        for l, ctrl in enumerate(sim.controllers):
            job = LayerStep(seq, req.prompt - 1, l, {})
            job.prompt = n
            sim.network.book_prompt(job)
            if sim.network.links_in[l]:
                sim.network.send_inputs(self, job, ctrl)
            else:
                self.send(start, ctrl.on_inputs, job)
        for _ in range(self.L):
            _, job = yield inbox.event
            inbox.woke()
            inbox.rearm()
        if env._now > start:
            self.sequences.stall(start, env._now, "prompt K/V write", units=seq, step=req.prompt - 1)
        for cat, ps in job.path.items():   # the last layer to finish: its writes and waits
            add(path, cat, ps)
        return path

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
