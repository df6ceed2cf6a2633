"""The simulator as components with processes of their own (issue 8): one SimPy process per
component instance, one SimPy event per message hop, and every booking made by the
component it belongs to, from the messages it received."""
import numpy as np
import pytest
import simpy
from inputs import random_trace

from gcsim import load_hardware
from gcsim.sim import ArrayTrace, Simulator
from gcsim.sim.kernel import Timeline
from gcsim.sim.kernel.stats import Activity

NS = 1000
PER_LAYER = ("controller", "writer", "tiles", "integrators", "ctp", "counters", "accumulator")


def zeros(hw, T):
    s = hw.shape
    return ArrayTrace(np.zeros((T, s.layers, s.heads, s.d_head), np.float32),
                      np.zeros((T, s.layers, s.kv_heads, s.d_head), np.float32),
                      np.zeros((T, s.layers, s.kv_heads, s.d_head), np.float32))


def owners(sim):
    return {id(proc): comp.name for comp, proc in sim.processes}


def test_paper_gpt2_is_one_process_per_component_instance():
    hw = load_hardware("paper-gpt2")
    T = 3
    sim = Simulator(hw, zeros(hw, T), values=False)
    assert all(isinstance(p, simpy.Process) for _, p in sim.processes)
    names = sorted(c.name for c, _ in sim.processes)
    # 12 layers x 7 components, and the host's decode loop of its one sequence
    expected = sorted([f"L{l:02d}.{c}" for l in range(12) for c in PER_LAYER] + ["host"])
    assert names == expected and len(names) == 12 * 7 + 1
    res = sim.run()
    # the event budget of a layer step of multi-head attention (gcsim/sim/messages.py): inputs,
    # write request (carrying the read: serial issue policy), store (and the read), K currents,
    # S, phi (to the tiles), V currents, A, count done, summed, outputs = 11 hops, one event each; beyond them only the 85 processes' starts and
    # the host process's end (and the AllOf waiting for it)
    events = next(sim.env._eid)
    assert 11 * 12 * T + 85 <= events <= 11 * 12 * T + 85 + 3
    assert res.elapsed_ps == T * 12 * 65 * NS


def test_shared_counters_and_several_sequences_and_refresh_processes():
    hw = load_hardware("stall-refresh").derive(periphery={"counters_shared_by_layers": 3, "sequences": 2})
    assert hw.numerics.retention.refresh == "periodic"
    sim = Simulator(hw, zeros(hw, 2), values=False)
    names = [c.name for c, _ in sim.processes]
    # a counter bank and its adder tree shared by 3 layers is one instance with one process
    assert sorted(n for n in names if n.endswith(".counters")) == [f"P{g:02d}.counters" for g in range(4)]
    assert sorted(n for n in names if n.endswith(".accumulator")) == [f"P{g:02d}.accumulator" for g in range(4)]
    assert names.count("host") == 2                                       # one decode loop per sequence
    assert sum(n.endswith(".refresh") for n in names) == 12               # one per layer
    assert len(names) == 12 * 5 + 4 * 2 + 2 + 12
    sim.run()


# links whose messages wait: the outputs of two sequences on one link (their controllers hold
# them), and inputs waiting for a place on a link of capacity 1 (their sequences hold them)
CONTENDED = {"periphery": {"sequences": 2}, "interconnect": {"links": {
    "host_to_controller": {"latency_ns": 5.0}, "bank_to_host": {"latency_ns": 10.0, "gbps": 512.0}}}}
# refreshes asked of the tiles and the writer, a periphery bank shared by 3 layers switching
SHARED_REFRESH = {"periphery": {"sequences": 2, "counters_shared_by_layers": 3, "switch_cycles": 2}}
PIPELINED_SWITCH = {"periphery": {"gqa_mapping": "pipelined", "switch_cycles": 1, "sequences": 2}}
CAPACITY = {"periphery": {"sequences": 2}, "interconnect": {
    "nodes": {"chip0": {"first_layer": 0, "last_layer": 5}, "chip1": {"first_layer": 6, "last_layer": 11}},
    "edges": {"host_to_chip0": {"latency_ns": 100.0, "capacity": 1}}}}


@pytest.mark.parametrize("model, changes", [("paper-gpt2", None), ("smollm2", None), ("stall-shared-counters", None),
                                            ("stall-link", None), ("paper-gpt2", CONTENDED),
                                            ("gpt2-two-chips", CAPACITY), ("stall-refresh", SHARED_REFRESH),
                                            ("smollm2", PIPELINED_SWITCH)])
def test_no_component_books_another_components_time(model, changes, monkeypatch):
    """Every busy or stalled interval is booked while the process of the component it belongs
    to is running (the `sequences` units are the host's per-sequence processes); a link with a
    cost books its own serialisation in its own process, and the wait of a message for it is
    booked by the message's sender (CONTENDED, CAPACITY: controllers' outputs and sequences'
    inputs that wait for a link)."""
    hw = load_hardware(model) if changes is None else load_hardware(model).derive(**changes)
    sim = Simulator(hw, random_trace(hw, 3), values=False, timeline=Timeline())   # timeline: every booking via _book
    who = owners(sim)
    seen = []
    book = Activity._book

    def spy(self, name, *args):
        proc = sim.env.active_process
        seen.append((name, who.get(id(proc)) if proc is not None else None))
        return book(self, name, *args)

    monkeypatch.setattr(Activity, "_book", spy)
    res = sim.run()
    assert len(seen) > 3 * hw.shape.layers * 8
    if changes in (CONTENDED, CAPACITY):   # messages did wait for links, and their holders booked it
        holders = "sequences" if changes is CAPACITY else "L01.controller"
        assert any(c.startswith("link.") for c in res.activity[holders]["stall_causes_ps"]), holders
    if model == "stall-link":   # the link's serialisation, booked by the link's own process
        assert ("link.bank_to_host", "link.bank_to_host") in seen
    for name, owner in seen:
        if name == "sequences":
            assert owner == "host", name
        else:
            assert owner == name, (name, owner)


def test_integrators_book_q_and_v_from_their_own_messages():
    # SmolLM2 (9 heads, 3 K/V banks, G = 3 time-multiplexed rounds of 3 heads): a round's Q and
    # V phases (15 + 15 ns) are the integrators' busy time, 9 heads x 30 ns per layer step; the
    # rounds wait for the bank: round r from the read request for r x (15 + 15 + 15) ns.
    hw = load_hardware("smollm2")
    ph = hw.timing.phases_ns
    q, v, c = ph["q_phase"], ph["v_phase"], ph["output_count"]
    assert (q, v, c) == (15.0, 15.0, 15.0)
    T = 2
    tl = Timeline(layers={0})
    res = Simulator(hw, zeros(hw, T), values=False, timeline=tl).run()
    integ = res.activity["L00.integrators"]
    assert integ["busy_ps"] == T * 9 * (15 + 15) * NS
    assert integ["stall_causes_ps"] == {"K/V bank shared (GQA)": T * 3 * (0 + 45 + 90) * NS}
    # per round, the integrators' own bookings: K integration [q0, q0 + 15), V [q0 + 15, q0 + 30)
    rows = [e for e in tl.events if e[0] == "L00.integrators" and e[4] == "busy" and e[6] == 0]
    starts = sorted({(e[5], e[2] - rows[0][2]) for e in rows})
    assert starts == [("integrate K", 0), ("integrate K", 45 * NS), ("integrate K", 90 * NS),
                      ("integrate V", 15 * NS), ("integrate V", 60 * NS), ("integrate V", 105 * NS)]
    # the charge-to-pulse drives the V rows in the same V phases, the controller's PWM drivers fire
    # in the Q phases: each from the message it received (S, Grant)
    assert res.activity["L00.ctp"]["busy_ps"] == T * 9 * 15 * NS
    pwm = [e for e in tl.events if e[0] == "L00.controller" and e[5] == "PWM drive" and e[6] == 0]
    assert sorted(e[2] - rows[0][2] for e in pwm) == [0, 45 * NS, 90 * NS]


def test_declared_ports_are_the_live_graphs():
    """Each component's PORTS (what its docstring and docs/architecture.md list) names every
    port it is connected by in a live simulator, with the right direction."""
    from gcsim.sim.graph import component_graph
    hw = load_hardware("stall-refresh").derive(shape={"layers": 2}, periphery={"gqa_mapping": "time_multiplexed"})
    sim = Simulator(hw, zeros(hw, 1), values=False)
    for a, port, b in ((c.name, p.split(":")[0], peer.name) for c in sim.components.values() for p, peer in c.peers.items()):
        declared_out, declared_in = sim.components[a].PORTS[port], sim.components[b].PORTS[port]
        assert declared_out.startswith("out"), (a, port)
        assert declared_in.startswith("in"), (b, port)
    g = component_graph(sim)
    # the tiles grant the K arrays to the integrators; the charge-to-pulse tells the tiles its V window
    assert g.edges["L00.tiles", "L00.integrators"]["port"] == "k_currents, v_currents"
    assert g.edges["L00.ctp", "L00.tiles"]["port"] == "phi"
    assert not g.has_edge("L00.tiles", "L00.controller")
    # a refresh asks the tiles, which ask the writer for its DACs
    assert g.edges["L00.refresh", "L00.tiles"]["port"] == "refresh"
    assert g.edges["L00.tiles", "L00.writer"]["port"] == "reserve, rewrite"
    assert g.edges["L00.writer", "L00.tiles"]["port"] == "reserved, store"
