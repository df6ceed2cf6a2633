"""gcsim.simulate: the simulator's Python API, its explicit calibration and its result."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gcsim
from gcsim.readback import SEAL
from gcsim.resources import DEFAULT_TRACE
from gcsim.sim import ArrayTrace
from gcsim.traces.calibrate import calibrate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shipped():
    return gcsim.simulate(DEFAULT_TRACE, "smollm2", steps=6)


def test_latency_is_the_hand_calculation(shipped):
    # SmolLM2 on time-multiplexed GQA (docs/simulator.md): write 5 + 3 rounds x (15 + 15 + 15)
    # + adder tree 10 + routing 5 = 155 ns per layer, 30 layers per token
    assert shipped.calibration == "trace"
    np.testing.assert_array_equal(shipped.layer_latency_ns, np.full((6, 30), 155.0))
    np.testing.assert_array_equal(shipped.token_latency_ns, np.full((1, 6), 30 * 155.0))
    assert shipped.throughput_tokens_per_s == pytest.approx(1e9 / 4650)
    # 2 further query heads per K/V bank wait 45 and 90 ns each: 3 banks x 30 layers x 6 steps
    assert shipped.stalls_ns == {"integrators: K/V bank shared (GQA)": pytest.approx(6 * 30 * 3 * (45 + 90))}


def test_to_json_never_replaces_a_file_it_did_not_write(shipped, tmp_path):
    """A user's file at the path is refused (nothing written), the method's own earlier file
    is replaced, an edited one is refused again, and force=True replaces anything."""
    mine = tmp_path / "notes.json"
    mine.write_text("mine\n")
    with pytest.raises(gcsim.GcsimError, match="not a simulation result gcsim wrote"):
        shipped.to_json(mine)
    assert mine.read_text() == "mine\n"
    ours = tmp_path / "r.json"
    shipped.to_json(ours)
    shipped.to_json(ours)                       # its own file: replaced
    ours.write_text(ours.read_text().replace("4650.0", "1.0"))
    with pytest.raises(gcsim.GcsimError):
        shipped.to_json(ours)                   # changed since: not gcsim's any more
    shipped.to_json(mine, force=True)
    assert json.loads(mine.read_text())["token_latency_ns"] == [[4650.0] * 6]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json", "r.json"]   # no temporaries left


def test_energy_views_add_up(shipped):
    total = shipped.energy_total_pj
    assert sum(shipped.energy_by_action_pj.values()) == pytest.approx(total, rel=1e-12)
    assert sum(shipped.energy_by_component_pj.values()) == pytest.approx(total, rel=1e-12)
    assert shipped.energy_per_token_pj.sum() == pytest.approx(total, rel=1e-12)
    assert shipped.outputs.shape == (6, 30, 9, 64) and np.abs(shipped.outputs).sum() > 0


def test_to_json_round_trips(shipped, tmp_path):
    data = json.loads(shipped.to_json(tmp_path / "r.json"))
    written = json.loads((tmp_path / "r.json").read_text())
    assert written.pop("gcsim_output") == "simulation result"
    assert data == {k: v for k, v in written.items() if k in data} and set(written) - set(data) == {SEAL}
    assert data["token_latency_ns"] == [[4650.0] * 6] and "outputs" not in data
    assert data["provenance"]["calibration"] == "trace" and data["report"]["schema"] == "gcsim.report/2"
    assert len(shipped.to_dict(outputs=True)["outputs"]) == 6


def test_an_in_memory_trace_without_scalers_is_calibrated_not_defaulted():
    rng = np.random.default_rng(3)
    q, k, v = (rng.normal(0.2, 1.5, (5, 2, 4, 8)) for _ in range(3))
    hw = gcsim.load_hardware("paper-gpt2").derive(shape={"layers": 2, "heads": 4, "kv_heads": 4, "d_head": 8,
                                                        "window": 64, "array_size": 8})
    cal = gcsim.simulate(ArrayTrace(q, k, v), hw)
    assert cal.calibration == "calibrated"
    scalers, _ = calibrate(q, k, v, q_range=hw.numerics.q_range, kv_range=hw.numerics.kv_range_v)
    given = gcsim.simulate(ArrayTrace(q, k, v), hw, scalers=scalers)
    assert given.calibration == "given"
    np.testing.assert_array_equal(cal.outputs, given.outputs)
    dflt = gcsim.simulate(ArrayTrace(q, k, v), hw, scalers="defaults")
    assert dflt.calibration == "defaults" and not np.array_equal(dflt.outputs, cal.outputs)
    with pytest.raises(ValueError, match="expected a dict, 'calibrate' or 'defaults'"):
        gcsim.simulate(ArrayTrace(q, k, v), hw, scalers="paper")
    with pytest.raises(gcsim.GcsimError, match="expected a .gctrace path"):
        gcsim.simulate(42, hw)


@pytest.mark.slow   # writes a 1,100-step synthetic GPT-2 trace for the window what-if (30 s busy)
def test_notebook_example_runs():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "simulator_api.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "smollm2: 41 steps, scalers from the trace" in res.stdout
    assert "calibrated: mean |out|" in res.stdout and "defaults: mean |out|" in res.stdout
    # the window what-if at a full window: the paper's 0.8856 uJ per token at 1024 (65 ns per layer);
    # at 256, 144 heads x 2566.33 pJ (docs/cost-model.md, worked examples) and a 2-level adder tree
    assert "window  1024: 65 ns per layer, 885.6 nJ per token at a full window" in res.stdout
    assert "window   256: 60 ns per layer, 369.6 nJ per token at a full window" in res.stdout
