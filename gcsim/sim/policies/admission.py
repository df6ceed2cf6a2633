"""Admission (`periphery.admission`): which waiting request of a serving run takes a K/V bank
when one is free (gcsim/sim/blocks/host.py; the requests: gcsim/serving/requests.py).

- `fcfs` (the default): the request that arrived first;
- `shortest_first`: the one with the fewest tokens (prompt + output; ties: the first
  arrived), which cuts the mean wait at the cost of the long requests' (starvation is
  possible under a sustained load).

A policy's `pick(waiting)` returns one of the waiting requests (a list in arrival order).
"""
from __future__ import annotations

from . import Policy, register


@register("admission", "fcfs")
class FirstComeFirstServed(Policy):
    def pick(self, waiting):
        return waiting[0]


@register("admission", "shortest_first")
class ShortestFirst(Policy):
    def pick(self, waiting):
        return min(waiting, key=lambda r: (r.length, r.arrival_ps, r.index))
