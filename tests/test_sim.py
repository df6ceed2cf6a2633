import json
import math

import numpy as np
import pytest
from inputs import random_trace

from gcsim import HardwareError, load_hardware
from gcsim.cli import main as cli
from gcsim.commands.validate import validate
from gcsim.hardware import MODELS_DIR
from gcsim.sim import ArrayTrace, SimError, Simulator
from gcsim.traces import open_trace, write_synthetic


@pytest.fixture(scope="module")
def small():
    # 2 layers x 4 heads (2 K/V banks), d 8, window 16 in 2 sub-tiles of 8; the phase times and
    # energy table as written, so these tests check counts x table (the scaling laws: test_costs.py)
    return load_hardware().derive(shape={"layers": 2, "heads": 4, "kv_heads": 4, "d_head": 8, "window": 16,
                                         "array_size": 8}, costs={"model": "table"})


def test_one_step_timing_and_energy_by_hand(small):
    res = Simulator(small, random_trace(small, 1)).run()
    # 5 + 15 + 15 + 15 + 10 + 5 ns per layer, 2 layers
    assert res.elapsed_ps == 2 * 65_000
    np.testing.assert_array_equal(res.layer_end_ps[0][0] - res.layer_start_ps[0][0], [65_000, 65_000])
    e = small.energy.actions_pj
    H, KV, d = 4, 4, 8
    # step 0: one slot written and valid, one active sub-tile
    by_hand = (H * d * 1 * e["q_pwm_drive"] + H * e["control"] + H * 1 * e["k_column_read"]
               + H * 1 * e["v_row_read"] + H * d * 1 * e["output_conversion"] + 0 * e["adder_tree_add"]
               + H * d * e["output_scaler"] + 2 * KV * d * e["kv_write_dac"]
               + (H * d * 4 + 2 * KV * d * 3 + H * d * 16) * 0.5)
    np.testing.assert_allclose(res.ledger.per_layer_pj(), [by_hand, by_hand])
    act = res.activity
    assert act["L00.writer"]["busy_ps"] == 4 * 5_000          # 4 K/V banks x 5 ns
    assert act["L00.tiles"]["busy_ps"] == 4 * 35_000          # write + Q + V phases
    assert act["L00.counters"]["busy_ps"] == 4 * 15_000
    assert act["L00.accumulator"]["busy_ps"] == 4 * 10_000
    # PWM drivers (Q phase) and routing; the write DACs are the token writer's (booked there
    # only: before the components model they were booked on both)
    assert act["L01.controller"]["busy_ps"] == 4 * (15_000 + 5_000)
    for name, c in act.items():
        assert c["busy_ps"] + c["stalled_ps"] + c["idle_ps"] == c["units"] * res.elapsed_ps, name


def test_energy_scales_with_active_slots(small):
    T = 20
    res = Simulator(small, random_trace(small, T), values=False).run()
    k_col = res.ledger.step_item_pj({"k": ["k_column_read"]})["k"]
    valid = np.minimum(np.arange(T) + 1, 16)
    np.testing.assert_allclose(k_col, 2 * 4 * valid * small.energy.actions_pj["k_column_read"])
    adds = res.ledger.step_item_pj({"a": ["adder_tree_add"]})["a"]
    active = np.where(np.arange(T) + 1 > 8, 2, 1)  # second sub-tile from the 9th token on
    np.testing.assert_allclose(adds, 2 * 4 * 8 * (active - 1) * 2.5)


def test_paper_budget_full_window():
    hw = load_hardware("paper-gpt2")
    T = 1026
    z = np.zeros((T, 12, 12, 64), np.float16)
    res = Simulator(hw, ArrayTrace(z, z, z), values=False).run()
    assert set(res.step_latency_ps()) == {780_000}                       # 12 x 65 ns
    items = res.ledger.step_item_pj(hw.energy.items)
    per_head = {k: v[-1] / (12 * 12) for k, v in items.items()}          # a full-window step
    for name, paper in {"phi_qk": 1120, "phi_v": 700, "digital_routing": 4000, "dacs": 330}.items():
        assert per_head[name] == pytest.approx(paper, rel=0.01), name
    assert res.ledger.step_pj()[-1] / 12 == pytest.approx(73_800, rel=0.01)   # pJ per layer
    # before the window fills: K columns read only for the tokens written (64 of 1024)
    assert items["phi_qk"][63] / items["phi_qk"][-1] == pytest.approx(64 / 1024)


@pytest.mark.parametrize("shape, mapping", [
    ({"heads": 4, "kv_heads": 4}, "time_multiplexed"),
    ({"heads": 6, "kv_heads": 2}, "time_multiplexed"),
    ({"heads": 6, "kv_heads": 2}, "pipelined"),
    ({"heads": 6, "kv_heads": 2}, "replicated"),
])
def test_exact_agreement_with_reference(small, shape, mapping):
    hw = small.derive(shape=shape, periphery={"gqa_mapping": mapping},
                      numerics={"retention": {"tau_ns": 2000.0}})  # decay visible within the run
    rep = validate(hw, random_trace(hw, 40, seed=3), stage_steps=40)     # 40 steps wrap the 16-slot window
    assert rep["pass"]
    for row in rep["layers"]:
        assert row["exact"]["code_mismatches"] == 0
        assert row["exact"]["out"]["max_abs"] < 1e-12
        assert row["nominal"]["code_mismatches"] > 0  # 130-330 ns token period vs nominal 800 ns


def test_gqa_mapping_time_and_write_energy(small):
    tm = small.derive(shape={"heads": 6, "kv_heads": 2})
    rep = small.derive(shape={"heads": 6, "kv_heads": 2}, periphery={"gqa_mapping": "replicated"})
    a = Simulator(tm, random_trace(tm, 3), values=False).run()
    b = Simulator(rep, random_trace(rep, 3), values=False).run()
    assert set(np.ravel(a.layer_end_ps[0] - a.layer_start_ps[0])) == {5_000 + 3 * 45_000 + 15_000}
    assert set(np.ravel(b.layer_end_ps[0] - b.layer_start_ps[0])) == {65_000}
    wa = a.ledger.action_pj("kv_write_dac")
    assert b.ledger.action_pj("kv_write_dac") == pytest.approx(3 * wa)
    # query heads of later rounds wait for the shared bank: 45 and 90 ns per layer step
    stall = a.activity["L00.integrators"]["stall_causes_ps"]["K/V bank shared (GQA)"]
    assert stall == 3 * 2 * (45_000 + 90_000)


def test_delayed_step_leaks_more_by_the_expected_factor(small):
    tau_ns = 1000.0
    base = small.derive(numerics={"cell_law": "linear", "retention": {"tau_ns": tau_ns}, "dtype": "float64"})
    slow = base.derive(timing={"host_ns_per_layer": 300.0})
    seen = {}

    def hook(name):
        def record(seq, step, layer, ages_ps, S, phi, codes, out):
            if step == 1 and layer == 0:
                seen[name] = S.reshape(4, -1)[:, 0].copy()  # slot 0 holds token 0
        return record

    tr = random_trace(base, 2, seed=1)
    r0 = Simulator(base, tr, stages_hook=hook("fast")).run()
    r1 = Simulator(slow, tr, stages_hook=hook("slow")).run()
    age0 = r0.read_ps[0][1, 0] - r0.write_ps[0][0, 0]
    age1 = r1.read_ps[0][1, 0] - r1.write_ps[0][0, 0]
    assert age0 == 130_000 and age1 == 130_000 + 2 * 300_000   # one token later: 2 layers (+ host time)
    # linear law: S is proportional to the decay factor exp(-age / tau)
    np.testing.assert_allclose(seen["slow"] / seen["fast"], math.exp(-(age1 - age0) / (tau_ns * 1000)), rtol=1e-12)


def test_same_inputs_same_outputs(small, tmp_path):
    write_synthetic(tmp_path / "t.gctrace", layers=2, heads=4, kv_heads=4, d_head=8, steps=30, seed=4)
    model = tmp_path / "small.yaml"
    import yaml
    from gcsim.hardware import to_dict
    d = to_dict(small)
    d.pop("source")
    model.write_text(yaml.safe_dump(d))
    for out in ("a", "b"):
        assert cli(["run", str(tmp_path / "t.gctrace"), "-m", str(model), "-o", str(tmp_path / out), "--no-progress"]) == 0
    ra, rb = (json.loads((tmp_path / o / "report.json").read_text()) for o in "ab")
    ra["trace"].pop("path"), rb["trace"].pop("path")
    assert ra["provenance"].pop("command").endswith("a --no-progress")  # the one input that differs
    rb["provenance"].pop("command")
    assert ra == rb
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "outputs.npy"), np.load(tmp_path / "b" / "outputs.npy"))


def test_trace_that_does_not_fit(small, tmp_path, capsys):
    with pytest.raises(SimError, match="model.heads is 6 in the trace but shape.heads is 4"):
        Simulator(small, random_trace(small.derive(shape={"heads": 6, "kv_heads": 2}), 3))
    write_synthetic(tmp_path / "t.gctrace", layers=3, heads=4, kv_heads=4, d_head=8, steps=5, seed=0)
    out = tmp_path / "out"
    assert cli(["run", str(tmp_path / "t.gctrace"), "-m", "paper-gpt2", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not fit hardware description" in err and "model.layers is 3" in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_malformed_description_and_missing_trace(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nshape: {layers: 1}\n")
    out = tmp_path / "out"
    assert cli(["run", "-m", str(bad), "-o", str(out)]) == 2
    assert "missing required field 'shape.heads'" in capsys.readouterr().err
    assert cli(["run", str(tmp_path / "nope.gctrace"), "-o", str(out)]) == 2
    assert "nope.gctrace" in capsys.readouterr().err
    assert not out.exists()


def test_validation_fails_when_the_simulator_is_wrong(small, monkeypatch):
    import gcsim.sim.blocks.tiles as tiles
    from gcsim.datapath import retention_decay

    # a simulator bug: ages read 50 ns too old
    monkeypatch.setattr(tiles, "retention_decay", lambda age_ps, age_tok, hw: retention_decay(age_ps + 50_000, age_tok, hw))
    hw = small.derive(numerics={"retention": {"tau_ns": 500.0}})
    rep = validate(hw, random_trace(hw, 20, seed=2), stage_steps=20)
    assert not rep["pass"]
    assert all(r["exact"]["S"]["max_abs"] > 1e-6 for r in rep["layers"])


def test_paper_command_figures():
    from gcsim.calibration import reproduce

    hw = load_hardware("paper-gpt2")
    z = np.zeros((1025, 12, 12, 64), np.float16)
    r = reproduce(hw, ArrayTrace(z, z, z))
    assert r["layer_ns"] == 65.0 and r["layer_cycles"] == 65.0
    assert r["token_us"] == pytest.approx(0.78)
    assert r["layer_nj"] == pytest.approx(73.8, rel=1e-9)
    assert r["token_uj"] == pytest.approx(0.8856, rel=1e-9)                # ~0.89 in the paper
    # independent formula: GPU latency / 65 ns and GPU energy / 73.8 nJ (docs/paper-model.md section 3)
    assert r["gpus"]["RTX 4090"]["speedup"] == pytest.approx(22.37e3 / 65)          # ~344x
    assert r["gpus"]["RTX 4090"]["energy_ratio"] == pytest.approx(7.178e6 / 73.8)   # ~97,000x
    assert r["gpus"]["Jetson Nano"]["speedup"] == pytest.approx(488.85e3 / 65)      # ~7,500x
    assert r["gpus"]["Jetson Nano"]["energy_ratio"] == pytest.approx(3.246e6 / 73.8)  # ~44,000x
    assert round(r["gpus"]["RTX 4090"]["speedup"]) == 344 and round(r["gpus"]["Jetson Nano"]["energy_ratio"], -3) == 44_000


@pytest.mark.slow
def test_validate_full_window_paper_shape(tmp_path):
    # the paper's head shape and window (16 sub-tiles of 64), 2 layers to keep it short;
    # 1100 steps wrap the 1024-slot ring buffer
    hw = load_hardware("paper-gpt2").derive(shape={"layers": 2})
    write_synthetic(tmp_path / "t.gctrace", layers=2, heads=12, d_head=64, steps=1100, seed=7)
    rep = validate(hw, open_trace(tmp_path / "t.gctrace"), stage_steps=8)
    assert rep["pass"] and 1099 in rep["stage_steps"]
    assert sum(r["exact"]["code_mismatches"] for r in rep["layers"]) == 0
    # the simulated token period (2 x 65 ns) is far from the nominal 800 ns: outputs move
    assert sum(r["nominal"]["code_mismatches"] for r in rep["layers"]) > 0


def test_link_latency_and_write_before_read(small):
    hw = small.derive(interconnect={"links": {"host_to_controller": {"latency_ns": 10.0, "gbps": 0.0},
                                              "bank_to_host": {"latency_ns": 7.0, "gbps": 0.0}}})
    T = 5
    res = Simulator(hw, random_trace(hw, T), values=False).run()
    assert set(res.step_latency_ps()) == {2 * (10_000 + 65_000 + 7_000)}
    cp = res.path.mean_breakdown(T)
    assert cp["link.host_to_controller"] == 2 * 10_000 and cp["link.bank_to_host"] == 2 * 7_000
    # latency without bandwidth limits holds no link: nothing busy, nothing waiting
    assert res.activity["link.host_to_controller"]["busy_ps"] == 0
    # each token is written (age 0) before the same step reads it, in every layer
    assert (res.write_ps[0] <= res.read_ps[0]).all()
    np.testing.assert_array_equal(res.read_ps[0] - res.layer_start_ps[0], 10_000 + 5_000)


def test_report_area(small):
    from gcsim.report import build_report

    hw = load_hardware("paper-gpt2")
    z = np.zeros((2, 12, 12, 64), np.float16)
    area = build_report(Simulator(hw, ArrayTrace(z, z, z), values=False).run())["area"]
    assert area["total_mm2"] == pytest.approx(12 * 12 * 0.5)      # paper: ~0.5 mm2 per head (calibration point)
    assert area["gain_cells"] == 12 * 12 * 2 * 16 * 64 * 64       # K and V arrays, 16 sub-tiles each
    assert area["gain_cells_mm2"] == pytest.approx(area["gain_cells"] * 1e-6)  # ~1 um2 per cell


def test_exact_agreement_with_refresh_restoring_ages(small):
    # periodic refresh rewrites slots, so a slot's age is no longer "read time - its token's
    # write"; validation hands the reference the ages the tiles saw
    hw = small.derive(numerics={"retention": {"tau_ns": 1000.0, "refresh": "periodic", "refresh_interval_ns": 300.0,
                                              "refresh_ns_per_subtile": 20.0}})
    rep = validate(hw, random_trace(hw, 30, seed=5), stage_steps=30)
    assert rep["pass"] and all(r["exact"]["code_mismatches"] == 0 for r in rep["layers"])


def test_reference_ages_equal_times(small):
    from gcsim.reference import ReferenceModelError, layer_attention

    tr = random_trace(small, 40, seed=6)
    q, k, v = tr.q[:, 0], tr.k[:, 0], tr.v[:, 0]
    hw = small.derive(numerics={"retention": {"tau_ns": 3000.0}})
    write = np.arange(40) * 90_000 + 5_000
    read = write + 1_000
    by_times = layer_attention(q, k, v, hw, write_times_ps=write, read_times_ps=read)
    M = hw.shape.window
    slot_token = np.array([t - ((t - np.arange(M)) % M) for t in range(40)])
    ages = read[:, None] - np.where(slot_token >= 0, write[np.maximum(slot_token, 0)], 0)
    by_ages = layer_attention(q, k, v, hw, ages_ps=ages)
    np.testing.assert_array_equal(by_times.out, by_ages.out)
    np.testing.assert_array_equal(by_times.S, by_ages.S)
    with pytest.raises(ReferenceModelError, match=r"ages_ps: expected shape \[40, 16\], found \[40, 15\]"):
        layer_attention(q, k, v, hw, ages_ps=ages[:, :15])


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m == "llama3-8b" else m   # 17 s busy
                                   for m in sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))])
def test_every_shipped_description_validates_exactly(model, tmp_path):
    hw = load_hardware(model)
    s = hw.shape
    write_synthetic(tmp_path / "t.gctrace", layers=s.layers, heads=s.heads, kv_heads=s.kv_heads, d_head=s.d_head,
                    steps=6, seed=1)
    rep = validate(hw, open_trace(tmp_path / "t.gctrace"), stage_steps=6)
    assert rep["pass"] and rep["witness"]["available"] and rep["ages_from"] == "witness", model
    assert all(c["pass"] and c["kind"].startswith(("exact", "counts exact")) and (c["compared"] or c["name"] == "stalls")
               for c in rep["witness"]["checks"]), model   # no stall anywhere (on both sides): nothing to compare


def test_gqa_pipelined_rounds(small):
    hw = small.derive(shape={"heads": 6, "kv_heads": 2}, periphery={"gqa_mapping": "pipelined"})
    T = 3
    res = Simulator(hw, random_trace(hw, T), values=False).run()
    # 3 rounds through K arrays -> V arrays -> counters, 15 ns each stage:
    # Q [0,15) [15,30) [30,45); V [15,30) [30,45) [45,60); count [30,45) [45,60) [60,75)
    assert set(np.ravel(res.layer_end_ps[0] - res.layer_start_ps[0])) == {5_000 + 75_000 + 10_000 + 5_000}
    cp = res.path.mean_breakdown(T)
    assert (cp["q_phase"], cp["v_phase"], cp["output_count"]) == (2 * 45_000, 2 * 15_000, 2 * 15_000)
    # heads of round r (2 per round) wait r x 15 ns for the K arrays, every step and layer
    stall = res.activity["L00.integrators"]["stall_causes_ps"]
    assert stall == {"K/V bank shared (GQA)": T * 2 * (15_000 + 30_000)}
    assert res.activity["L00.counters"]["busy_ps"] == T * 6 * 15_000
    assert res.activity["L00.tiles"]["busy_ps"] == T * 2 * (5_000 + 60_000)  # write, then K/V reads 0..60 ns
    # same energy as taking turns: the arrays are read once per query head either way
    turns = Simulator(small.derive(shape={"heads": 6, "kv_heads": 2}), random_trace(hw, T), values=False).run()
    assert res.ledger.total_pj() == pytest.approx(turns.ledger.total_pj())
    with pytest.raises(HardwareError, match="'pipelined' needs unshared output counters"):
        hw.derive(periphery={"counters_shared_by": 2})


def test_live_source_is_called_in_causal_order_and_matches_replay(small):
    # a source that serves a trace but records the call order: the chip's output of layer l
    # must come back before layer l + 1's inputs are asked for (a live model needs it)
    tr = random_trace(small, 3, seed=8)
    calls, outs = [], {}

    class Live:
        steps, model, scalers = tr.steps, tr.model, None

        def layer_inputs(self, seq, step, layer):
            calls.append(("in", step, layer))
            return tr.q[step, layer], tr.k[step, layer], tr.v[step, layer]

        def receive(self, seq, step, layer, out):
            calls.append(("out", step, layer))
            outs[step, layer] = out

    Simulator(small, Live()).run()
    assert calls == [(kind, t, l) for t in range(3) for l in range(2) for kind in ("in", "out")]
    replay = np.zeros((3, 2, 4, 8), np.float32)
    Simulator(small, tr, outputs=replay).run()
    for (t, l), out in outs.items():
        np.testing.assert_array_equal(out, replay[t, l])


def test_ring_buffer_counts_and_ages():
    from gcsim.ringbuffer import RingBuffer

    rb = RingBuffer(8, 4)
    for t in range(10):
        rb.write(t, 1000 * t)
    # after token 9 the 8 slots hold tokens 8, 9, 2..7: all valid, both sub-tiles active
    assert rb.token.tolist() == [8, 9, 2, 3, 4, 5, 6, 7]
    assert rb.counts(9) == (8, 2) and rb.oldest_slot(9) == 2
    np.testing.assert_array_equal(rb.ages_ps(9000), [1000, 0, 7000, 6000, 5000, 4000, 3000, 2000])
    fresh = RingBuffer(8, 4)
    for t in range(3):
        fresh.write(t, 0)
    assert fresh.counts(2) == (3, 1)
    fresh.write(6, 0)  # a gap: counts come from the mask (tokens 0..2 and 6 are all within 8)
    assert fresh.counts(6) == (4, 2) and fresh.valid(6).tolist() == [1, 1, 1, 0, 0, 0, 1, 0]
    assert fresh.restore(5000) == 4 and fresh.ages_ps(5000).tolist() == [0, 0, 0, 5000, 5000, 5000, 0, 5000]


def test_validate_catches_a_writer_stamping_10_us_early(small, monkeypatch):
    # a simulator bug the values alone would not see if the reference were given the
    # simulator's own ages: the arrays record each write 10 us before it happened. The
    # reference is given the witness's ages (5 ns into each 65 ns layer step), so (a) sees the
    # extra decay, and the witness's times and ages checks name the write.
    hw = small.derive(numerics={"retention": {"tau_ns": 500.0}})
    tr = random_trace(hw, 12, seed=2)
    assert validate(hw, tr, stage_steps=12)["pass"]
    from gcsim import ringbuffer
    honest = ringbuffer.RingBuffer.write
    monkeypatch.setattr(ringbuffer.RingBuffer, "write",
                        lambda self, t, time_ps, k=None, v=None: honest(self, t, time_ps - 10_000_000, k, v))
    rep = validate(hw, tr, stage_steps=12)
    assert not rep["pass"] and not all(r["pass"] for r in rep["layers"])   # (a): ages from the witness
    checks = {c["name"]: c for c in rep["witness"]["checks"]}
    assert "write end of sequence 0 step 0 layer 0: simulator -9995000 ps, witness 5000 ps" in checks["times"]["first"]
    assert checks["ages"]["first"] == ["sequence 0 step 0 layer 0 slot 0: simulator 10000000 ps, witness 0 ps"]   # its own token


def test_validate_catches_a_late_writer_under_contention(monkeypatch):
    # several sequences: the witness's times, and the invariants, catch a write stamped after its own read
    hw = load_hardware("stall-multiseq").derive(shape={"layers": 2, "heads": 4, "kv_heads": 4, "d_head": 8,
                                                       "window": 16, "array_size": 8})
    tr = random_trace(hw, 6, seed=3)
    rep = validate(hw, tr, stage_steps=6)
    assert rep["pass"] and rep["invariants"]["mode"] == "invariants" and rep["witness"]["available"]
    from gcsim import ringbuffer
    honest = ringbuffer.RingBuffer.write
    monkeypatch.setattr(ringbuffer.RingBuffer, "write",
                        lambda self, t, time_ps, k=None, v=None: honest(self, t, time_ps + 10_000_000, k, v))
    rep = validate(hw, tr, stage_steps=6)
    assert not rep["pass"] and any("before its write ended" in v for v in rep["invariants"]["violations"])
    assert any("negative age" in v for v in rep["invariants"]["violations"])
    assert not {c["name"]: c for c in rep["witness"]["checks"]}["times"]["pass"]


def test_resource_never_serves_two_at_once_is_checked():
    from gcsim.sim.schedule import check

    hw = load_hardware("stall-link")
    z = np.zeros((3, 12, 12, 64), np.float16)
    res = Simulator(hw, ArrayTrace(z, z, z), values=False, check=True).run()
    assert check(res)["pass"] and res.resources["link.bank_to_host"]
    res.resources["link.bank_to_host"].append((0, 10**9))   # a corrupted record: caught
    assert "link.bank_to_host serves" in check(res)["violations"][0]


def test_simulator_against_the_naive_loop_oracle():
    # tests/naive.py restates docs/paper-model.md section 2 with loops, the cell law per cell and the age
    # of token u at step t as (t - u) x the token period; one layer of one head: 65 ns
    from naive import naive_head

    hw = load_hardware().derive(shape={"layers": 1, "heads": 1, "kv_heads": 1, "d_head": 8, "window": 16,
                                       "array_size": 8},
                                numerics={"dtype": "float64", "retention": {"tau_ns": 800.0}},
                                costs={"model": "table"})  # the paper's 65 ns as written
    T = 40
    tr = random_trace(hw, T, seed=11)
    seen = {}
    Simulator(hw, tr, stages_hook=lambda seq, t, l, ages, S, phi, codes, out: seen.__setitem__(
        t, (S.reshape(-1).copy(), codes.reshape(2, 8).copy(), out.reshape(-1).copy()))).run()
    S, phi, sub, out = naive_head(tr.q[:, 0, 0], tr.k[:, 0, 0], tr.v[:, 0, 0], M=16, a=8, period_ns=65.0, tau_ns=800.0)
    for t in range(T):
        np.testing.assert_allclose(seen[t][0], S[t], rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(seen[t][1], sub[t])
        np.testing.assert_allclose(seen[t][2], out[t], rtol=1e-12, atol=1e-12)


def test_static_power_and_the_v_phase_by_hand():
    """paper-gpt2's layer step is write 5 + Q 15 + V 15 + count 15 + adder tree 10 + routing
    5 = 65 ns; 3 steps of 12 layers, one sequence, no host time: 2340 ns. 5 mW of static
    power on the chip over it: 5e-3 W x 2.34e-6 s = 11.7 nJ. A V phase of 20 ns makes a
    layer step 70 ns: 3 x 12 x 70 = 2520 ns, 840 ns a step."""
    hw = load_hardware("paper-gpt2").derive(energy={"static_mw": {"chip": 5.0}})
    res = Simulator(hw, random_trace(hw, 3, seed=0), values=False).run()
    assert res.elapsed_ps == 2_340_000 and res.ledger.static_pj == {"chip": pytest.approx(11_700, rel=1e-12)}
    slow_v = load_hardware("paper-gpt2").derive(timing={"phases_ns": {"v_phase": 20.0}})
    res = Simulator(slow_v, random_trace(slow_v, 3, seed=0), values=False).run()
    assert list(res.step_end_ps[0]) == [840_000, 1_680_000, 2_520_000]


def test_a_refresh_rewrites_every_gqa_copy_by_hand():
    """One layer of 4 query heads on 2 K/V heads (d 8), replicated: 2 x 2 = 4 banks. Steps of
    65 ns: step 1's V phase ends at 100 ns, when the refresh falls due; it rewrites the 2 valid
    slots (1 sub-tile, 40 ns) in [100, 140), so step 2's write waits for the DACs until 140
    and the step ends at 205. Counted: a K column and a V row read per bank and slot, 4 x 2 = 8
    each, and 2 x d 8 cells per bank and slot written, 2 x 8 x 4 x 2 = 128 DAC writes."""
    hw = load_hardware("paper-gpt2").derive(
        shape={"layers": 1, "heads": 4, "kv_heads": 2, "d_head": 8, "window": 16, "array_size": 8},
        costs={"model": "table"}, periphery={"gqa_mapping": "replicated"},
        numerics={"retention": {"tau_ns": 1.0e5, "refresh": "periodic", "refresh_interval_ns": 100.0,
                                "refresh_ns_per_subtile": 40.0}})
    res = Simulator(hw, random_trace(hw, 3, seed=0), values=False).run()
    assert list(res.step_end_ps[0]) == [65_000, 130_000, 205_000]
    counts = {a: int(n.sum()) for (c, a), n in res.ledger.counts.items() if c == "L00.refresh"}
    assert counts == {"k_column_read": 8, "v_row_read": 8, "kv_write_dac": 128}


def test_a_periphery_bank_shared_by_layers_pays_its_switch_by_hand():
    """Two layers of paper-gpt2 (65 ns each) on one periphery bank, switch 3 cycles of 1 ns:
    the bank switches before every round of another layer than it served last, none before
    its first: step 0 ends at 65 + 3 + 65 = 133 ns, step 1 at 133 + 2 x (3 + 65) = 269 ns."""
    hw = load_hardware("paper-gpt2").derive(shape={"layers": 2},
                                            periphery={"counters_shared_by_layers": 2, "switch_cycles": 3})
    res = Simulator(hw, random_trace(hw, 2, seed=0), values=False).run()
    assert list(res.step_end_ps[0]) == [133_000, 269_000]


def test_pipelined_gqa_waits_for_the_v_arrays_by_hand():
    """One layer of 4 query heads on 2 K/V heads (d 8), pipelined, V phase 20 ns: write
    [0, 5); round 0 (one head per bank) Q [5, 20), V [20, 40); round 1 gets the K arrays at
    round 0's Q end, Q [20, 35) (its 2 heads waited 15 ns each for the bank), then waits for
    the V arrays until 40 (5 ns each), V [40, 60); counts [40, 55) and [60, 75), adder tree
    [75, 85), routing [85, 90)."""
    hw = load_hardware("paper-gpt2").derive(
        shape={"layers": 1, "heads": 4, "kv_heads": 2, "d_head": 8, "window": 16, "array_size": 8},
        costs={"model": "table"}, periphery={"gqa_mapping": "pipelined"}, timing={"phases_ns": {"v_phase": 20.0}})
    res = Simulator(hw, random_trace(hw, 1, seed=0), values=False).run()
    assert list(res.step_end_ps[0]) == [90_000]
    assert res.activity["L00.integrators"]["stall_causes_ps"] == {"K/V bank shared (GQA)": 2 * 15_000,
                                                                  "V arrays busy (GQA pipeline)": 2 * 5_000}
