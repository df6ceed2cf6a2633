"""The witness's rule for each policy (gcsim/sim/policies/ chooses the simulator's by the same
names): what the policy means in the witness's vocabulary, written from its documentation
(docs/simulator.md), not from the policy classes.

A policy plug-in brings its own rule: a small class registered here under the policy's kind
and name with `@witness_rule(kind, name)`, taking the description and the policy's
parameters. The witness asks a rule only for what its model understands:

- `gqa` (periphery.gqa_mapping): `rounds()` the query heads that read the K/V banks
  together, round by round (lists of head indices, every head exactly once);
  `split_arrays` True when the K arrays and the V arrays are claimed apart (a round frees the
  K arrays after its Q phase), False when one round holds the whole bank; `copies()` the
  physical copies of each K/V bank (written and refreshed together);
- `counters` (periphery.counters): `count_holds_bank` True when a round keeps its K/V bank
  through its output count (the next round starts when the count ends);
- `issue` (periphery.issue): `write_during_read` True when a write may start while another
  sequence's read holds the layer (the read path is then the layer's resource);
- `refresh` (numerics.retention.refresh): `periodic` True for a refresh every
  `refresh_interval_ns` (the rule of gcsim/witness/timing.py), False for none;
- `batching` (periphery.batching): `all_at_once` False when each sequence's host work is a
  batch of its own (`per_sequence`), True when the host waits for every sequence and does
  their work as one batch (`lockstep`; the rule in gcsim/witness/timing.py);
- `admission` (periphery.admission): which request of a serving run takes a free bank; a
  trace replay (what validate runs) has no requests, so the rules say nothing.

A host device's roofline (`host.device`) is the witness's host model (gcsim/witness/host.py).

A policy without a rule here has no witness: `gcsim validate` says that the timing and
energy checks are not available for it (`Unavailable`), rather than failing or passing.
"""
from __future__ import annotations

RULES: dict[str, dict[str, type]] = {"gqa": {}, "counters": {}, "issue": {}, "refresh": {}, "batching": {},
                                     "admission": {}}


class Unavailable(Exception):
    """A policy of the description brings no witness rule."""

    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind, name
        super().__init__(f"policy {kind} {name!r} brings no witness rule (gcsim/witness/rules.py)")


def witness_rule(kind: str, name: str):
    """Register the witness's rule for the policy `name` of `kind`."""
    def deco(cls):
        RULES[kind][name] = cls
        return cls
    return deco


class Rule:
    def __init__(self, hw, **params):
        self.hw, self.params = hw, params


# -- GQA mapping ------------------------------------------------------------------------------

class GQARule(Rule):
    split_arrays = False

    def rounds(self) -> list[list[int]]:
        return [list(range(self.hw.shape.heads))]

    def copies(self) -> int:
        return 1


def one_head_of_each_bank(hw) -> list[list[int]]:
    """Query head h reads K/V bank h // G (G query heads per bank); round r takes the r-th
    query head of every bank."""
    H, G = hw.shape.heads, hw.shape.heads // hw.shape.kv_heads
    return [[h for h in range(H) if h % G == r] for r in range(G)]


@witness_rule("gqa", "time_multiplexed")
class TimeMultiplexedRule(GQARule):
    """G rounds, one after another on the bank."""

    def rounds(self):
        return one_head_of_each_bank(self.hw)


@witness_rule("gqa", "pipelined")
class PipelinedRule(GQARule):
    """G rounds through the K arrays, the V arrays and the counters, each serving one round
    at a time."""
    split_arrays = True

    def rounds(self):
        return one_head_of_each_bank(self.hw)


@witness_rule("gqa", "replicated")
class ReplicatedRule(GQARule):
    """G copies of every bank, read in one round."""

    def copies(self):
        return self.hw.shape.heads // self.hw.shape.kv_heads


# -- output counters ---------------------------------------------------------------------------

@witness_rule("counters", "turns")
class TurnsRule(Rule):
    count_holds_bank = True


@witness_rule("counters", "double_buffered")
class DoubleBufferedRule(Rule):
    count_holds_bank = False


# -- issue -------------------------------------------------------------------------------------

@witness_rule("issue", "serial")
class SerialRule(Rule):
    write_during_read = False


@witness_rule("issue", "overlap_write")
class OverlapWriteRule(Rule):
    write_during_read = True


# -- refresh -----------------------------------------------------------------------------------

@witness_rule("refresh", "none")
class NoRefreshRule(Rule):
    periodic = False


@witness_rule("refresh", "periodic")
class PeriodicRule(Rule):
    periodic = True


# -- host batching and serving admission ------------------------------------------------------

@witness_rule("batching", "per_sequence")
class PerSequenceRule(Rule):
    """Each sequence's host work is a batch of its own, on the engine free first."""
    all_at_once = False


@witness_rule("batching", "lockstep")
class LockstepRule(Rule):
    """The host's work of a layer (and of a step's end) for every sequence at once, when the
    last of them reaches it."""
    all_at_once = True


@witness_rule("admission", "fcfs")
class FirstComeRule(Rule):
    """Serving only (no requests in a trace replay)."""


@witness_rule("admission", "shortest_first")
class ShortestFirstRule(Rule):
    """Serving only (no requests in a trace replay)."""


def rules_for(hw) -> dict:
    """{kind: rule} of the description's policies; raises Unavailable for one without a rule."""
    p = hw.periphery
    out = {}
    for kind, choice in (("gqa", p.gqa_mapping), ("counters", p.counters), ("issue", p.issue),
                         ("refresh", hw.numerics.retention.refresh), ("batching", p.batching),
                         ("admission", p.admission)):
        cls = RULES[kind].get(choice.impl)
        if cls is None:
            raise Unavailable(kind, choice.impl)
        out[kind] = cls(hw, **choice.params)
    return out
