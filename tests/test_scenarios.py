"""Pipeline-stall scenarios (models/stall-*.yaml): each stall's cause and size against a hand
calculation from the description's numbers, the accounting invariants on every shipped
description, and the refresh policy. All times in ps (1 ns = 1000 ps).

Phases of a layer step (paper-gpt2): write 5, Q 15, V 15, output count 15, adder tree 10,
routing 5 = 65 ns; 12 layers -> 780 ns per token for one sequence.
"""
import math

import numpy as np
import pytest
from inputs import random_trace

from gcsim import load_hardware
from gcsim.hardware import MODELS_DIR
from gcsim.report import build_report
from gcsim.sim import AccountingError, ArrayTrace, Simulator, Timeline
from gcsim.sim.accounting import Activity
from gcsim.sim.refresh import summary as refresh_summary

NS = 1000
LAYER = 65 * NS


def zeros(hw, T):
    s = hw.shape
    q = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
    kv = np.zeros((T, s.layers, s.kv_heads, s.d_head), np.float16)
    return ArrayTrace(q, kv, kv)


def run(hw, T, **kw):
    kw.setdefault("values", False)
    return Simulator(hw, zeros(hw, T), **kw).run()


def path_col(res, seq, category):
    """Per-step critical-path time of one category (ps) for one sequence."""
    cats = list(res.path.categories)
    return res.path.per_step[seq][:, cats.index(category)] if category in cats else np.zeros(res.steps, np.int64)


def check_invariants(res):
    for name, c in res.activity.items():
        pu = c["per_unit"]
        assert c["busy_ps"] + c["stalled_ps"] + c["idle_ps"] == res.elapsed_ps * c["units"], name
        assert min(c["busy_ps"], c["stalled_ps"], c["idle_ps"]) >= 0, name
        for b, s, i in zip(pu["busy_ps"], pu["stalled_ps"], pu["idle_ps"]):
            assert b + s + i == res.elapsed_ps and min(b, s, i) >= 0, name
        assert all(v >= 0 for v in c["stall_causes_ps"].values()), name
        assert sum(c["stall_causes_ps"].values()) == c["stalled_ps"], name
    # the critical path adds up to each step's latency for every sequence (run() checks only
    # single-sequence runs)
    for seq in range(len(res.step_end_ps)):
        np.testing.assert_array_equal(res.path.step_totals(seq), res.step_latency_ps(seq))


# ---- 1. host time per layer -----------------------------------------------------------------

def test_host_time_per_layer():
    hw = load_hardware("stall-host")
    assert hw.timing.host_ns_per_layer == 200.0
    T = 4
    res = run(hw, T)
    # each layer: 200 ns host compute, then the 65 ns layer step: 12 x 265 = 3180 ns per token
    assert set(res.step_latency_ps()) == {12 * (200 + 65) * NS} == {3_180_000}
    seqs = res.activity["sequences"]
    assert seqs["stall_causes_ps"] == {"host compute": T * 12 * 200 * NS}     # 4 x 12 x 200 ns
    assert res.activity["host"]["busy_ps"] == T * 12 * 200 * NS
    cp = res.path.mean_breakdown(T)
    assert cp["host compute"] == 12 * 200 * NS and sum(cp.values()) == 3_180_000
    check_invariants(res)


def test_host_time_makes_stored_values_leak_more():
    tau_ns = 10_000.0  # 10 us: one 3180 ns token period is a visible 27 % decay
    fast = load_hardware("paper-gpt2").derive(numerics={"cell_law": "linear", "dtype": "float64",
                                                        "retention": {"tau_ns": tau_ns}})
    slow = fast.derive(timing={"host_ns_per_layer": 200.0})
    T, s = 2, fast.shape
    tr = random_trace(fast, T, seed=1)
    seen = {}

    def hook(key):
        def record(seq, step, layer, read_ps, S, phi, codes, out):
            if step == 1 and layer == 0:
                seen[key] = S.reshape(s.heads, -1)[:, 0].copy()  # slot 0 holds token 0
        return record

    outs = {k: np.zeros((T, s.layers, s.heads, s.d_head)) for k in ("fast", "slow")}
    r0 = Simulator(fast, tr, outputs=outs["fast"], stages_hook=hook("fast")).run()
    r1 = Simulator(slow, tr, outputs=outs["slow"], stages_hook=hook("slow")).run()
    # a slot is read one token after it was written, at the same point of the layer step:
    # age = one token period = 780 ns without host time, 12 x 265 = 3180 ns with it
    for l in range(s.layers):
        assert r0.read_ps[0][1, l] - r0.write_ps[0][0, l] == 780 * NS
        assert r1.read_ps[0][1, l] - r1.write_ps[0][0, l] == 3180 * NS
    # linear law: the K bit-line charge of a slot is proportional to exp(-age / tau)
    np.testing.assert_allclose(seen["slow"] / seen["fast"], math.exp(-(3180 - 780) / tau_ns), rtol=1e-12)
    assert not np.array_equal(outs["fast"][1], outs["slow"][1])       # the outputs change
    np.testing.assert_array_equal(outs["fast"][0, 0], outs["slow"][0, 0])  # not before anything aged


# ---- 2. shared periphery -----------------------------------------------------------------------

def test_output_counters_shared_by_three():
    hw = load_hardware("stall-shared-counters")
    assert hw.periphery.counters_shared_by == 3
    T = 3
    res = run(hw, T)
    # 12 heads on 4 counter sets (heads 3c..3c+2 share set c): 3 turns of 15 ns -> 65 + 2 x 15 = 95 ns
    assert set(res.step_latency_ps()) == {12 * 95 * NS}
    for l in (0, 11):
        integ = res.activity[f"L{l:02d}.integrators"]
        # turn 0 = heads 0,3,6,9 count at once; turn 1 (1,4,7,10) waits 15 ns; turn 2 (2,5,8,11) 30 ns
        assert integ["per_unit"]["stalled_ps"] == [T * w * NS for w in (0, 15, 30) * 4]
        assert integ["stall_causes_ps"] == {"output counters shared": T * 4 * (15 + 30) * NS}
        assert res.activity[f"L{l:02d}.counters"]["busy_ps"] == T * 4 * 3 * 15 * NS  # 4 sets x 3 turns
    assert res.path.mean_breakdown(T)["output_count"] == 12 * 3 * 15 * NS
    check_invariants(res)


@pytest.mark.parametrize("n", [2, 4])
def test_output_counters_shared_by_n(n):
    hw = load_hardware("paper-gpt2").derive(periphery={"counters_shared_by": n})
    res = run(hw, 2)
    assert set(res.step_latency_ps()) == {12 * (65 + (n - 1) * 15) * NS}
    # turn r waits r x 15 ns; 12 / n heads per turn
    waits = [r * 15 * NS for r in range(n)]
    assert res.activity["L05.integrators"]["stall_causes_ps"]["output counters shared"] == 2 * (12 // n) * sum(waits)
    check_invariants(res)


def test_periphery_shared_by_layers_with_several_sequences():
    hw = load_hardware("paper-gpt2").derive(periphery={"counters_shared_by_layers": 2, "sequences": 2})
    T = 3
    res = run(hw, T)
    # sequence 1 waits 65 ns for layer 0; then both sequences reach the output count of the
    # bank shared by layers 0 and 1 at 100 ns (seq 0 in layer 1, seq 1 in layer 0): one
    # holds it for count + adder tree (25 ns) while the other waits, 25 ns per head. After
    # that the sequences are 90 ns apart and never collide again.
    assert res.activity["sequences"]["stall_causes_ps"] == {"layer busy (other sequence)": 65 * NS}
    assert res.activity["L00.integrators"]["stall_causes_ps"] == {"periphery shared by layers": 12 * 25 * NS}
    np.testing.assert_array_equal(res.step_end_ps[0], 780 * NS * np.arange(1, T + 1))
    np.testing.assert_array_equal(res.step_end_ps[1], 780 * NS * np.arange(1, T + 1) + 90 * NS)
    check_invariants(res)


# ---- 3. limited-bandwidth interconnect --------------------------------------------------------

def test_link_bandwidth_one_sequence():
    hw = load_hardware("stall-link").derive(periphery={"sequences": 1})
    T = 3
    res = run(hw, T)
    # outputs of a layer: 12 heads x 64 x 16 bits = 12288 bits at 64 Gbit/s = 192 ns
    ser = 12 * 64 * 16 * NS // 64
    assert ser == 192 * NS
    assert set(res.step_latency_ps()) == {12 * (65 * NS + ser)}
    link = res.activity["link.bank_to_host"]
    assert link["busy_ps"] == T * 12 * ser and link["stalled_ps"] == 0
    assert res.path.mean_breakdown(T)["link.bank_to_host"] == 12 * ser
    check_invariants(res)


def test_link_bandwidth_two_sequences_wait_for_the_link():
    hw = load_hardware("stall-link")
    assert hw.periphery.sequences == 2
    T = 4
    res = run(hw, T)
    ser = 192 * NS
    # the link (one for all layers) serializes 2 x 12 transfers per step: the bottleneck. In the
    # steady state the two sequences alternate on it; each waits 192 - 65 = 127 ns per layer step
    for seq in (0, 1):
        np.testing.assert_array_equal(res.step_latency_ps(seq)[1:3], 2 * 12 * ser)       # 4608 ns
        np.testing.assert_array_equal(path_col(res, seq, "stall:link.bank_to_host")[1:3], 12 * (ser - LAYER))
    # start: both reach layer 0 at t = 0; sequence 1 waits for it: 65 + 192 ns
    assert res.activity["sequences"]["stall_causes_ps"] == {"layer busy (other sequence)": 257 * NS}
    assert res.activity["link.bank_to_host"]["busy_ps"] == 2 * T * 12 * ser
    # each wait for the link is booked on the waiting layer's controller (per head unit) and
    # on the step's critical path: the two agree
    booked = sum(c["stall_causes_ps"].get("link.bank_to_host", 0) for name, c in res.activity.items()
                 if name.endswith(".controller")) // 12
    assert booked == sum(int(path_col(res, seq, "stall:link.bank_to_host").sum()) for seq in (0, 1)) > 0
    check_invariants(res)


# ---- 4. several sequences in flight ------------------------------------------------------------

def test_four_sequences_pipelined():
    hw = load_hardware("stall-multiseq")
    assert hw.periphery.sequences == 4
    T = 10
    res = run(hw, T)
    # all start at t = 0 on layer 0: sequence s waits s x 65 ns once, then they run staggered
    assert res.activity["sequences"]["per_unit"]["stalled_ps"] == [0, 65 * NS, 130 * NS, 195 * NS]
    assert res.activity["sequences"]["stall_causes_ps"] == {"layer busy (other sequence)": 390 * NS}
    for s in range(4):
        np.testing.assert_array_equal(res.step_end_ps[s], s * LAYER + 780 * NS * np.arange(1, T + 1))
    assert res.elapsed_ps == T * 780 * NS + 3 * LAYER
    rep = build_report(res, values=False)
    single = 1 / (780e-9)                      # one stream: a token every 780 ns = 1.28 M tokens/s
    steady = 4 / (780e-9)                      # 4 tokens every 780 ns = 5.13 M tokens/s
    assert rep["time"]["throughput_tokens_per_s"] == pytest.approx(4 * T / (res.elapsed_ps * 1e-12))
    assert 4 / (np.diff(res.step_end_ps[0])[0] * 1e-12) == pytest.approx(steady)
    assert steady / single == pytest.approx(4)
    check_invariants(res)


def test_more_sequences_than_layers_saturate():
    hw = load_hardware("stall-multiseq").derive(periphery={"sequences": 16})
    T = 5
    res = run(hw, T)
    # 16 sequences on 12 layer stages: every layer busy all the time, a token leaves every 65 ns;
    # a step of each sequence takes 16 x 65 = 1040 ns, 260 ns of it waiting for a layer
    for s in (0, 7, 15):
        np.testing.assert_array_equal(res.step_latency_ps(s)[1:], 16 * LAYER)
    per_unit = res.activity["sequences"]["per_unit"]["stalled_ps"]
    assert per_unit == [s * LAYER + (T - 1) * 4 * LAYER for s in range(16)]
    ends = np.sort(np.concatenate(res.step_end_ps))
    assert set(np.diff(ends[16:])) == {LAYER}     # steady state: 1 token / 65 ns = 15.4 M tokens/s
    check_invariants(res)


# ---- 5. refresh ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_layer():
    # 1 layer, 4 heads, d 8, window 16 in 2 sub-tiles of 8; tau 1000 ns; token period 65 ns
    return load_hardware("paper-gpt2").derive(
        shape={"layers": 1, "heads": 4, "kv_heads": 4, "d_head": 8, "window": 16, "array_size": 8},
        numerics={"retention": {"tau_ns": 1000.0, "refresh_interval_ns": 100.0, "refresh_ns_per_subtile": 40.0,
                                "loss_fraction": 0.5}},
        costs={"model": "table"})  # phase times and energies as written (scaling laws: test_costs.py)


def test_no_refresh_counts_lost_reads(one_layer):
    hw = one_layer.derive(numerics={"retention": {"refresh": "none"}})
    T = 20
    sim = Simulator(hw, random_trace(hw, T), values=True)
    res = sim.run()
    # token u written at 65u + 5 ns, read at step t at 65t + 5 ns: age 65(t - u) ns; lost when
    # exp(-age / 1000) < 0.5, i.e. age > 693.1 ns, i.e. t - u >= 11 (650 < 693.1 < 715).
    # steps 11..15: u = 0..t-11 -> 1+2+3+4+5 = 15; steps 16..19: u = t-15..t-11 -> 4 x 5 = 20
    rs = refresh_summary(sim)
    assert rs["lost_reads"] == 15 + 20
    assert rs["slot_reads"] == sum(min(t + 1, 16) for t in range(T))
    assert rs["refreshes"] == 0 and "refresh" not in res.activity["sequences"]["stall_causes_ps"]
    assert set(res.step_latency_ps()) == {LAYER}


def test_periodic_refresh_stalls_by_hand(one_layer):
    hw = one_layer.derive(numerics={"retention": {"refresh": "periodic"}})
    T = 6
    sim = Simulator(hw, random_trace(hw, T), values=True)
    res = sim.run()
    # step 0 [0,65), step 1 [65,130): tiles busy until 100 (write 5 + Q 15 + V 15).
    # refresh due 100: tokens 0,1 in sub-tile 0 -> 40 ns [100,140); step 2 arrives 130: stalls 10 ns.
    # step 2 [140,205), tiles free at 175; refresh due 200 -> [200,240); step 3 arrives 205: stalls 35.
    # likewise step 4 (arrives 305, refresh [300,340)) and step 5 (405, [400,440)): 35 ns each.
    assert list(res.step_latency_ps()) == [65 * NS, 65 * NS, 75 * NS, 100 * NS, 100 * NS, 100 * NS]
    assert res.elapsed_ps == 505 * NS
    assert res.activity["sequences"]["stall_causes_ps"] == {"refresh": (10 + 3 * 35) * NS}
    assert res.activity["L00.controller"]["stall_causes_ps"] == {"refresh": 4 * (10 + 3 * 35) * NS}
    np.testing.assert_array_equal(path_col(res, 0, "stall:refresh"), [0, 0, 10 * NS, 35 * NS, 35 * NS, 35 * NS])
    rs = refresh_summary(sim)
    # 4 refreshes (due 100, 200, 300, 400; 500 falls after the last step) of 2, 3, 4, 5 slots
    assert rs["refreshes"] == 4 and rs["busy_ps"] == 4 * 40 * NS and rs["slots_refreshed"] == 14
    assert rs["lost_reads"] == 0 and rs["assumption_violations"] == 0
    # tiles busy: 6 steps x (5 + 15 + 15) + 4 x 40 ns, per K/V bank
    assert res.activity["L00.tiles"]["busy_ps"] == 4 * (6 * 35 + 4 * 40) * NS
    # energy: per slot refreshed, one K column and one V row read per K/V bank, 2 x 8 cells rewritten
    counts = {k: v["count"] for k, v in res.ledger.by_action().items() if k.startswith("L00.refresh")}
    assert counts == {"L00.refresh.k_column_read": 4 * 14, "L00.refresh.v_row_read": 4 * 14,
                      "L00.refresh.kv_write_dac": 2 * 8 * 4 * 14}
    # the refresh restores the write time: every slot read after a refresh is 5 ns old (or new)
    assert np.all(sim.controllers[0].tiles.rings[0].write_ps[:5] == 440 * NS)
    check_invariants(res)


def test_periodic_refresh_keeps_values_and_none_loses_them(one_layer):
    T = 20
    sims = {p: Simulator(one_layer.derive(numerics={"retention": {"refresh": p}}), random_trace(one_layer, T)) for p in
            ("none", "periodic")}
    for sim in sims.values():
        check_invariants(sim.run())
    assert refresh_summary(sims["none"])["lost_reads"] == 35
    assert refresh_summary(sims["periodic"])["lost_reads"] == 0
    assert refresh_summary(sims["periodic"])["assumption_violations"] == 0


def test_refresh_model_file_by_hand():
    hw = load_hardware("stall-refresh")
    T = 6
    sim = Simulator(hw, zeros(hw, T), values=False)
    res = sim.run()
    # layer l of step t starts at 780t + 65l ns. Refresh due 2000 ns, 20 ns (1 sub-tile holds a slot):
    # layer 6 of step 2 runs [1950, 2015), tiles free at 1985 -> refresh [2000, 2020), no wait;
    # layer 7 of step 2 arrives at 2015, in [2000, 2020): stalls 5 ns; later layers arrive after 2020.
    # Next due 4000 ns: step 5 starts at 3905; its layer l arrives at 3905 + 65l: layer 1 at 3970
    # (tiles busy until 4005, refresh [4005,4025), never reached again), layer 2 at 4035 > 4020.
    np.testing.assert_array_equal(res.step_latency_ps(), [780 * NS, 780 * NS, 785 * NS, 780 * NS, 780 * NS, 780 * NS])
    assert res.activity["sequences"]["stall_causes_ps"] == {"refresh": 5 * NS}
    assert res.activity["L07.controller"]["stall_causes_ps"] == {"refresh": 12 * 5 * NS}
    rs = refresh_summary(sim)
    # due 2000: all 12 layers (layers 0..6 hold tokens 0..2, layers 7..11 tokens 0..1): 7 x 3 + 5 x 2;
    # due 4000: materialized for layers 2..11 (arrivals >= 4000), tokens 0..4: 10 x 5
    assert rs["refreshes"] == 12 + 10 and rs["slots_refreshed"] == 7 * 3 + 5 * 2 + 10 * 5
    assert rs["per_layer"]["stall_ps"][7] == 5 * NS and rs["stall_ps"] == 5 * NS
    check_invariants(res)


def test_refresh_model_without_refresh_loses_old_slots():
    hw = load_hardware("stall-refresh").derive(numerics={"retention": {"refresh": "none"}})
    T = 30
    sim = Simulator(hw, zeros(hw, T), values=False)
    sim.run()
    # age of token u read at step t: 780 (t - u) ns; lost when > 20000 ln 2 = 13863 ns: t - u >= 18
    # (17 x 780 = 13260, 18 x 780 = 14040); per layer sum_{t=18}^{29} (t - 17) = 78; 12 layers
    assert 20_000 * math.log(2) == pytest.approx(13_862.9, abs=0.1)
    assert refresh_summary(sim)["lost_reads"] == 12 * 78


def test_refresh_description_checks():
    from gcsim.hardware import HardwareError
    hw = load_hardware("stall-refresh")
    with pytest.raises(HardwareError, match="numerics.retention.refresh"):
        hw.derive(numerics={"retention": {"refresh_interval_ns": 300.0}})  # 16 x 20 ns >= 300 ns
    with pytest.raises(HardwareError, match="numerics.retention.refresh"):
        hw.derive(numerics={"retention": {"mode": "per_token"}})
    with pytest.raises(HardwareError, match="loss_fraction"):
        hw.derive(numerics={"retention": {"loss_fraction": 1.5}})


# ---- invariants on every description; corrupted bookings --------------------------------------

@pytest.mark.parametrize("path", sorted(MODELS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_model_file_keeps_the_invariants(path):
    hw = load_hardware(path)
    res = Simulator(hw, zeros(hw, 3), values=False, timeline=Timeline()).run()  # run() checks too
    check_invariants(res)
    assert res.elapsed_ps > 0 and res.timeline.events


def test_corrupted_booking_raises():
    act = Activity()
    act.add_component("x", 2)
    act.busy("x", 0, 100, units=0)
    with pytest.raises(AccountingError, match="overlaps"):
        act.stall("x", 50, 150, "cause", units=0)
    with pytest.raises(AccountingError, match="overlaps"):
        act.busy("x", 90, 120)  # a whole-bank booking over unit 0's interval
    with pytest.raises(AccountingError, match="ends before it starts"):
        act.busy("x", 200, 150, units=1)
    act.check(100)
    with pytest.raises(AccountingError, match="idle -50 ps"):  # activity booked past the end of the run
        act.check(50)
    act.busy_ps["x"][1] += 500  # tampered counter: busy > elapsed
    with pytest.raises(AccountingError, match="does not make the elapsed"):
        act.check(100)
