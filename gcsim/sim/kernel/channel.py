"""A channel carries messages between ports: latency, bandwidth (serialisation), energy
per bit. A link of the interconnect is one channel (one direction of an edge).

A message of b bits entering at time t waits for the channel (a `Resource`: transfers are
serialised in order), holds it for ceil(b / bandwidth), then arrives `latency` later
(store-and-forward at each hop of a route). 0 bandwidth = unlimited (no serialisation,
nothing held). A capacity of n messages (0 = unlimited) applies back-pressure: a message that
finds n others still in flight waits until the first of them has arrived. Statistics: busy while serialising; the wait is booked by the sender (who
holds the message it cannot pass on) with cause `link.<name>`. Energy: `link` per bit.
"""
from __future__ import annotations

from collections import deque

from ...hardware import PS_PER_NS
from .resource import Resource


class Channel:
    def __init__(self, name: str, latency_ns: float = 0.0, gbps: float = 0.0, pj_per_bit: float | None = None,
                 check: bool = False, capacity: int = 0):
        self.name = name
        self.stat_name = f"link.{name}"
        self.latency_ps = round(latency_ns * PS_PER_NS)
        self.gbps = gbps
        self.pj_per_bit = pj_per_bit
        self.resource = Resource(self.stat_name, self.stat_name, check) if gbps > 0 else None
        self.bits = 0
        self.capacity = capacity
        self.in_flight = deque()   # arrival times of the messages on their way (capacity > 0)

    def slot_free_at(self, t: int) -> int:
        """When a message ready at t may enter (capacity: the arrival freeing a place)."""
        q = self.in_flight
        while q and q[0] <= t:
            q.popleft()
        return t if len(q) < self.capacity else q[len(q) - self.capacity]

    def serialize_ps(self, bits: int) -> int:
        """Time to push `bits` through: bits / Gbit/s = ns."""
        if self.gbps <= 0:
            return 0
        return int(-(-(bits * PS_PER_NS) // self.gbps))  # ceil(bits / Gbit/s) in ps
