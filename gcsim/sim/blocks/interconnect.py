"""Interconnect: the topology of the description as a networkx graph; each edge is a
channel (latency, bandwidth, energy per bit: gcsim/sim/kernel/channel.py), and a message
between the host and a layer's controller travels its route hop by hop.

Topology: without `interconnect.nodes`/`edges`, one node `chip` holds every layer and
the two links of `interconnect.links` are its edges: `host_to_controller` (host -> chip)
and `bank_to_host` (chip -> host), shared by all layers. With a topology, `nodes` place
layers (`first_layer`..`last_layer`) and `edges` (a mapping by name, so `--set
interconnect.edges.NAME.gbps=...` reaches each) connect the nodes and `host`; routes are
networkx shortest paths by latency (fewest hops between equals), computed once.

Parameters: `interconnect.links` or `interconnect.nodes` + `edges`, `energy.link_pj_per_bit`
(an edge's own `pj_per_bit` replaces it for that edge).
Statistics: per edge (`link.<name>`): busy while serialising; a message that waits for an
edge (serialisation, or a place when the edge's `capacity` of messages in flight is reached)
is a stall of its sender, cause `link.<name>`. Energy: `link` per bit and hop
(`link:<name>` for an edge with its own energy per bit).
"""
from __future__ import annotations

from bisect import insort

import networkx as nx

from ...hardware import Hardware
from ..kernel import Channel
from ..kernel.path import add


def topology(hw: Hardware) -> nx.DiGraph:
    """The description's topology: nodes (host and layer holders) and named edges."""
    ic = hw.interconnect
    g = nx.DiGraph()
    g.add_node("host", layers=None)
    if ic.nodes:
        for name, node in ic.nodes.items():
            g.add_node(name, layers=(node.first_layer, node.last_layer))
        edges = {name: (e.src, e.dst, e.latency_ns, e.gbps, e.pj_per_bit, e.capacity) for name, e in ic.edges.items()}
    else:
        g.add_node("chip", layers=(0, hw.shape.layers - 1))
        spec = {k: ic.links.get(k) for k in ic.LINKS}
        edges = {"host_to_controller": ("host", "chip"), "bank_to_host": ("chip", "host")}
        edges = {k: (a, b, spec[k].latency_ns if spec[k] else 0.0, spec[k].gbps if spec[k] else 0.0, None, 0)
                 for k, (a, b) in edges.items()}
    for name, (a, b, lat, gbps, pj, cap) in edges.items():
        g.add_edge(a, b, name=name, latency_ns=lat, gbps=gbps, pj_per_bit=pj, capacity=cap, weight=lat + 1e-6)
    return g


def node_of_layer(g: nx.DiGraph, layer: int) -> str:
    for n, data in g.nodes(data=True):
        if data["layers"] is not None and data["layers"][0] <= layer <= data["layers"][1]:
            return n
    raise KeyError(layer)


class Network:
    """The channels of the topology and the route of every layer to and from the host."""

    def __init__(self, sim):
        hw = sim.hw
        self.sim, self.graph = sim, topology(hw)
        self.channels = {}
        for a, b, data in self.graph.edges(data=True):
            ch = Channel(data["name"], data["latency_ns"], data["gbps"], data["pj_per_bit"], sim.check, data["capacity"])
            ch.action = "link" if ch.pj_per_bit is None else f"link:{ch.name}"
            if ch.pj_per_bit is not None:
                sim.energy.table[ch.action] = ch.pj_per_bit
                sim.energy.add_action(ch.action)
            sim.activity.add_component(ch.stat_name, 1)
            self.channels[(a, b)] = ch
        self.routes_in, self.routes_out = [], []
        s, ic = hw.shape, hw.interconnect
        bits_in = s.heads * s.d_head * ic.q_bits + 2 * s.kv_heads * s.d_head * ic.kv_bits
        bits_out = s.heads * s.d_head * ic.out_bits
        for l in range(hw.shape.layers):
            node = node_of_layer(self.graph, l)
            self.routes_in.append(self._route("host", node, hw.source))
            self.routes_out.append(self._route(node, "host", hw.source))
            for route, bits in ((self.routes_in[l], bits_in), (self.routes_out[l], bits_out)):
                for ch in route:  # every layer step moves its inputs and outputs over each hop
                    sim.energy.declare(ch.stat_name, ch.action, l, const=bits)

    def _route(self, a, b, source):
        try:
            nodes = nx.shortest_path(self.graph, a, b, weight="weight")
        except nx.NetworkXNoPath:
            from ...errors import HardwareError
            raise HardwareError(f"{source}: field 'interconnect.edges': no route from {a!r} to {b!r}") from None
        return [self.channels[(x, y)] for x, y in zip(nodes, nodes[1:])]

    def transfer(self, route, bits, now, job, waiter, units):
        """Move `bits` of `job` along `route` from `now`; returns the arrival time. Waits for
        a busy edge are stalls of `waiter` (its `units`) and on the job's critical path."""
        sim, t = self.sim, now
        layer, step = job.layer, job.step
        for ch in route:
            if ch.capacity:   # back-pressure: wait for a place among the messages in flight
                free = ch.slot_free_at(t)
                if free > t:
                    waiter.stall(t, free, ch.stat_name, units=units, step=step, layer=layer)
                    add(job.path, "stall:" + ch.stat_name, free - t)
                    t = free
            ser = ch.serialize_ps(bits)
            if ser:
                start, job.path = ch.resource.claim(t, ser, job, job.path)
                if start > t:
                    waiter.stall(t, start, ch.stat_name, units=units, step=step, layer=layer)
                sim.activity._book(ch.stat_name, start, start + ser, None, step, layer, "busy", "serialize")
                add(job.path, ch.stat_name, ser)
                t = start + ser
            if ch.latency_ps:
                add(job.path, ch.stat_name, ch.latency_ps)
                t += ch.latency_ps
            ch.bits += bits
            if ch.capacity:
                insort(ch.in_flight, t)   # arrival times, in order
        return t
