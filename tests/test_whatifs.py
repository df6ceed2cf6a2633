"""Three hardware ideas expressed by description only (models/*.yaml, no code), each against
its hand calculation, plus the policy and topology forms of a description.
Times in ps (1 ns = 1000 ps)."""
import runpy
from pathlib import Path

import numpy as np
import pytest

from inputs import register_two_at_a_time

from gcsim import HardwareError, load_hardware
from gcsim.sim import ArrayTrace, Simulator

NS = 1000
ROOT = Path(__file__).resolve().parent.parent


def zeros(hw, T):
    s = hw.shape
    q = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
    kv = np.zeros((T, s.layers, s.kv_heads, s.d_head), np.float16)
    return ArrayTrace(q, kv, kv)


def run(hw, T):
    return Simulator(hw, zeros(hw, T), values=False).run()


def test_double_buffered_counters_smollm2():
    single, double = load_hardware("smollm2"), load_hardware("smollm2-double-buffered")
    assert double.periphery.counters == "double_buffered" and single.periphery.counters == "turns"
    a, b = run(single, 3), run(double, 3)
    # single counters: a round holds its bank through the count: 5 + 3 x (15 + 15 + 15) + 10 + 5
    assert set(np.ravel(a.layer_end_ps[0] - a.layer_start_ps[0])) == {155 * NS}
    # double-buffered: the next round's Q and V overlap the count: 5 + 3 x 30 + 15 + 10 + 5
    assert set(np.ravel(b.layer_end_ps[0] - b.layer_start_ps[0])) == {5 * NS + 3 * 30 * NS + 15 * NS + 10 * NS + 5 * NS}
    assert set(b.step_latency_ps()) == {30 * 125 * NS}
    # on the critical path: the Q and V phases of all 3 rounds, the count of the last only
    cp = b.path.mean_breakdown(3)
    assert (cp["q_phase"], cp["v_phase"], cp["output_count"]) == (30 * 45 * NS, 30 * 45 * NS, 30 * 15 * NS)
    # round r (3 heads) waits r x 30 ns for the bank; counting never waits (one round at a time)
    assert b.activity["L00.integrators"]["stall_causes_ps"] == {"K/V bank shared (GQA)": 3 * 3 * (30 + 60) * NS}
    assert b.ledger.total_pj() == pytest.approx(a.ledger.total_pj())   # same actions, less time


def test_overlap_write_across_sequences():
    hw = load_hardware("overlap-write")
    assert hw.periphery.sequences == 16 and hw.periphery.issue == "overlap_write"
    T = 5
    serial, overlap = run(hw.derive(periphery={"issue": "serial"}), T), run(hw, T)
    for res, gap in ((serial, 65 * NS), (overlap, 60 * NS)):
        ends = np.sort(np.concatenate(res.step_end_ps))
        # steady state: one token per the bottleneck stage, the whole layer step (serial) or the
        # read path Q 15 + V 15 + count 15 + adder 10 + routing 5 = 60 ns (writes overlapped)
        assert set(np.diff(ends[16:])) == {gap}
        for seq in range(16):   # the critical path adds up for every sequence
            np.testing.assert_array_equal(res.path.step_totals(seq), res.step_latency_ps(seq))
    # a sequence's own write still comes before its read, in every layer
    for seq in range(16):
        assert (overlap.write_ps[seq] <= overlap.read_ps[seq]).all()
    # writes happen during another sequence's read: the tiles of two sequences are busy at once
    assert overlap.activity["L00.tiles"]["units"] == 16 * 12


def test_two_chips_joined_by_one_link():
    hw = load_hardware("gpt2-two-chips")
    T = 3
    res = run(hw, T)
    ser_in, ser_out = 7680 * NS // 512, 12288 * NS // 512      # 15 ns, 24 ns at 512 Gbit/s
    assert (ser_in, ser_out) == (15 * NS, 24 * NS)
    chip1 = 65 * NS + (ser_in + 10 * NS) + (ser_out + 10 * NS)  # 124 ns
    np.testing.assert_array_equal(res.layer_end_ps[0][0] - res.layer_start_ps[0][0], [65 * NS] * 6 + [chip1] * 6)
    assert set(res.step_latency_ps()) == {6 * 65 * NS + 6 * chip1} == {1_134_000}
    acts = res.activity
    assert acts["link.chip0_to_chip1"]["busy_ps"] == T * 6 * ser_in
    assert acts["link.chip1_to_chip0"]["busy_ps"] == T * 6 * ser_out
    # link energy per hop: chip1's layers cross two hops each way, chip0's one
    by = res.ledger.by_action()
    assert by["link.chip0_to_chip1.link"]["count"] == T * 6 * 7680
    assert by["link.host_to_chip0.link"]["count"] == T * 12 * 7680


def test_edges_are_reached_by_set_and_bad_topologies_are_rejected():
    hw = load_hardware("gpt2-two-chips")
    slow = hw.derive(interconnect={"edges": {"chip0_to_chip1": {"latency_ns": 50.0}}})
    assert set(run(slow, 2).step_latency_ps()) == {1_134_000 + 6 * 40 * NS}
    with pytest.raises(HardwareError, match="edges.x.dst': unknown node 'chip9'"):
        hw.derive(interconnect={"edges": {"x": {"src": "chip0", "dst": "chip9"}}})
    with pytest.raises(HardwareError, match="every layer 0..11 must be on exactly one node"):
        hw.derive(interconnect={"nodes": {"chip1": {"first_layer": 7, "last_layer": 11}}})
    with pytest.raises(HardwareError, match="no route from 'host' to 'chip1'"):
        Simulator(hw.derive(interconnect={"edges": {"chip0_to_chip1": {"dst": "chip0"}}}), zeros(hw, 1))
    with pytest.raises(HardwareError, match="a topology .* replaces the links"):
        hw.derive(interconnect={"links": {"bank_to_host": {"gbps": 64.0}}})


def test_policies_by_name_or_mapping():
    base = load_hardware("smollm2")
    by_map = base.derive(periphery={"gqa_mapping": {"impl": "pipelined"}})
    assert by_map.periphery.gqa_mapping == "pipelined" and by_map.periphery.gqa_mapping.params == {}
    assert set(run(by_map, 2).step_latency_ps()) == {30 * 95 * NS}   # 5 + (3 + 2) x 15 + 10 + 5
    with pytest.raises(HardwareError, match=r"periphery.gqa_mapping': expected one of \['pipelined', 'replicated', "
                                            r"'time_multiplexed'\], found 'nosuch'"):
        base.derive(periphery={"gqa_mapping": "nosuch"})
    with pytest.raises(HardwareError, match="policy 'pipelined' has no parameter 'depth'"):
        base.derive(periphery={"gqa_mapping": {"impl": "pipelined", "depth": 2}})
    with pytest.raises(HardwareError, match="expected a policy name or a mapping"):
        base.derive(periphery={"issue": 3})


@pytest.mark.parametrize("script", ["whatif_double_buffered.py", "whatif_overlap_write.py", "whatif_two_chips.py"])
def test_whatif_examples_print_their_hand_calculation(script, capsys):
    runpy.run_path(str(ROOT / "examples" / script), run_name="__main__")
    out = capsys.readouterr().out
    for line in out.splitlines():
        if "(hand: " in line:
            got = line.split("(hand: ")[0]
            hand = line.split("(hand: ")[1].split(")")[0]
            assert hand.split(";")[0].split(" ns")[0].replace(", ", " ").split()[0] in got, line


def test_a_new_policy_is_a_small_class(monkeypatch):
    # docs/architecture.md's example: two of the three query heads of a bank read it together
    register_two_at_a_time(monkeypatch)

    hw = load_hardware("smollm2").derive(periphery={"gqa_mapping": {"impl": "two_at_a_time", "width": 2}})
    # rounds {heads 0,1 of each bank} then {head 2}: 5 + 2 x (15 + 15 + 15) + 10 + 5
    assert set(run(hw, 2).step_latency_ps()) == {30 * 110 * NS}
    with pytest.raises(HardwareError, match="parameter 'width': value 0 is out of range"):
        hw.derive(periphery={"gqa_mapping": {"impl": "two_at_a_time", "width": 0}})


def test_component_graph_of_a_live_simulator():
    from gcsim.sim.graph import component_graph

    hw = load_hardware("gpt2-two-chips").derive(
        shape={"layers": 2}, interconnect={"nodes": {"chip0": {"first_layer": 0, "last_layer": 0},
                                                     "chip1": {"first_layer": 1, "last_layer": 1}}})
    g = component_graph(Simulator(hw, zeros(hw, 1), values=False))
    kinds = [k for _, k in g.nodes(data="kind")]
    assert kinds.count("LayerController") == 2 and kinds.count("Channel") == 4 and kinds.count("HostPort") == 1
    assert g.number_of_nodes() == 1 + 2 * 7 + 4
    # layer 1's inputs cross both links; its outputs come back the same way
    assert g.has_edge("host", "link.host_to_chip0") and g.has_edge("link.chip0_to_chip1", "L01.controller")
    assert g.has_edge("L01.controller", "link.chip1_to_chip0") and g.has_edge("link.chip0_to_host", "host")
    # chip1_to_chip0, the last link with a cost of layer 1's outputs, tells its controller when they arrived
    assert g.edges["link.chip1_to_chip0", "L01.controller"]["port"] == "delivered"
    assert not g.has_edge("link.chip0_to_host", "L00.controller")   # an ideal route: no note
    assert g.edges["L00.integrators", "L00.counters"]["port"] == "count"   # A, when the V phase ends


def test_edge_capacity_back_pressure():
    # one layer behind a 100 ns input edge that holds one message at a time; two sequences send
    # their inputs at t = 0: sequence 0's arrives at 100 and its layer step runs [100, 165)
    # (outputs over a free edge); sequence 1's waits for a place until 100, arrives at 200 and
    # finds the layer free: [200, 265)
    hw = load_hardware("paper-gpt2").derive(
        shape={"layers": 1}, periphery={"sequences": 2},
        interconnect={"nodes": {"chip": {"first_layer": 0, "last_layer": 0}},
                      "edges": {"in": {"src": "host", "dst": "chip", "latency_ns": 100.0, "capacity": 1},
                                "out": {"src": "chip", "dst": "host"}}})
    res = run(hw, 1)
    assert (res.step_end_ps[0][0], res.step_end_ps[1][0]) == (165 * NS, 265 * NS)
    assert res.activity["sequences"]["stall_causes_ps"] == {"link.in": 100 * NS}
    np.testing.assert_array_equal(res.path.step_totals(1), [265 * NS])
    # without back-pressure both arrive at 100; sequence 1 waits for the layer instead: [165, 230)
    unlimited = run(hw.derive(interconnect={"edges": {"in": {"capacity": 0}}}), 1)
    assert unlimited.step_end_ps[1][0] == 230 * NS
    assert unlimited.activity["sequences"]["stall_causes_ps"] == {"layer busy (other sequence)": 65 * NS}
    # three sequences: the third enters when the message ahead of it (the second, arriving at 200)
    # frees the place, not when the first arrives: it arrives at 300, its layer step [300, 365)
    three = run(hw.derive(periphery={"sequences": 3}), 1)
    assert [three.step_end_ps[s][0] for s in range(3)] == [165 * NS, 265 * NS, 365 * NS]
    assert three.activity["sequences"]["stall_causes_ps"] == {"link.in": (100 + 200) * NS}


def test_a_step_arriving_while_the_outputs_travel_waits_for_them():
    # serial issue holds the layer until its outputs reach the host (100 ns back): sequence 1,
    # arriving at 100 like sequence 0, starts when sequence 0's outputs arrive at 265
    hw = load_hardware("paper-gpt2").derive(
        shape={"layers": 1}, periphery={"sequences": 2},
        interconnect={"nodes": {"chip": {"first_layer": 0, "last_layer": 0}},
                      "edges": {"in": {"src": "host", "dst": "chip", "latency_ns": 100.0},
                                "out": {"src": "chip", "dst": "host", "latency_ns": 100.0}}})
    res = run(hw, 1)
    assert (res.step_end_ps[0][0], res.step_end_ps[1][0]) == (265 * NS, (265 + 65 + 100) * NS)
