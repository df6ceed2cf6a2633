"""The source of work of a serving run (gcsim/sim/source.py's protocol, plus `requests`):
requests arriving over simulated time instead of a trace's steps. The host port serves them
(gcsim/sim/blocks/host.py: admission, prefill, the prompt's K/V into a bank, decode steps).
Timing only: a request carries lengths, not values.
"""
from __future__ import annotations

from ..errors import SimError


class RequestSource:
    def __init__(self, hw, requests):
        s = hw.shape
        self.requests = list(requests)
        self.model = {"layers": s.layers, "heads": s.heads, "kv_heads": s.kv_heads, "d_head": s.d_head}
        self.scalers = None
        self.path = "<requests>"
        # positions a sequence reaches (the energy ledger's rows) and decode steps in all (the
        # most one bank can record)
        self.steps = max(r.length for r in self.requests)
        self.record_steps = max(1, sum(r.output - 1 for r in self.requests))

    def layer_inputs(self, seq, step, layer):
        raise SimError("a serving run is timing-only (requests carry lengths, not values): run it with values=False")

    def receive(self, seq, step, layer, out) -> None:
        """Timing only: nothing to keep."""
