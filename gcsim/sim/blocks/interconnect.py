"""Interconnect: the topology of the description as a networkx graph; each edge is a
channel (latency, bandwidth, capacity, energy per bit: gcsim/sim/kernel/channel.py), and a
message between the host and a layer's controller travels its route hop by hop.

Topology: without `interconnect.nodes`/`edges`, one node `chip` holds every layer and
the two links of `interconnect.links` are its edges: `host_to_controller` (host -> chip)
and `bank_to_host` (chip -> host), shared by all layers. With a topology, `nodes` place
layers (`first_layer`..`last_layer`) and `edges` (a mapping by name, so `--set
interconnect.edges.NAME.gbps=...` reaches each) connect the nodes and `host`; routes are
networkx shortest paths by latency (fewest hops between equals), computed once.

Every edge with a cost is a component `link.<name>` with its own process (kernel/channel.py):
a message enters it when the previous hop delivers it, waits in entry order (FIFO) for the
serialiser and a place, and is delivered to the next hop at start + serialisation + latency.
An ideal edge (no latency, unlimited bandwidth, no capacity: paper-gpt2's) is a plain wire
with no process and no event; a route of ideal edges only is one event, sender to receiver.

Parameters: `interconnect.links` or `interconnect.nodes` + `edges`, `energy.link_pj_per_bit`
(an edge's own `pj_per_bit` replaces it for that edge), `interconnect.*_bits` (message sizes).
Ports: the host's `inputs` reach a layer's controller over `routes_in[layer]`; a
controller's `outputs` reach the host over `routes_out[layer]`; over links with a cost the
last hop also tells the controller (`delivered`) when its outputs reached the host.
Statistics: per edge (`link.<name>`): busy while serialising, booked by the link. A message
that waits for an edge (serialisation, or a place when the edge's `capacity` of messages in
flight is reached) is held by its sender: a stall of the sender, cause `link.<name>`, on
the step's critical path. The sender books it itself: a sequence's inputs list their waits
in the LayerStep (`waits`), which the sequence's process books when the layer's outputs
arrive; a controller's outputs bring theirs back in the `delivered` note. Energy: `link`
per bit and hop, declared per layer step (`link:<name>` for an edge with its own energy
per bit).
"""
from __future__ import annotations

import networkx as nx

from ...hardware import Hardware
from ..kernel.channel import Channel, Transit


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
            ch = Channel(sim, data["name"], data["latency_ns"], data["gbps"], data["pj_per_bit"], data["capacity"])
            ch.action = "link" if ch.pj_per_bit is None else f"link:{ch.link}"
            if ch.pj_per_bit is not None:
                sim.energy.table[ch.action] = ch.pj_per_bit
                sim.energy.add_action(ch.action)
            self.channels[(a, b)] = ch
        self.routes_in, self.routes_out = [], []
        s, ic = hw.shape, hw.interconnect
        self.bits_in = s.heads * s.d_head * ic.q_bits + 2 * s.kv_heads * s.d_head * ic.kv_bits
        self.bits_out = s.heads * s.d_head * ic.out_bits
        self.bits_kv = 2 * s.kv_heads * s.d_head * ic.kv_bits   # one token's k, v (a prompt's K/V)
        for l in range(hw.shape.layers):
            node = node_of_layer(self.graph, l)
            self.routes_in.append(self._route("host", node, hw.source))
            self.routes_out.append(self._route(node, "host", hw.source))
            for route, bits in ((self.routes_in[l], self.bits_in), (self.routes_out[l], self.bits_out)):
                for ch in route:  # every layer step moves its inputs and outputs over each hop
                    sim.energy.declare(ch.stat_name, ch.action, l, const=bits)
        # the hops with a cost (the others are plain wires): empty = deliver at once
        self.links_in = [[ch for ch in r if ch.PROCESS] for r in self.routes_in]
        self.links_out = [[ch for ch in r if ch.PROCESS] for r in self.routes_out]

    def _route(self, a, b, source):
        try:
            nodes = nx.shortest_path(self.graph, a, b, weight="weight")
        except nx.NetworkXNoPath:
            from ...errors import HardwareError
            raise HardwareError(f"{source}: field 'interconnect.edges': no route from {a!r} to {b!r}") from None
        return [self.channels[(x, y)] for x, y in zip(nodes, nodes[1:])]

    # -- the senders' side: hand a message to the first link of its route ------------------------
    def send_inputs(self, sender, job, ctrl) -> None:
        """The host (`sender`) sends `job`'s inputs now over its layer's route (links with a cost)."""
        links = self.links_in[job.layer]
        bits = job.prompt * self.bits_kv if job.prompt else self.bits_in
        sender.send(sender.env._now, links[0].on_message, Transit(job, bits, links, ctrl, _inputs_arrive))

    def book_prompt(self, job) -> None:
        """A prompt's K/V (serving) crosses every hop of its layer's route: the hops' energy per
        bit, booked as the network declares the layer steps' (not a layer step itself)."""
        for ch in self.routes_in[job.layer]:
            self.sim.energy.book(ch.stat_name, ch.action, job.prompt * self.bits_kv, job.layer, job.step)

    def send_outputs(self, ctrl, job, at_ps: int) -> None:
        """The controller sends `job`'s outputs at at_ps over its layer's route (links with a cost)."""
        links = self.links_out[job.layer]
        ctrl.send(at_ps, links[0].on_message, Transit(job, self.bits_out, links, ctrl, _outputs_arrive))


def _inputs_arrive(link, at_ps, tr):
    """Last hop of an input route: the inputs reach the controller; what they waited for on the
    way is the sequence's, listed for its process to book with the layer's other waits."""
    job = tr.msg
    if tr.waits:
        job.waits = tr.waits if job.waits is None else tr.waits + job.waits
    link.send(at_ps, tr.dest.on_inputs, job)


def _outputs_arrive(link, at_ps, tr):
    """Last hop of an output route: the outputs reach the host, and the controller that sent
    them learns when (the layer is free) and what they waited for (its stall)."""
    link.sim.host.send_outputs(at_ps, tr.msg)
    link.send(at_ps, tr.dest.on_delivered, tr)
