"""Layer controller / DAC front end of one layer: per-head scaling, clipping and quantization
of q, k and v, the issue of a layer step's requests (a write to the token writer, then a
read to the tiles), the PWM row drivers of the Q phase, and the route of the
accumulator's outputs back to the host. The PWM drivers are set with the read (the q pulses
travel in it) and fire when the tiles grant a round the K arrays, for the Q window the
integrators decide; the controller books their drive time when the outputs come back (the
Summed step lists its rounds with their windows).

It issues requests; the other components do their phases. With the `serial` issue policy a
layer step is one request: write, then read (the WriteRequest carries the read; the writer
passes it to the tiles with the Store, and the tiles start the read when the write ends).
With `overlap_write` the read is a request of its own, issued when the WriteDone arrives and
the read path is free. When another sequence's layer step holds the layer, the next waits
here (issue policy, gcsim/sim/policies/issue.py).

Parameters: `timing.phases_ns.routing`, the DACs' `numerics` (levels, ranges, cell law), the
per-head scalers of the source, `periphery.issue`.
Ports: in `inputs` <- host (LayerInputs); out `write` -> writer (WriteRequest, with the read
under `serial`); in `written` <- writer (WriteDone, `overlap_write`); out `read` -> tiles
(ReadRequest, `overlap_write`); in `summed` <- accumulator (Summed, with the read's rounds); out `outputs` -> host (LayerOutputs, over the interconnect route); in
`delivered` <- the last link with a cost of that route (the outputs reached the host, and
what they waited for on the way; over plain wires they arrive at once and no note comes).
Statistics (per query head): busy while its PWM drivers fire (Q phase of the round granted
to it) and during routing/control; stalled while it holds a step's k, v that the writer
cannot take (`refresh`: from the Summed step, or the WriteDone) and while its outputs wait
for a link (`link.NAME`, from the `delivered` note).
Energy: `q_pwm_drive` per PWM row driver firing into an active sub-tile, `control` per
head and step.
"""
from __future__ import annotations

from collections import deque

from ...datapath import dac_step
from ...finite import all_finite, raise_first_non_finite
from ..kernel import Component
from ..kernel.path import add

INF = 1 << 62
LAYER_BUSY = "layer busy (other sequence)"


class LayerController(Component):
    PARAMS = ("timing.phases_ns.routing", "numerics (the DACs: levels, ranges, cell law)", "periphery.issue")
    PORTS = {"inputs": "in <- host: LayerInputs", "write": "out -> writer: WriteRequest",
             "written": "in <- writer: WriteDone", "read": "out -> tiles: ReadRequest",
             "summed": "in <- accumulator: Summed", "outputs": "out -> host: LayerOutputs",
             "delivered": "in <- last link of the outputs' route: the outputs reached the host (their waits)"}
    STATS = "busy: PWM drive (Q phase), routing/control; stalled: refresh (holding k, v), link"
    ACTIONS = ("q_pwm_drive", "control")

    def __init__(self, sim, layer, scalers):
        hw = sim.hw
        s = hw.shape
        super().__init__(sim, f"L{layer:02d}.controller", s.heads)
        self.layer, self.sc = layer, scalers
        self.routing_ps = hw.timing.phase_ps("routing")
        self.law = hw.numerics.cell_law
        self.write_during_read = sim.policies["issue"].WRITE_DURING_READ
        # issue policy: the layer (serial) or its read path (overlap_write) is busy until
        # `busy_until` ps (INF while a layer step's end is not yet known); steps queue meanwhile
        # (the one queue of the layer: inputs may arrive while it serves another sequence)
        self.busy_until = 0
        self.waiting = deque()
        self.wake_pending = False
        self.H_d = s.heads * s.d_head
        self.ledger.declare(self.name, "q_pwm_drive", layer, per_active=self.H_d)   # per layer step
        self.ledger.declare(self.name, "control", layer, const=s.heads)

    # -- in: LayerInputs ---------------------------------------------------------------------
    def on_inputs(self, job):
        job.arrived_ps = self.env._now
        if self.write_during_read:
            self._start(job)         # the writer queues writes itself
        else:
            self._admit(job, self._start)

    def _admit(self, job, go):
        """Start `job` now if the layer (or read path) is free, else queue it."""
        if not self.waiting and self.env._now >= self.busy_until:
            self.busy_until = INF
            go(job)
        else:
            self.waiting.append(job)
            if self.busy_until != INF and not self.wake_pending:   # the end is known: wake then
                self.wake_pending = True
                self.send(self.busy_until, self._next, None)

    def _start(self, job):
        now = self.env._now
        if now > job.arrived_ps:  # waited for another sequence's layer step
            _wait(job, job.arrived_ps, now, LAYER_BUSY)
        if self.sim.values:
            hw, s, sc = self.sim.hw, self.sim.hw.shape, self.sc
            q_pulse, job.k_dev, job.v_dev = dac_step(job.q, job.k, job.v, sc, hw, self.law)
            job.q_pulse = q_pulse.reshape(s.kv_heads, s.group_size, s.d_head)
        job.arrived_ps = now    # the write request leaves now
        job.read_after = not self.write_during_read and not job.prompt   # serial: the read follows the write
        self.send(now, self.writer.on_write, job)

    # -- in: WriteDone (overlap_write: the read is issued apart) --------------------------------
    def on_written(self, job):
        if job.prompt:   # a prompt's K/V (serving): written, nothing to read; the host learns it now
            if not self.write_during_read:
                self._release(self.env._now)
            self.sim.host.send_outputs(self.env._now, job)
            return
        job.arrived_ps = self.env._now   # ready to read
        self._admit(job, self._read)

    def _read(self, job):
        now = self.env._now
        if now > job.arrived_ps:  # overlap_write: the read path served another sequence
            _wait(job, job.arrived_ps, now, LAYER_BUSY)
        job.read_ps = now
        self.send(now, self.tiles.on_read, job)

    # -- in: Summed --------------------------------------------------------------------------
    def on_summed(self, job):
        sim, env, l = self.sim, self.env, self.layer
        now = env._now
        if sim.values:
            self._check_finite(job)
        step = job.step
        if job.write_start > job.arrived_ps and job.read_after:
            # the writer could not take the k, v at once (refresh): this controller held them
            self.stall(job.arrived_ps, job.write_start, job.write_cause, step=step, layer=l)
        for rnd in job.rounds:   # the PWM drivers fired in each round's Q phase (the windows are back)
            self.busy(rnd.q0, rnd.q1, units=rnd.heads, step=step, layer=l, action="PWM drive")
        job.rounds = None        # (the rounds point back at the step: no cycle left for the collector)
        end = now + self.routing_ps
        self.busy(now, end, step=job.step, layer=l, action="routing/control")
        add(job.path, "routing", self.routing_ps)
        if sim.stages_hook is not None and sim.values:
            sim.stages_hook(job.seq, step, l, job.decay_ages, job.S, job.phi, job.codes, job.out)
        if sim.network.links_out[l]:   # over links with a cost: they tell this controller (delivered)
            sim.network.send_outputs(self, job, end)
        else:                          # plain wires: LayerOutputs reach the host when routed
            sim.host.send_outputs(end, job)
            self._release(end)

    # -- in: Delivered (from the last link of the outputs' route) ----------------------------
    def on_delivered(self, tr):
        """The outputs reached the host: the layer is free. While they waited for a link
        (tr.waits) this controller held them: its stall."""
        if tr.waits:
            job = tr.msg
            for start, end, cause in tr.waits:
                self.stall(start, end, cause, step=job.step, layer=self.layer)
        self._release(self.env._now)

    def _release(self, at):
        """The layer step's outputs have left at `at`: the next may start then."""
        self.busy_until = at
        if self.waiting and not self.wake_pending:
            self.wake_pending = True
            self.send(at, self._next, None)

    def _next(self, _):
        self.wake_pending = False
        job = self.waiting.popleft()
        self.busy_until = INF
        (self._read if self.write_during_read else self._start)(job)

    def _check_finite(self, job):
        if not all_finite(job.S, job.out):  # NaN/Inf is never a result (gcsim/finite.py)
            s = self.sim.hw.shape
            raise_first_non_finite({"q DAC": job.q_pulse.reshape(s.heads, -1), "k DAC": job.k_dev, "v DAC": job.v_dev,
                                    "S (K-array charge)": job.S.reshape(s.heads, -1), "phi (charge-to-pulse)":
                                    job.phi.reshape(s.heads, -1), "sub-tile output codes": job.codes,
                                    "output (adder tree and output scaler)": job.out},
                                   layer=self.layer, step=job.step, where=f"simulator, {self.sim.hw.source}")


def _wait(job, start, end, cause):
    """`job` waited [start, end) for `cause`: on its critical path, and listed for its
    sequence (the host books the sequence's stall when the outputs arrive)."""
    add(job.path, "stall:" + cause, end - start)
    if job.waits is None:
        job.waits = []
    job.waits.append((start, end, cause))
