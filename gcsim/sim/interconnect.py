"""Interconnect: a networkx graph of links built from the hardware description.

Nodes: host, one controller per layer, one head bank per layer. Edges carry a `Link`
with latency (ns), bandwidth (Gbit/s, 0 = unlimited) and energy per bit. A transfer
holds the link for its serialization time bits / bandwidth (a SimPy resource, so
transfers queue: the wait is a stall with cause `link.<name>`), then arrives after the
link latency.

Statistics: per link, busy (serializing) and stalled (a transfer waiting for the link)
time, bits moved (booked as the `link` action of the energy table).
"""
from __future__ import annotations

import networkx as nx
import simpy

from ..hardware import PS_PER_NS, Hardware


class Link:
    """One link; `name` is its role in the description (e.g. bank_to_host)."""

    def __init__(self, env: simpy.Environment, name: str, latency_ns: float, gbps: float):
        self.env, self.name = env, name
        self.latency_ps = round(latency_ns * PS_PER_NS)
        self.gbps = gbps
        self.resource = simpy.Resource(env, capacity=1) if gbps > 0 else None

    def serialize_ps(self, bits: int) -> int:
        """Time to push `bits` through the link: bits / Gbit/s = ns."""
        if self.gbps <= 0:
            return 0
        return int(-(-(bits * PS_PER_NS) // self.gbps))  # ceil(bits / Gbit/s) in ps


def build_graph(hw: Hardware) -> nx.DiGraph:
    """The system graph: host -> controller[l] -> bank[l] -> host. The controller-to-bank hop
    is local wiring inside a layer (its time is in the phases); the other two are links."""
    g = nx.DiGraph()
    links = hw.interconnect.links
    g.add_node("host")
    for l in range(hw.shape.layers):
        g.add_edge("host", f"controller{l}", role="host_to_controller")
        g.add_edge(f"controller{l}", f"bank{l}", role="local")
        g.add_edge(f"bank{l}", "host", role="bank_to_host")
    for _, _, data in g.edges(data=True):
        spec = links.get(data["role"])
        data["latency_ns"] = spec.latency_ns if spec else 0.0
        data["gbps"] = spec.gbps if spec else 0.0
    return g


def make_links(env: simpy.Environment, graph: nx.DiGraph) -> dict[str, Link]:
    """One shared Link per role: all layers' edges of a role share its bandwidth."""
    out = {}
    for _, _, data in graph.edges(data=True):
        if data["role"] != "local" and data["role"] not in out:
            out[data["role"]] = Link(env, data["role"], data["latency_ns"], data["gbps"])
    return out


def transfer(ctx, link: Link, bits: int, seq: int, step: int, layer: int, waiter: str):
    """Move `bits` over `link`: book its energy, hold it while serializing (a wait for it
    is a stall of `waiter`), then let the latency pass. Generator for `yield from`."""
    name = f"link.{link.name}"
    ctx.energy.book(name, "link", bits, layer, step)
    ser = link.serialize_ps(bits)
    if ser:
        req = yield from ctx.acquire(link.resource, seq, step, name, [(waiter, None, layer)])
        t0 = ctx.env.now
        yield ctx.delay(seq, step, name, ser)
        ctx.activity.busy(name, t0, ctx.env.now, step=step, layer=layer, action="serialize")
        link.resource.release(req)
    if link.latency_ps:
        yield ctx.delay(seq, step, name, link.latency_ps)
