"""Draw the component graph of a live simulator (gcsim/sim/graph.py) into
docs/architecture.png: GPT-2 on two chips (models/gpt2-two-chips.yaml) cut to two layers,
one on each chip, so that every kind of component and link shows once.

Run: python docs/draw_architecture.py  (needs matplotlib: pip install -e '.[plot]')
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

from gcsim import load_hardware  # noqa: E402
from gcsim.sim import ArrayTrace, Simulator  # noqa: E402
from gcsim.sim.graph import component_graph  # noqa: E402

COLUMN = {"HostPort": 0, "Channel": 1, "LayerController": 2, "TokenWriter": 3, "GainCellTiles": 4,
          "ChargeIntegrators": 5, "ChargeToPulse": 6, "OutputCounters": 5, "DigitalAccumulator": 3}
ROW = {"TokenWriter": 0.6, "GainCellTiles": 0.0, "ChargeIntegrators": 0.6, "ChargeToPulse": 0.0,
       "OutputCounters": -0.6, "DigitalAccumulator": -0.6, "LayerController": 0.0}


def main(out=ROOT / "docs" / "architecture.png"):
    hw = load_hardware("gpt2-two-chips").derive(
        shape={"layers": 2}, interconnect={"nodes": {"chip0": {"first_layer": 0, "last_layer": 0},
                                                     "chip1": {"first_layer": 1, "last_layer": 1}}})
    s = hw.shape
    z = np.zeros((1, s.layers, s.heads, s.d_head), np.float16)
    g = component_graph(Simulator(hw, ArrayTrace(z, z, z), values=False))
    pos, links = {}, [n for n, k in g.nodes(data="kind") if k == "Channel"]
    for n, data in g.nodes(data=True):
        kind, layer = data["kind"], data["layer"]
        if kind == "HostPort":
            pos[n] = (0, -1.5)
        elif kind == "Channel":
            pos[n] = (1.2, -3.6 + 1.5 * links.index(n))
        else:
            pos[n] = (COLUMN[kind] * 1.3 + 0.5, ROW[kind] - 3.0 * layer)
    fig, ax = plt.subplots(figsize=(13, 7.5))
    colors = {"HostPort": "#9ecae1", "Channel": "#fdae6b"}
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=2600, node_shape="s",
                           node_color=[colors.get(k, "#c7e9c0") for _, k in g.nodes(data="kind")])
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=7,
                            labels={n: n.replace(".", "\n", 1) for n in g.nodes})
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=12, node_size=2600, node_shape="s",
                           connectionstyle="arc3,rad=0.12", edge_color="#555555")
    nx.draw_networkx_edge_labels(g, pos, ax=ax, font_size=6, connectionstyle="arc3,rad=0.12",
                                 edge_labels={(a, b): d["port"] for a, b, d in g.edges(data=True)})
    ax.set_title("gcsim components and ports, drawn from the live graph of models/gpt2-two-chips.yaml "
                 "(2 layers: L00 on chip0, L01 on chip1)", fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out} ({g.number_of_nodes()} nodes, {g.number_of_edges()} edges)")


if __name__ == "__main__":
    main()
