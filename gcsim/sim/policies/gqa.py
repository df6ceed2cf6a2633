"""GQA mapping: how the G query heads sharing a K/V bank read it (`periphery.gqa_mapping`).

A policy gives the read *rounds* (which query heads read the banks together) and which
resources each stage of a round holds, so that the schedule follows from the contention on
them (gcsim/sim/blocks/tiles.py):

- `time_multiplexed`: G rounds, one after another on the bank: a round holds the K/V bank
  from its Q phase through its output count (unless the counters are double-buffered,
  then through its V phase only);
- `pipelined`: G rounds; the K arrays, the V arrays and the counters are separate resources,
  so round r+1's Q phase runs during round r's V phase;
- `replicated`: G copies of each bank: one round for all heads; writes (and refreshes) pay
  G copies.
"""
from __future__ import annotations

import numpy as np

from . import Policy, register


class GQAMapping(Policy):
    SEPARATE_ARRAYS = False   # K and V arrays are separate resources (a round frees K after Q)
    ONE_ROUND = False

    def copies(self) -> int:
        """Physical copies of each K/V bank (write and refresh energy, area)."""
        return 1

    def rounds(self) -> list:
        """Heads of each read round: None for all heads of the layer, else an index array."""
        s = self.hw.shape
        n = 1 if self.ONE_ROUND else s.group_size
        if n == 1:
            return [None]
        heads = np.arange(s.heads)
        return [heads[heads % n == r] for r in range(n)]   # one head of each bank per round


@register("gqa", "time_multiplexed")
class TimeMultiplexed(GQAMapping):
    pass


@register("gqa", "pipelined")
class Pipelined(GQAMapping):
    SEPARATE_ARRAYS = True


@register("gqa", "replicated")
class Replicated(GQAMapping):
    ONE_ROUND = True

    def copies(self) -> int:
        return self.hw.shape.group_size
