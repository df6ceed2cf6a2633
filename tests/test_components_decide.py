"""Components own their decisions (issue 20): each phase window is set by the component that
works in it and reaches the others in messages; shared-counter turns, GQA rounds and
refreshes come out of contention for the resources, claimed through the one interface.
Every expectation is worked out by hand from the description's numbers (ps; 1 ns = 1000 ps).
"""
import numpy as np
import pytest
from inputs import random_trace

from gcsim import load_hardware
from gcsim.sim import ArrayTrace, Simulator
from gcsim.sim.refresh import summary as refresh_summary
from gcsim.sim.schedule import check

NS = 1000


def zeros(hw, T):
    s = hw.shape
    return ArrayTrace(np.zeros((T, s.layers, s.heads, s.d_head), np.float32),
                      np.zeros((T, s.layers, s.kv_heads, s.d_head), np.float32),
                      np.zeros((T, s.layers, s.kv_heads, s.d_head), np.float32))


def layer_ns(res, seq=0):
    return (res.layer_end_ps[seq][:] - res.layer_start_ps[seq][:]) / NS


def test_the_integrators_and_the_charge_to_pulse_set_their_windows():
    # paper-gpt2 with layer 0's integrators integrating for 20 ns and its charge-to-pulse driving
    # for 25 ns (their own numbers, changed on those two components only): layer 0 takes
    # 5 + 20 + 25 + 15 + 10 + 5 = 80 ns; the tiles, the PWM drivers and the counters follow the
    # windows they hear of, the other layers keep 65 ns
    hw = load_hardware("paper-gpt2")
    T = 2
    sim = Simulator(hw, zeros(hw, T), values=False)
    sim.components["L00.integrators"].q_ps = 20 * NS
    sim.components["L00.ctp"].v_ps = 25 * NS
    res = sim.run()
    lat = layer_ns(res)
    assert set(lat[:, 0]) == {80.0} and set(np.ravel(lat[:, 1:])) == {65.0}
    act = res.activity
    assert act["L00.tiles"]["busy_ps"] == T * 12 * (5 + 20 + 25) * NS        # write, K read, V read per bank
    assert act["L00.controller"]["busy_ps"] == T * 12 * (20 + 5) * NS        # PWM drive, routing per head
    assert act["L00.integrators"]["busy_ps"] == T * 12 * (20 + 25) * NS
    assert act["L00.ctp"]["busy_ps"] == T * 12 * 25 * NS
    assert act["L01.tiles"]["busy_ps"] == T * 12 * (5 + 15 + 15) * NS
    cp = res.path.mean_breakdown(T)
    assert cp["q_phase"] == (20 + 11 * 15) * NS and cp["v_phase"] == (25 + 11 * 15) * NS


def test_counter_turns_with_a_switch_by_hand():
    # stall-shared-counters: 12 heads, 3 per set of counters (4 sets); switch_cycles 2 at 1 GHz.
    # A set counts heads 3s, 3s+1, 3s+2 in turns of 15 ns from the V phase's end, switching
    # 2 ns before each head other than the one it counted last: first layer step 0, 17, 34
    # (no switch before the first head: the set has counted nobody) -> 5+15+15+49+10+5 = 99 ns;
    # later steps switch back from head 3s+2 first: 2, 19, 36 -> 101 ns.
    hw = load_hardware("stall-shared-counters").derive(periphery={"switch_cycles": 2})
    T = 3
    res = Simulator(hw, zeros(hw, T), values=False, check=True).run()
    lat = layer_ns(res)
    assert set(lat[0]) == {99.0} and set(np.ravel(lat[1:])) == {101.0}
    assert list(res.step_latency_ps()) == [12 * 99 * NS, 12 * 101 * NS, 12 * 101 * NS]
    c = res.activity["L00.counters"]
    # per set: 3 counts of 15 ns a step, and 2 ns switches: 2, 3, 3 of them
    assert c["busy_ps"] == 4 * (T * 45 + 2 * (2 + 3 + 3)) * NS and c["stalled_ps"] == 0
    # the heads holding their charge until their turn: per set 0+17+34, then 2+19+36 twice
    assert res.activity["L00.integrators"]["stall_causes_ps"] == {"output counters shared": 4 * (51 + 57 + 57) * NS}
    cp = res.path.mean_breakdown(T)
    assert cp["output_count"] == 12 * 45 * NS and cp["switch:counters"] == 12 * (4 + 6 + 6) * NS / T
    # the default (no switch) is the shipped figure: 95 ns per layer step
    plain = Simulator(load_hardware("stall-shared-counters"), zeros(hw, T), values=False).run()
    assert set(np.ravel(layer_ns(plain))) == {95.0}


def test_a_periphery_bank_switching_layers_by_hand():
    # paper-gpt2 with one counters-and-adder-tree bank per 2 layers, switching 3 cycles (3 ns)
    # before it counts for the other layer: step 0: layers 0, 2, 4, ... find their bank fresh
    # (65 ns), layers 1, 3, 5, ... wait 3 ns (68 ns): 6 x 65 + 6 x 68 = 798 ns; from step 1 on
    # every layer follows the other one on its bank: 12 x 68 = 816 ns
    hw = load_hardware("paper-gpt2").derive(periphery={"counters_shared_by_layers": 2, "switch_cycles": 3})
    T = 3
    res = Simulator(hw, zeros(hw, T), values=False, check=True).run()
    assert list(res.step_latency_ps()) == [798 * NS, 816 * NS, 816 * NS]
    assert res.activity["P00.counters"]["busy_ps"] == 12 * (T * 2 * 15 + 5 * 3) * NS   # 5 switches of 12 sets
    assert res.activity["L01.integrators"]["stall_causes_ps"] == {"periphery shared by layers": T * 12 * 3 * NS}
    assert res.activity["L00.integrators"]["stall_causes_ps"] == {"periphery shared by layers": (T - 1) * 12 * 3 * NS}
    assert check(res)["violations"] == []


def test_pipelined_rounds_wait_for_the_v_arrays_by_hand():
    # SmolLM2 (G = 3) pipelined, V phase 20 ns: round r's Q phase as soon as round r - 1 has left
    # the K arrays, its V phase when its Q phase is over and round r - 1 has left the V arrays:
    # Q [0,15) [15,30) [30,45); V [15,35) [35,55) [55,75); count [35,50) [55,70) [75,90)
    # -> 5 + 90 + 10 + 5 = 110 ns. Round 1 holds S 5 ns, round 2 10 ns (3 heads each).
    hw = load_hardware("smollm2").derive(periphery={"gqa_mapping": "pipelined"},
                                         timing={"phases_ns": {"v_phase": 20.0}})
    T = 2
    res = Simulator(hw, zeros(hw, T), values=False, check=True).run()
    assert set(np.ravel(layer_ns(res))) == {110.0}
    assert res.activity["L00.integrators"]["stall_causes_ps"] == {
        "K/V bank shared (GQA)": T * 3 * (15 + 30) * NS, "V arrays busy (GQA pipeline)": T * 3 * (5 + 10) * NS}
    assert res.activity["L00.ctp"]["busy_ps"] == T * 9 * 20 * NS
    cp = res.path.mean_breakdown(T)   # the path follows round 2 through the V arrays round 0 and 1 held
    assert cp["q_phase"] == 30 * 15 * NS and cp["v_phase"] == 30 * 60 * NS and cp["output_count"] == 30 * 15 * NS
    assert check(res)["violations"] == []


def test_refresh_claims_through_the_resources():
    # the refresh of test_scenarios' periodic-refresh case (1 layer, 4 heads, 2 sub-tiles of 8,
    # refresh due every 100 ns, 40 ns per sub-tile): the writer's DACs and the tiles' K and V
    # arrays serve the 4 refreshes as claims beside the 6 writes and 6 reads, and no two at once
    hw = load_hardware("paper-gpt2").derive(
        shape={"layers": 1, "heads": 4, "kv_heads": 4, "d_head": 8, "window": 16, "array_size": 8},
        numerics={"retention": {"tau_ns": 1000.0, "refresh": "periodic", "refresh_interval_ns": 100.0,
                                "refresh_ns_per_subtile": 40.0, "loss_fraction": 0.5}},
        costs={"model": "table"})
    T = 6
    sim = Simulator(hw, random_trace(hw, T), values=False, check=True)
    res = sim.run()
    assert refresh_summary(sim)["refreshes"] == 4
    served = {name: len(log) for name, log in res.resources.items() if name.startswith("L00.")}
    assert served == {"L00.tiles.K": 6 + 4, "L00.tiles.V": 6 + 4, "L00.writer": 6 + 4, "L00.counters": 6}
    assert check(res)["violations"] == []
    assert list(res.step_latency_ps()) == [65 * NS, 65 * NS, 75 * NS, 100 * NS, 100 * NS, 100 * NS]


def test_a_write_during_a_reserved_refresh_waits_for_it():
    # one layer, two sequences, overlap_write (the writer takes the next sequence's k, v during
    # the current read), refresh due every 100 ns, 40 ns per sub-tile; phases 5/15/15/15/10/5:
    #   seq 0 step 0: write [0,5), Q [5,20), V [20,35), count, adder, routing -> ends 65
    #   seq 1 step 0: write [5,10) (DACs busy 5 ns), read when seq 0's outputs left: [65, 125)
    #   seq 0 step 1: write [65,70), read at 125 (layer busy 55 ns): V ends 155 -> ends 185
    # refresh due 100: seq 0 step 1 is between its write and its V phase: the DACs are reserved
    # from 100 and the refresh runs [155,195) (1 sub-tile); seq 1's step 1 write, asked at 125,
    # waits for it: [195,200) (refresh stall 70 ns), read [200,...) -> ends 260
    #   seq 0 step 2: write asked at 185, DACs held by seq 1's write until 200: [200,205)
    # refresh due 200: open steps until seq 0 step 2's V phase ends at 290 (read at 260): DACs
    # reserved from 205, refresh [290,330); seq 1's step 2 write, asked at 260: [330,335)
    # (70 ns), read [335,395); seq 0 step 2 ends 320.
    hw = load_hardware("paper-gpt2").derive(
        shape={"layers": 1, "heads": 4, "kv_heads": 4, "d_head": 8, "window": 16, "array_size": 8},
        numerics={"retention": {"tau_ns": 1000.0, "refresh": "periodic", "refresh_interval_ns": 100.0,
                                "refresh_ns_per_subtile": 40.0, "loss_fraction": 0.5}},
        periphery={"sequences": 2, "issue": "overlap_write"}, costs={"model": "table"})
    T = 3
    sim = Simulator(hw, zeros(hw, T), values=False, check=True)
    res = sim.run()
    assert [list(res.step_end_ps[q][:] // NS) for q in range(2)] == [[65, 185, 320], [125, 260, 395]]
    assert res.activity["sequences"]["stall_causes_ps"] == {
        "layer busy (other sequence)": 3 * 55 * NS, "refresh": 2 * 70 * NS, "writer busy (other sequence)": 20 * NS}
    rs = refresh_summary(sim)
    assert rs["refreshes"] == 2 and rs["busy_ps"] == 2 * 40 * NS and rs["stall_ps"] == 140 * NS
    assert check(res)["violations"] == []
