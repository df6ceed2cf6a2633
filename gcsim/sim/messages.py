"""Typed messages exchanged by the simulator's components.

Messages are bank-wide: one carries all heads of a layer (arrays in functional mode, None
in timing-only runs, where only the counts travel). A layer step's messages share one
`LayerStep` record (what was sent so far for this step of this sequence in this layer, and
its critical path); a `Round` is the part of a read served by one GQA round, with the
windows of its phases as the components that decide them set them.

Hops (sender -> receiver, message, when it arrives; every hop is one SimPy event):
  host -> controller         LayerInputs (the LayerStep: q, k, v;   after the route's links
                             serving: a prompt's K/V, write only)
  controller -> writer       WriteRequest (k, v DAC'ed, the q       at once (local wire)
                             pulses; serial: the read that follows)
  writer -> tiles            Store (values, write interval;        when the writer takes it (at once)
                             serial: the read, from the write end)
  writer -> controller       WriteDone (overlap_write only)        when the write ends
  controller -> tiles        ReadRequest (overlap_write only)      when the read path is free
  tiles -> integrators       K currents (a Round: K arrays         when the round's Q phase starts
                             granted, the PWM pulses on the rows)
  integrators -> ctp         Charges S (the Q window they chose)   when the Q phase ends
  ctp -> tiles               phi (the V window it claimed)         at once (when the Q phase ends)
  tiles -> integrators       V currents (the round)                when the V phase starts
  integrators -> counters    Charges A (the round)                 when the V phase ends
  counters -> integrators    Latched (a round that waited)         when its count starts
  counters -> tiles          RoundDone (next round)                when its count ends
  counters -> accumulator    CountDone (the round's codes)         when its count ends
  accumulator -> controller  Summed (the outputs, the rounds)      when the adder tree ends
  controller -> host         LayerOutputs                          after the route's links
                             (a prompt's write: when it ends)
  refresh -> tiles           RefreshRequest                        when it falls due
  tiles -> writer            reserve (the DACs, for the refresh)   at once
  writer -> tiles            reserved (from when)                  at once
  tiles -> tiles             free (a waiting refresh may start)    when the last open step's V phase ends
  tiles -> writer, refresh   rewrite, refreshed (its interval)     when the refresh is decided
  sender or hop -> link      Transit (a LayerStep in transit)      when it reaches the link (one with a cost)
  last link -> controller    Delivered (the outputs' waits)        when the outputs reach the host
Latched is sent only when the round waited for the counters or counts in turns; RoundDone
only where the next round waits for the count (time-multiplexed rounds whose counters count
in turns); Transit and Delivered only over links with a cost (an ideal link is a plain wire).
"""
from __future__ import annotations


class LayerStep:
    """One layer step of one sequence as it travels through the layer's components."""
    __slots__ = ("seq", "step", "layer", "path", "q", "k", "v", "q_pulse", "k_dev", "v_dev", "arrived_ps",
                 "write_ps", "read_ps", "rounds_left", "codes", "S", "phi", "out", "last_path",
                 "last_end", "n_valid", "n_active", "A", "decay_ages", "waits",
                 "write_start", "write_end", "write_cause", "read_after", "rounds", "prompt")

    def __init__(self, seq, step, layer, path, q=None, k=None, v=None):
        self.seq, self.step, self.layer, self.path = seq, step, layer, path
        self.q, self.k, self.v = q, k, v
        self.q_pulse = self.k_dev = self.v_dev = None
        self.codes = self.S = self.phi = self.out = None
        self.arrived_ps = self.write_ps = self.read_ps = self.write_start = self.write_end = 0
        self.rounds_left = 0
        self.last_path, self.last_end = None, -1
        self.waits = None        # [(start, end, cause)] the sequence waited inside the layer (booked by the host)
        self.write_cause = None
        self.read_after = False  # the write request carries the read (serial issue policy)
        self.rounds = None       # the read's rounds, as the tiles granted them (the controller's PWM drive)
        self.prompt = 0          # serving: a prompt's K/V of this many tokens, written and not read


class Round:
    """The heads of one read round (None = all heads of the layer), its critical path and
    the windows of its phases, each set by the component that decides it: the Q phase
    [q0, q1) (q0: the tiles' grant of the K arrays, q1: the integrators' window), the V phase
    [v0, v1) (the charge-to-pulse's claim of the V arrays and its window), the count's start
    and turns (the counters)."""
    __slots__ = ("job", "index", "heads", "path", "q0", "q1", "v0", "v1", "count0", "turns", "keep_q_path", "q_path")

    def __init__(self, job, index, heads, path):
        self.job, self.index, self.heads, self.path = job, index, heads, path
        self.q0 = self.q1 = self.v0 = self.v1 = self.count0 = 0
        self.turns = None   # counter turns after the first: [(heads, start ps)] (Latched)
        self.keep_q_path = False   # the tiles want the path at the end of the Q phase (q_path)
        self.q_path = None


class RefreshRequest:
    """A refresh of one layer's arrays, from its falling due to its end: the refresh's own
    parameters (writes the run will make, time per sub-tile, the largest age a rewrite still
    restores), then what the writer (dacs_from: its DACs reserved from then) and the tiles
    ([start, end) ps, for `step`, the latest written; slots rewritten, assumption violations)
    fill in."""
    __slots__ = ("expected_writes", "per_subtile_ps", "safe_age_ps", "finished", "dacs_from", "start", "end", "step",
                 "slots", "assumption_violations")

    def __init__(self, expected_writes, per_subtile_ps, safe_age_ps):
        self.expected_writes, self.per_subtile_ps, self.safe_age_ps = expected_writes, per_subtile_ps, safe_age_ps
        self.finished = False
        self.dacs_from = self.start = self.end = self.step = None
        self.slots = self.assumption_violations = 0
