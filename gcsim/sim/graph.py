"""The component graph of a built simulator, as a networkx DiGraph: a node per component
(attribute `kind`: its class, `layer` when it belongs to one) and per link of the
interconnect, an edge per connected pair (attribute `port`: its ports, comma-separated), the links along each layer's
routes to and from the host (and the `delivered` note of a route's last link with a cost). Drawn by docs/draw_architecture.py into docs/architecture.md."""
from __future__ import annotations

import networkx as nx


def component_graph(sim) -> nx.DiGraph:
    g = nx.DiGraph()
    for name, comp in sim.components.items():
        if name == "sequences":
            continue
        served = getattr(comp, "tiles", None) if isinstance(getattr(comp, "tiles", None), dict) else \
            getattr(comp, "controllers", None)
        layer = getattr(comp, "layer", None) if not isinstance(served, dict) else min(served)
        g.add_node(name, kind=type(comp).__name__, layer=layer)
    for ch in sim.network.channels.values():
        g.add_node(ch.stat_name, kind="Channel", layer=None)
    for name, comp in sim.components.items():
        for port, peer in comp.peers.items():
            label = port.split(":")[0]
            if label in ("inputs", "outputs"):   # host <-> controller: over the route's links
                continue
            if g.has_edge(name, peer.name) and label not in g.edges[name, peer.name]["port"].split(", "):
                label = ", ".join(sorted(g.edges[name, peer.name]["port"].split(", ") + [label]))
            g.add_edge(name, peer.name, port=label)
    for l, ctrl in enumerate(sim.controllers):
        for route, src, dst in ((sim.network.routes_in[l], "host", ctrl.name),
                                (sim.network.routes_out[l], ctrl.name, "host")):
            hops = [src] + [ch.stat_name for ch in route] + [dst]
            for a, b in zip(hops, hops[1:]):
                g.add_edge(a, b, port="inputs" if src == "host" else "outputs")
        links = sim.network.links_out[l]
        if links:   # the last link with a cost tells the controller when its outputs arrived
            g.add_edge(links[-1].name, ctrl.name, port="delivered")
    return g
