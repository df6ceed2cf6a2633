"""An independent timing check of a simulation: the write and read times it produced
against a schedule computed separately from the description, not from the simulator.

Contention-free descriptions (one sequence, no refresh, no periphery shared by layers):
every layer step takes the same closed-form time, so the start of layer l of step t, the
end of its write (the age-0 time of token t's k, v) and the start of its read follow from
the description's phases by sums:

  layer step = host + link in + write + read rounds + adder tree + routing + link out
  read rounds (G query heads per K/V bank, n counter turns of `output_count` each):
    replicated or G = 1:                        Q + V + n x count
    time_multiplexed:                      G x (Q + V + n x count)
    time_multiplexed, double-buffered counters: (Q + V) + n x count + (G - 1) x max(Q + V, n x count)
    pipelined:                    Q + V + count + (G - 1) x max(Q, V, count)
  a link hop: latency + ceil(bits / bandwidth), summed over the route's hops.
  host (a host device): the roofline of the layer's 7 kernels at one sequence, and after the
    last layer the step's 4: the witness's host (gcsim/witness/host.py), apart from
    gcsim/system/roofline.py.

Everything else: invariants that hold whatever the contention: a read never starts before
its own write has ended, no stored value is read at a negative age, a resource never
serves two claims at once (checked as they are served with `Simulator(check=True)`:
kernel/resource.py's ServedLog), and layer
l + 1 of a step never starts before layer l has ended.
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from .. import costs
from ..hardware import PS_PER_NS
from ..witness.host import Host
from ..streamio import in_chunks
from .kernel.resource import first_violation


def _ps(ns):
    return round(ns * PS_PER_NS)


def _route_ps(hw, layer: int, bits: int, inbound: bool) -> int:
    """Latency + serialisation over the description's route (its own shortest path)."""
    ic = hw.interconnect
    if not ic.edges:
        link = ic.links.get("host_to_controller" if inbound else "bank_to_host")
        hops = [(link.latency_ns, link.gbps)] if link else []
    else:
        g = nx.DiGraph()
        for e in ic.edges.values():
            g.add_edge(e.src, e.dst, w=e.latency_ns + 1e-6, lat=e.latency_ns, gbps=e.gbps)
        node = next(n for n, v in ic.nodes.items() if v.first_layer <= layer <= v.last_layer)
        a, b = ("host", node) if inbound else (node, "host")
        path = nx.shortest_path(g, a, b, weight="w")
        hops = [(g[x][y]["lat"], g[x][y]["gbps"]) for x, y in zip(path, path[1:])]
    return sum(_ps(lat) + (-(-bits * PS_PER_NS // gbps) if gbps else 0) for lat, gbps in hops)


def contention_free(hw) -> bool:
    """Every layer step takes the same time (a shared unit switching users makes the first
    steps shorter: not here)."""
    p = hw.periphery
    return p.sequences == 1 and hw.numerics.retention.refresh == "none" and p.counters_shared_by_layers == 1 \
        and (p.switch_cycles == 0 or p.counters_shared_by == 1)


def closed_form_rows(hw, t0: int, t1: int):
    """(layer start, write end, read start) [t1 - t0, L] ps of steps t0..t1-1 of a contention-free
    description: every layer step takes the same time, so layer l of step t starts at
    t x (a step) + (the layers before l)."""
    layer, lead = _layer_ps(hw)
    offsets = np.concatenate([[0], np.cumsum(layer)[:-1]])
    step = layer.sum() + _host_ps(hw)[1]
    starts = np.arange(t0, t1, dtype=np.int64)[:, None] * step + offsets[None, :]
    write_end = starts + lead
    return starts, write_end, write_end.copy()


def _layer_ps(hw):
    """(a layer step, its part before the write ends) [L] ps of a contention-free description."""
    s, t, p, ic = hw.shape, hw.timing, hw.periphery, hw.interconnect
    ph = {k: _ps(v) for k, v in t.phases_ns.items()}
    ph["adder_tree"] = costs.adder_tree_ps(hw)  # the tree's depth follows the sub-tiles (gcsim/costs.py)
    Q, V, C = ph["q_phase"], ph["v_phase"], ph["output_count"]
    G, H = s.group_size, s.heads
    if p.gqa_mapping == "replicated" or G == 1:
        rounds = Q + V + _turns(np.arange(H), p.counters_shared_by) * C
    else:  # round r: one query head of each bank, heads r, r + G, r + 2G, ...
        n = [_turns(np.arange(r, H, G), p.counters_shared_by) for r in range(G)]
        if p.gqa_mapping == "pipelined":
            rounds = Q + V + C + (G - 1) * max(Q, V, C)
        elif p.counters == "double_buffered":
            rounds = (Q + V) + max(n) * C + (G - 1) * max(Q + V, max(n) * C)
        else:
            rounds = sum(Q + V + k * C for k in n)
    host = _host_ps(hw)[0]
    bits_in = s.heads * s.d_head * ic.q_bits + 2 * s.kv_heads * s.d_head * ic.kv_bits
    bits_out = s.heads * s.d_head * ic.out_bits
    lin = np.array([_route_ps(hw, l, bits_in, True) for l in range(s.layers)], np.int64)
    lout = np.array([_route_ps(hw, l, bits_out, False) for l in range(s.layers)], np.int64)
    layer = host + lin + ph["write"] + rounds + ph["adder_tree"] + ph["routing"] + lout   # [L]
    return layer, host + lin + ph["write"]


def _host_ps(hw) -> tuple[int, int]:
    """(before each layer, after the last layer) ps of the host's work for one sequence: the
    witness's host (gcsim/witness/host.py), written apart from gcsim/system/."""
    host = Host(hw)
    return host.before_layer(1)[0], host.after_step(1)[0]


def _turns(heads, shared_by: int) -> int:
    """Turns of a round of `heads` on counter sets of `shared_by` consecutive heads: the most
    heads of the round on one set."""
    return int(np.bincount(np.asarray(heads) // shared_by).max())


def check(res, ages_ps=None, closed_form: bool = True) -> dict:
    """The simulated times of `res` (a SimResult, run with check=True for the resource
    invariant) against the independent schedule. ages_ps: [T, L, M] ages at each read (the
    validation's recorder), for the no-negative-age invariant. closed_form=False: the
    invariants only (`gcsim validate` compares the times with the witness, gcsim/witness/)."""
    hw = res.hw
    closed = closed_form and contention_free(hw)
    out = {"mode": "closed form" if closed else "invariants", "violations": []}
    bad = out["violations"]
    if closed:   # row chunks of the records (on disk for long runs: gcsim.streamio)
        names = ("layer start", "write end", "read start")
        worst = {name: (0, "") for name in names}   # the largest |diff| and its first step, layer
        chunks = zip(in_chunks(res.layer_start_ps[0]), in_chunks(res.write_ps[0]), in_chunks(res.read_ps[0]))
        for (t0, start), (_, w), (_, r) in chunks:
            for name, sim, ref in zip(names, (start, w, r), closed_form_rows(hw, t0, t0 + len(start))):
                diff = np.abs(sim - ref)
                if diff.max() > worst[name][0]:
                    t, l = np.unravel_index(int(diff.argmax()), diff.shape)
                    worst[name] = (int(diff.max()), f"{name} of step {t0 + t} layer {l}: simulated {int(sim[t, l])} "
                                                    f"ps, schedule {int(ref[t, l])} ps")
        for name in names:
            out[f"{name} max |diff| ps"] = worst[name][0]
            if worst[name][0]:
                bad.append(worst[name][1])
    for seq in range(len(res.write_ps)):
        early = order = None
        chunks = zip(in_chunks(res.write_ps[seq]), in_chunks(res.read_ps[seq]), in_chunks(res.layer_start_ps[seq]),
                     in_chunks(res.layer_end_ps[seq]))
        for (t0, w), (_, r), (_, start), (_, end) in chunks:
            if early is None and (r < w).any():
                t, l = np.argwhere(r < w)[0]
                early = f"sequence {seq} step {t0 + t} layer {l}: read at {int(r[t, l])} ps before its write ended at " \
                        f"{int(w[t, l])} ps"
            if order is None and (start[:, 1:] < end[:, :-1]).any():
                order = f"sequence {seq} step {t0 + np.argwhere(start[:, 1:] < end[:, :-1])[0][0]}: a layer started " \
                        f"before the previous one ended"
        bad += [x for x in (early, order) if x is not None]
    if ages_ps is not None and (np.asarray(ages_ps) < 0).any():
        t, l, m = np.argwhere(np.asarray(ages_ps) < 0)[0]
        bad.append(f"step {t} layer {l} slot {m}: read at a negative age {int(ages_ps[t, l, m])} ps")
    for name, served in (res.resources or {}).items():
        found = first_violation(served)
        if found:
            (a0, a1), (b0, b1), what = found
            bad.append(f"{name} serves [{a0}, {a1}) and [{b0}, {b1}) ps {what}")
    out["pass"] = not bad
    return out
