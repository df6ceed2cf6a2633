"""A channel carries messages between ports: latency, bandwidth (serialisation), capacity
(back-pressure), energy per bit. A link of the interconnect is a channel (one direction of
an edge: gcsim/sim/blocks/interconnect.py).

A channel with a cost (latency > 0, a finite bandwidth or a capacity) is a component,
`link.<name>`, with its own SimPy process. A message enters it when the previous hop (or
the sender) delivers it: one event. The channel serves messages in the order they enter
(FIFO by entry time; messages entering at the same time in the order they were sent): a
message of b bits entering at t starts at the latest of t, the end of the previous
message's serialisation and, with a capacity of n messages, the arrival of the message
that frees a place among the n in flight; it holds the serialiser for ceil(b / bandwidth)
and is delivered to the next hop (or the receiving port) at start + serialisation +
latency (store-and-forward at each hop of a route). Because messages are served in entry
order, the start is known when the message enters: no event for the start or the end of
the serialisation, and every booking is in time order.

An ideal channel (latency 0, unlimited bandwidth, no capacity) is a plain wire: no process
and no event; the sender delivers to the receiver directly. Its statistics stay zero.

Parameters: latency (`latency_ns`), bandwidth (`gbps`, 0 = unlimited), `capacity`
(messages in flight, 0 = unlimited), energy per bit (`pj_per_bit`, None = the
description's `energy.link_pj_per_bit`).
Ports: in `in` <- the previous hop or the sender (a `Transit`); out `out` -> the next hop
or, from the last hop, the receiving component's port.
Statistics (`link.<name>`, one unit): busy while serialising. A message that waits to
start (serialiser busy, or no place) is held by the route's sender: the wait is added to
the message's critical path as `stall:link.<name>` and listed in the transit's `waits`, and
the sender books it as its own stall when it learns of it (gcsim/sim/blocks/interconnect.py
says how for the host and the controllers). Energy: `link` per bit and hop, declared per
layer step by the network (`link:<name>` for an edge with its own energy per bit).
"""
from __future__ import annotations

from collections import deque

from ...hardware import PS_PER_NS
from .component import Component
from .path import add
from .resource import Resource


class Transit:
    """A message on its way over a route's channels with a cost: `hops` (the channels, in
    order), the message's size in bits, `deliver(channel, at_ps, transit)` called by the last
    hop to hand the message to its receiver (`dest`), and the waits [(start, end, cause)] it
    met on the way (None: none)."""
    __slots__ = ("msg", "bits", "hops", "i", "dest", "deliver", "waits")

    def __init__(self, msg, bits, hops, dest, deliver):
        self.msg, self.bits, self.hops, self.dest, self.deliver = msg, bits, hops, dest, deliver
        self.i = 0
        self.waits = None


class Channel(Component):
    PARAMS = ("interconnect.links.NAME / interconnect.edges.NAME: latency_ns, gbps, capacity, pj_per_bit",
              "energy.link_pj_per_bit")
    PORTS = {"in": "in <- previous hop or sender: a message in transit",
             "out": "out -> next hop or receiver: the message, after serialisation and latency"}
    STATS = "busy while serialising (a message's wait is its sender's stall, cause link.NAME)"
    ACTIONS = ("link",)

    def __init__(self, sim, name: str, latency_ns: float = 0.0, gbps: float = 0.0, pj_per_bit: float | None = None,
                 capacity: int = 0):
        self.link = name
        self.latency_ps = round(latency_ns * PS_PER_NS)
        self.gbps = gbps
        self.pj_per_bit = pj_per_bit
        self.capacity = capacity
        # a wire without a cost needs no process: the sender delivers straight to the receiver
        self.PROCESS = bool(self.latency_ps or gbps > 0 or capacity)
        super().__init__(sim, f"link.{name}", 1)
        self.stat_name = self.name
        self.resource = Resource(self.name, self.name, sim.check) if gbps > 0 else None
        self.in_flight = deque()   # arrival times of the messages on their way, in order (capacity > 0)

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

    # -- in: a message in transit ------------------------------------------------------------
    def on_message(self, tr: Transit) -> None:
        """The message enters now; it starts when the serialiser and a place are free (every
        earlier entry has been served: FIFO) and leaves for the next hop on arrival."""
        now = self.env._now
        msg = tr.msg
        start = self.slot_free_at(now) if self.capacity else now
        ser = self.serialize_ps(tr.bits)
        if ser and self.resource.free_at > start:
            start = self.resource.free_at
        if start > now:   # held by the sender meanwhile: on its path, and listed for it to book
            add(msg.path, "stall:" + self.name, start - now)
            if tr.waits is None:
                tr.waits = []
            tr.waits.append((now, start, self.name))
        if ser:
            self.resource.claim(start, ser, msg, msg.path)   # free at start: no wait, only the record
            self.busy(start, start + ser, step=msg.step, layer=msg.layer, action="serialize")
        arrive = start + ser + self.latency_ps
        add(msg.path, self.name, arrive - start)
        if self.capacity:
            self.in_flight.append(arrive)   # FIFO: arrivals come in order
        tr.i += 1
        if tr.i < len(tr.hops):
            self.send(arrive, tr.hops[tr.i].on_message, tr)
        else:
            tr.deliver(self, arrive, tr)
