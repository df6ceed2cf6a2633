"""Links of the interconnect as components (issue 8): each edge with a cost has its own
process, serves messages in the order they reach it (FIFO by entry time), books its own
serialisation, and delivers hop by hop; the sender books the wait of the message it holds.
An ideal edge is a plain wire: no process, no event. Times in ps (1 ns = 1000 ps); a layer
step of paper-gpt2 is 65 ns from the inputs' arrival to the outputs' departure."""
import numpy as np

from gcsim import load_hardware
from gcsim.sim import ArrayTrace, Simulator
from gcsim.sim.kernel import Timeline

NS = 1000
LAYER = 65 * NS


def zeros(hw, T):
    s = hw.shape
    kv = np.zeros((T, s.layers, s.kv_heads, s.d_head), np.float16)
    return ArrayTrace(np.zeros((T, s.layers, s.heads, s.d_head), np.float16), kv, kv)


def categories(res, seq):
    return {c: int(v) for c, v in zip(res.path.categories, res.path.per_step[seq][0]) if v}


def test_two_messages_contend_on_a_link_with_latency_and_bandwidth():
    # two layers, two sequences; inputs over a 5 ns link, outputs over a 10 ns, 512 Gbit/s link
    # (12 x 64 x 16 = 12288 bits: 24 ns serialisation, arrival 34 ns after the start). By hand:
    #   seq 0: inputs at 5, L0 [5, 70), outputs [70, 94) + 10 -> 104; L1 inputs 109, L1 [109, 174)
    #   seq 1: inputs at 5, waits for L0 (held until seq 0's outputs reach the host) until 104,
    #          L0 [104, 169), outputs enter the link at 169: [169, 193) + 10 -> 203
    #   seq 0's L1 outputs enter at 174, after seq 1's: the link is busy until 193 (a 19 ns wait,
    #          held by L01.controller), [193, 217) + 10 -> 227 = seq 0's step end
    #   seq 1: L1 inputs at 208, waits for L1 (seq 0's outputs reach the host at 227): 19 ns,
    #          L1 [227, 292), outputs [292, 316) + 10 -> 326 = seq 1's step end
    hw = load_hardware("paper-gpt2").derive(
        shape={"layers": 2}, periphery={"sequences": 2},
        interconnect={"links": {"host_to_controller": {"latency_ns": 5.0},
                                "bank_to_host": {"latency_ns": 10.0, "gbps": 512.0}}})
    tl = Timeline()
    res = Simulator(hw, zeros(hw, 1), values=False, timeline=tl).run()
    assert (res.step_end_ps[0][0], res.step_end_ps[1][0]) == (227 * NS, 326 * NS)
    # the link's own bookings, in the order the messages entered it (seq 1's L0 before seq 0's L1)
    busy = [(e[2], e[3], e[7]) for e in tl.events if e[0] == "link.bank_to_host"]
    assert busy == [(70 * NS, 94 * NS, 0), (169 * NS, 193 * NS, 0), (193 * NS, 217 * NS, 1), (292 * NS, 316 * NS, 1)]
    acts = res.activity
    assert acts["link.bank_to_host"]["busy_ps"] == 4 * 24 * NS and acts["link.bank_to_host"]["stalled_ps"] == 0
    # the holder of the waiting outputs books the wait: L01.controller, all 12 head units
    assert acts["L01.controller"]["stall_causes_ps"] == {"link.bank_to_host": 12 * 19 * NS}
    assert acts["L00.controller"]["stall_causes_ps"] == {}
    assert acts["sequences"]["stall_causes_ps"] == {"layer busy (other sequence)": (99 + 19) * NS}
    # the critical paths add up to the step latencies, with the wait where it happened
    assert categories(res, 0) == {"link.host_to_controller": 2 * 5 * NS, "link.bank_to_host": 2 * 34 * NS,
                                  "stall:link.bank_to_host": 19 * NS, **_layer_phases(res, 0)}
    assert categories(res, 1) == {"link.host_to_controller": 2 * 5 * NS, "link.bank_to_host": 2 * 34 * NS,
                                  "stall:layer busy (other sequence)": (99 + 19) * NS, **_layer_phases(res, 1)}
    assert sum(categories(res, 0).values()) == 227 * NS and sum(categories(res, 1).values()) == 326 * NS


def _layer_phases(res, seq):
    """The phases of the two layer steps (2 x 65 ns), checked to add up to 130 ns."""
    phases = {c: v for c, v in categories(res, seq).items() if not c.startswith(("link.", "stall:"))}
    assert sum(phases.values()) == 2 * LAYER
    return phases


def test_a_link_serves_messages_in_the_order_they_reach_it():
    # layer 0 on node A, layer 1 on B; edge ab (512 Gbit/s) carries layer 0's outputs
    # (A -> B -> host) and layer 1's inputs (host -> A -> B, behind a 100 ns edge). By hand:
    #   seq 0: inputs at 100, L0 [100, 165), outputs over ab [165, 189) -> host 189; its L1 inputs
    #          leave the host at 189 and reach ab at 289: [289, 304) (15 ns), L1 [304, 369) -> 369
    #   seq 1: inputs at 100, waits for L0 until 189, L0 [189, 254); its outputs reach ab at 254,
    #          before seq 0's inputs (289), and go first: [254, 278) -> host 278; L1 inputs reach
    #          ab at 378 (free): [378, 393), L1 [393, 458) -> 458
    # Before links had processes the sender claimed every hop of the route when it sent: seq 0's
    # claim of ab for [289, 304), made at 189, came before seq 1's (made at 254), which then
    # waited 50 ns for it (ends 369 and 508 ns).
    hw = load_hardware("paper-gpt2").derive(
        shape={"layers": 2}, periphery={"sequences": 2},
        interconnect={"nodes": {"A": {"first_layer": 0, "last_layer": 0}, "B": {"first_layer": 1, "last_layer": 1}},
                      "edges": {"in": {"src": "host", "dst": "A", "latency_ns": 100.0},
                                "ab": {"src": "A", "dst": "B", "gbps": 512.0},
                                "out": {"src": "B", "dst": "host"}}})
    tl = Timeline()
    res = Simulator(hw, zeros(hw, 1), values=False, timeline=tl).run()
    assert (res.step_end_ps[0][0], res.step_end_ps[1][0]) == (369 * NS, 458 * NS)
    busy = [(e[2], e[3]) for e in tl.events if e[0] == "link.ab"]
    assert busy == [(165 * NS, 189 * NS), (254 * NS, 278 * NS), (289 * NS, 304 * NS), (378 * NS, 393 * NS)]
    assert res.activity["link.ab"]["busy_ps"] == 2 * (24 + 15) * NS
    assert all("link.ab" not in a["stall_causes_ps"] for a in res.activity.values())   # nobody waited for it
    assert res.activity["sequences"]["stall_causes_ps"] == {"layer busy (other sequence)": 89 * NS}
    assert categories(res, 1)["link.ab"] == (24 + 15) * NS and "stall:link.ab" not in categories(res, 1)
    np.testing.assert_array_equal(res.path.step_totals(1), [458 * NS])


def test_links_with_a_cost_are_processes_and_ideal_links_cost_no_event():
    # gpt2-two-chips: the host links are ideal (plain wires), the chip-to-chip edges have a cost
    # (10 ns, 512 Gbit/s): two link processes. A layer step on chip0 is 11 events, as on one
    # chip; on chip1 its inputs enter chip0_to_chip1 (+1), its outputs enter chip1_to_chip0
    # (+1) and that link tells the controller when they reached the host (+1): 14.
    hw = load_hardware("gpt2-two-chips")
    T = 3
    sim = Simulator(hw, zeros(hw, T), values=False)
    links = sorted(c.name for c, _ in sim.processes if c.name.startswith("link."))
    assert links == ["link.chip0_to_chip1", "link.chip1_to_chip0"] and len(sim.processes) == 85 + 2
    sim.run()
    events = next(sim.env._eid)
    per_token = 6 * 11 + 6 * 14
    assert per_token * T + 87 <= events <= per_token * T + 87 + 3
    # paper-gpt2's links are ideal: no link process (the 11-event budget: test_sim_processes.py)
    paper = Simulator(load_hardware("paper-gpt2"), zeros(hw, 1), values=False)
    assert not [c for c, _ in paper.processes if c.name.startswith("link.")]


def test_a_capacity_wait_on_the_inputs_is_the_sequences_stall():
    # edge `in` (100 ns) holds one message at a time: sequence 1's inputs wait 100 ns for a place
    # (test_whatifs.py states the timing); the wait is listed in its LayerStep and booked by its
    # process, with the layer and step it belongs to
    hw = load_hardware("paper-gpt2").derive(
        shape={"layers": 1}, periphery={"sequences": 2},
        interconnect={"nodes": {"chip": {"first_layer": 0, "last_layer": 0}},
                      "edges": {"in": {"src": "host", "dst": "chip", "latency_ns": 100.0, "capacity": 1},
                                "out": {"src": "chip", "dst": "host"}}})
    tl = Timeline()
    res = Simulator(hw, zeros(hw, 1), values=False, timeline=tl).run()
    stalls = [(e[1], e[2], e[3], e[5]) for e in tl.events if e[0] == "sequences"]
    assert stalls == [(1, 0, 100 * NS, "link.in")]
    assert categories(res, 1)["stall:link.in"] == 100 * NS
    assert res.activity["link.in"]["busy_ps"] == 0     # latency only: nothing serialised
