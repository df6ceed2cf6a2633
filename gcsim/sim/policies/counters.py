"""Output counters (`periphery.counters`): how a read round's output count uses the counters.

- `turns` (the default): the heads sharing a counter set (`periphery.counters_shared_by`)
  count one after another, one output_count phase each; a round holds its K/V bank until
  its count is over (the counters read the bit-line charge);
- `double_buffered`: the same turns, but each counter latches the charge into a second
  buffer, so the bank is free for the next round's Q and V phases while the current round
  counts (models/smollm2-double-buffered.yaml).
"""
from __future__ import annotations

from . import Policy, register


@register("counters", "turns")
class Turns(Policy):
    HOLDS_BANK = True


@register("counters", "double_buffered")
class DoubleBuffered(Policy):
    HOLDS_BANK = False
