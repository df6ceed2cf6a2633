"""Typed messages exchanged by the simulator's components.

Messages are bank-wide: one carries all heads of a layer (arrays in functional mode, None
in timing-only runs, where only the counts travel). A layer step's messages share one
`LayerStep` record (what was sent so far for this step of this sequence in this layer, and
its critical path); a `Round` is the part of a read served by one GQA round, with the
times the tiles' arrays serve it.

Hops (sender -> receiver, message, when it arrives; every hop is one SimPy event):
  host -> controller         LayerInputs (the LayerStep: q, k, v;   after the route's links
                             serving: a prompt's K/V, write only)
  controller -> writer       WriteRequest (k, v DAC'ed; serial:    at once (local wire)
                             the read that follows, q pulses)
  writer -> tiles            Store (values, write interval;        when the writer takes it (at once)
                             serial: the read, from the write end)
  writer -> controller       WriteDone (overlap_write only)        when the write ends
  controller -> tiles        ReadRequest (overlap_write only)      when the read path is free
  tiles -> controller        Grant (a Round: its Q phase)          when the round's Q phase starts
  controller -> integrators  QPulses (the round's PWM pulses)      at once
  integrators -> ctp         Charges S (the round)                 when the Q phase ends
  ctp -> integrators         Pulses phi (the round)                when the V phase starts
  integrators -> counters    Charges A (the round)                 when the V phase ends
  counters -> integrators    Latched (a round that waited)         when its count starts
  counters -> tiles          RoundDone (bank released / next round) when its count ends
  counters -> accumulator    CountDone (the round's codes)         when its count ends
  accumulator -> controller  Summed (the outputs)                  when the adder tree ends
  controller -> host         LayerOutputs                          after the route's links
                             (a prompt's write: when it ends)
  refresh -> writer, tiles   Refresh (interval)                    when it is decided (at once)
  tiles -> refresh           TilesFree                             when the last V phase ends
  sender or hop -> link      Transit (a LayerStep in transit)      when it reaches the link (one with a cost)
  last link -> controller    Delivered (the outputs' waits)        when the outputs reach the host
Latched is sent only when the round waited for the counters or counts in turns; RoundDone
only where the tiles need it (time-multiplexed rounds, a refresh, a shared periphery);
Transit and Delivered only over links with a cost (an ideal link is a plain wire).
"""
from __future__ import annotations


class LayerStep:
    """One layer step of one sequence as it travels through the layer's components."""
    __slots__ = ("seq", "step", "layer", "path", "q", "k", "v", "q_pulse", "k_dev", "v_dev", "arrived_ps",
                 "write_ps", "read_ps", "rounds_left", "codes", "S", "phi", "out", "last_path",
                 "last_end", "n_valid", "n_active", "A", "decay_ages", "waits",
                 "write_start", "write_cause", "read_after", "prompt")

    def __init__(self, seq, step, layer, path, q=None, k=None, v=None):
        self.seq, self.step, self.layer, self.path = seq, step, layer, path
        self.q, self.k, self.v = q, k, v
        self.q_pulse = self.k_dev = self.v_dev = None
        self.codes = self.S = self.phi = self.out = None
        self.arrived_ps = self.write_ps = self.read_ps = self.write_start = 0
        self.rounds_left = 0
        self.last_path, self.last_end = None, -1
        self.waits = None        # [(start, end, cause)] the sequence waited inside the layer (booked by the host)
        self.write_cause = None
        self.read_after = False  # the write request carries the read (serial issue policy)
        self.prompt = 0          # serving: a prompt's K/V of this many tokens, written and not read


class Round:
    """The heads of one read round (None = all heads of the layer), its critical path and
    the times the arrays serve it: Q phase [q0, q1), V phase [v0, v1)."""
    __slots__ = ("job", "index", "heads", "path", "q0", "q1", "v0", "v1", "count0", "turns")

    def __init__(self, job, index, heads, path):
        self.job, self.index, self.heads, self.path = job, index, heads, path
        self.q0 = self.q1 = self.v0 = self.v1 = self.count0 = 0
        self.turns = None   # counter turns after the first: [(heads, start ps)] (Latched)


class Refresh:
    """A refresh of one layer's arrays: [start, end) ps, for `step` (the latest written)."""
    __slots__ = ("start", "end", "step")

    def __init__(self, start, end, step):
        self.start, self.end, self.step = start, end, step
