"""Typed messages exchanged by the simulator's components.

Messages are bank-wide: one carries all heads of a layer (arrays in functional mode, None
in timing-only runs, where only the counts travel). A layer step's messages share one
`LayerStep` record (what was sent so far for this step of this sequence in this layer, and
its critical path); a `Round` is the part of a read served by one GQA round.

Hops (sender -> receiver, message, when it arrives):
  host -> controller      LayerInputs  (the LayerStep: q, k, v)   after the route's links
  controller -> writer    WriteRequest (the LayerStep: k, v DAC'ed) at once (local wire)
  writer -> controller    WriteDone                               when the write ends
  controller -> tiles     ReadRequest  (q pulses)                 at once
  tiles -> counters       CountRequest (a Round: its V-array charges) when its V phase ends
  counters -> tiles       RoundDone    (time-multiplexed rounds)  when its count ends
  counters -> accumulator CountDone    (a Round: its codes)       when its count ends
  accumulator -> controller Summed     (the outputs)              when the adder tree ends
  controller -> host      LayerOutputs                            after the route's links
"""
from __future__ import annotations


class LayerStep:
    """One layer step of one sequence as it travels through the layer's components."""
    __slots__ = ("seq", "step", "layer", "path", "q", "k", "v", "q_pulse", "k_dev", "v_dev", "arrived_ps",
                 "write_ps", "read_ps", "rounds_left", "codes", "S", "phi", "out", "done", "last_path",
                 "last_end", "valid", "decay", "n_valid", "n_active", "A", "decay_ages")

    def __init__(self, seq, step, layer, path, q=None, k=None, v=None):
        self.seq, self.step, self.layer, self.path = seq, step, layer, path
        self.q, self.k, self.v = q, k, v
        self.q_pulse = self.k_dev = self.v_dev = None
        self.codes = self.S = self.phi = self.out = None
        self.arrived_ps = self.write_ps = self.read_ps = 0
        self.rounds_left = 0
        self.last_path, self.last_end = None, -1
        self.done = None


class Round:
    """The heads of one read round (None = all heads of the layer) and its critical path."""
    __slots__ = ("job", "index", "heads", "path", "v_end", "turns")

    def __init__(self, job, index, heads, path):
        self.job, self.index, self.heads, self.path = job, index, heads, path
        self.v_end = 0
