"""gcsim sweep, mode eval: each point evaluates the chip-trained GPT with the point's chip in
its loop. Its figures against what `gcsim eval` writes in eval.json for the same description,
hand-calculated costs, the cache key (weights and text checksums), failures, the spec's
checks, the example and the plots."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gcsim.chipmodel.data import read_corpus, split_text
from gcsim.cli import main as cli
from gcsim.sweeps import load_spec
from gcsim.sweeps.runner import run_sweep
from test_sweep import assert_bad_spec

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = split_text(read_corpus())[1]


def spec(tmp_path, name="spec.yaml", **over):
    data = {"mode": "eval", "eval": {"start": 1000, "chars": 129, "window": 64, "windows": 2},
            "axes": [{"grid": {"numerics.cell_law": ["linear", "cubic"]}}]}
    data.update(over)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rows(out):
    with open(Path(out) / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_points_equal_gcsim_eval_on_the_same_description(tmp_path, capsys):
    """The sweep's figures for each cell law against the simulator-in-the-loop row that
    `gcsim eval --set numerics.cell_law=LAW` writes over the same characters; latency 4 layers
    x 65 ns (models/chipgpt.yaml); a rerun takes both points from the cache."""
    path, out, cache = spec(tmp_path), tmp_path / "out", tmp_path / "cache"
    assert cli(["sweep", str(path), "-o", str(out), "--cache", str(cache), "-j", "2", "--no-progress"]) == 0
    assert "2 computed, 0 from the cache" in capsys.readouterr().out
    table = rows(out)
    assert [r["numerics.cell_law"] for r in table] == ["linear", "cubic"]
    assert {r["trace"] for r in table} == {"held-out tiny-shakespeare[1000:1129]"}
    text = tmp_path / "excerpt.txt"
    text.write_text(HELD_OUT[1000:1129], encoding="utf-8")
    for r in table:
        law = r["numerics.cell_law"]
        ev = tmp_path / f"eval-{law}"
        assert cli(["eval", "--text", str(text), "--window", "64", "--windows", "2", "--sim-windows", "2",
                    "--sensitivity-windows", "0", "--set", f"numerics.cell_law={law}", "--no-progress",
                    "-o", str(ev)]) == 0
        sim = [v for v in json.loads((ev / "eval.json").read_text())["rows"] if v["kind"] == "simulator"][0]
        assert r["status"] == "ok" and int(r["tokens"]) == sim["tokens"] == 128 and int(r["windows"]) == 2
        # the software model's float32 matmuls over a whole window may sum in another order
        # here (BLAS threads) than in the sweep's workers (one thread each): KL to 1e-5
        assert float(r["perplexity"]) == pytest.approx(sim["perplexity"], rel=1e-9)
        assert float(r["top1_agreement"]) == sim["top1_agreement"]
        assert float(r["kl"]) == pytest.approx(sim["kl"], rel=1e-5)
        # cost: the report's figures (build_report, merged over windows) against the eval
        # command's per-step means, and the hand calculation
        assert float(r["latency_per_token_ns"]) == sim["latency_ns_per_token"] == 4 * 65.0
        assert float(r["energy_per_token_pj"]) / 1000 == pytest.approx(sim["energy_nj_per_token"], rel=1e-12)
        assert int(r["steps"]) == 128 and float(r["elapsed_ns"]) == 2 * 64 * 260.0
        assert float(r["throughput_tokens_per_s"]) == pytest.approx(1e9 / 260.0)
    # the model as trained (cubic, window 256) on the chip: the simulator agrees with it
    cubic, linear = table[1], table[0]
    assert float(cubic["top1_agreement"]) == 1.0 and float(cubic["kl"]) < 1e-9
    assert float(linear["kl"]) > 1e-3 and float(linear["perplexity"]) != float(cubic["perplexity"])
    first = (out / "results.csv").read_bytes()
    assert cli(["sweep", str(path), "-o", str(out), "--cache", str(cache), "--no-progress"]) == 0
    assert "0 computed, 2 from the cache" in capsys.readouterr().out
    assert (out / "results.csv").read_bytes() == first


@pytest.mark.slow
def test_cache_key_holds_the_weights_and_text_checksums(tmp_path):
    """Changing the bytes of the weights file or of the text, at the same path, computes the
    points again."""
    from gcsim.chipmodel.weights import SHIPPED, load_weights, save_weights
    w = load_weights("chip")
    weights = tmp_path / "w.npz"
    save_weights(weights, w.params, w.cfg, w.vocab, w.meta)
    text = tmp_path / "t.txt"
    text.write_text(HELD_OUT[:200], encoding="utf-8")
    ev = {"lm": str(weights), "text": str(text), "window": 64, "windows": 1}
    path, cache = spec(tmp_path, eval=ev), tmp_path / "cache"
    first = run_sweep(path, cache=cache, jobs=1)
    assert first.counts["computed"] == 2 and first.counts["ok"] == 2
    assert run_sweep(path, cache=cache, jobs=1).counts["computed"] == 0
    params = dict(w.params)
    name = next(k for k in params if ".w_" in k)
    params[name] = params[name] * 1.01
    save_weights(weights, params, w.cfg, w.vocab, w.meta)               # same path, other weights
    again = run_sweep(path, cache=cache, jobs=1)
    assert again.counts["computed"] == 2
    assert [r["perplexity"] for r in again.rows] != [r["perplexity"] for r in first.rows]
    text.write_text(HELD_OUT[1:201], encoding="utf-8")                   # same path, other text
    assert run_sweep(path, cache=cache, jobs=1).counts["computed"] == 2
    assert SHIPPED["chip"].exists()


@pytest.mark.slow
def test_failing_point_is_recorded_and_the_others_go_on(tmp_path, capsys, monkeypatch):
    """A worker that finds another text than the one planned fails that point (exit 4); the
    failure is cached, not retried, until --retry-failed."""
    from gcsim.sweeps import backends
    real = backends.run_local

    def other_text_for_point_1(tasks, jobs, **kw):
        tasks = [(i, {**t, "eval": {**t["eval"], "text_sha256": "0" * 64}} if i == 1 else t) for i, t in tasks]
        return real(tasks, jobs, **kw)

    monkeypatch.setattr(backends, "run_local", other_text_for_point_1)
    path, out, cache = spec(tmp_path), tmp_path / "out", tmp_path / "cache"
    assert cli(["sweep", str(path), "-o", str(out), "--cache", str(cache), "-j", "2", "--no-progress"]) == 4
    assert "point 1 failed: ValueError: the evaluation text on this worker differs" in capsys.readouterr().out
    table = rows(out)
    assert [r["status"] for r in table] == ["ok", "failed"] and table[1]["perplexity"] == ""
    assert float(table[0]["perplexity"]) > 1
    monkeypatch.setattr(backends, "run_local", real)
    assert run_sweep(path, cache=cache, jobs=1).counts["failed"] == 1
    res = run_sweep(path, cache=cache, jobs=1, retry_failed=True)
    assert res.counts["computed"] == 1 and res.counts["failed"] == 0


def test_reference_chip_gives_accuracy_without_cost(tmp_path):
    """chip: reference runs the numeric model (no timing): its linear point equals the
    'reference, linear law' row of gcsim eval (default description, cubic) over the same text."""
    path = spec(tmp_path, eval={"start": 1000, "chars": 129, "window": 64, "windows": 2, "chip": "reference"})
    res = run_sweep(path, cache=tmp_path / "c", jobs=1)
    linear = res.rows[0]
    assert linear["status"] == "ok" and "latency_per_token_ns" not in res.columns
    text = tmp_path / "excerpt.txt"
    text.write_text(HELD_OUT[1000:1129], encoding="utf-8")
    assert cli(["eval", "--text", str(text), "--window", "64", "--windows", "2", "--sim-windows", "0",
                "--sensitivity-windows", "0", "--no-progress", "-o", str(tmp_path / "ev")]) == 0
    ref = [v for v in json.loads((tmp_path / "ev" / "eval.json").read_text())["rows"]
           if v["kind"] == "reference" and v["law"] == "linear"][0]
    # whole-window float32 matmuls here with BLAS threads, in the worker with one: to 1e-6
    assert linear["perplexity"] == pytest.approx(ref["perplexity"], rel=1e-6)
    assert linear["top1_agreement"] == ref["top1_agreement"] and linear["kl"] == pytest.approx(ref["kl"], rel=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"traces": [{"synthetic": {"steps": 4}}]}, "field 'traces': not used in eval mode"),
    ({"steps": 10}, "field 'steps': not used in eval mode"),
    ({"mode": "functional"}, "field 'eval': only for mode: eval (mode is functional)"),
    ({"eval": {"colour": 1}}, "field 'eval.colour': expected one of ['lm'"),
    ({"eval": {"window": 300}}, "field 'eval.window': expected at most the model's context, 256 tokens, found 300"),
    ({"eval": {"chars": 50, "window": 64}}, "field 'eval.chars': the excerpt has 50 tokens; one window of 64 needs 65"),
    ({"eval": {"lm": "nope.npz"}}, "field 'eval.lm': "),
    ({"eval": {"text": "nope.txt"}}, "field 'eval.text': "),
    ({"eval": {"chip": "fpga"}}, "field 'eval.chip': expected one of ['simulator', 'reference']"),
    ({"eval": {"chip_layers": [4]}}, "field 'eval.chip_layers': expected 'all' or a list of layer numbers in 0..3"),
])
def test_bad_eval_spec_is_one_line_exit_2(tmp_path, capsys, change, message):
    assert_bad_spec(spec(tmp_path, **change), tmp_path, capsys, message)


def test_a_shape_the_model_lacks_is_skipped(tmp_path):
    s = load_spec(spec(tmp_path, axes=[{"grid": {"shape.heads": [2, 4], "shape.kv_heads": [2]}}]))
    res = run_sweep(s, cache=tmp_path / "c", jobs=1)
    assert [r["status"] for r in res.rows] == ["ok", "skipped"]
    assert res.rows[1]["error"] == "model does not fit: shape.heads is 4, the model has 2"


@pytest.mark.slow
def test_the_example_in_small_form_and_its_plots(tmp_path):
    """examples/sweep_eval_window_law.yaml with one window of 128 characters: a chip window of
    64 forgets the oldest tokens (KL > 0 even with the cubic law the model was trained with);
    128 holds the whole window, so cubic is the model as trained. The K-array energy per head
    and full-window token is 64 x 1.09375 = 70 pJ per sub-tile (models/paper-gpt2.yaml)."""
    data = yaml.safe_load((ROOT / "examples" / "sweep_eval_window_law.yaml").read_text())
    data["eval"].update(window=128, windows=1)
    data["axes"][0]["grid"]["shape.window"] = [64, 128]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert cli(["sweep", str(path), "-o", str(out), "--cache", str(tmp_path / "c"), "-j", "2", "--no-progress"]) == 0
    by = {(int(r["shape.window"]), r["numerics.cell_law"]): r for r in rows(out)}
    assert set(by) == {(64, "linear"), (64, "cubic"), (128, "linear"), (128, "cubic")}
    assert float(by[128, "cubic"]["kl"]) < 1e-9 and float(by[128, "cubic"]["top1_agreement"]) == 1.0
    assert float(by[64, "cubic"]["kl"]) > 1e-4
    for (window, _), r in by.items():
        assert float(r["energy_item.phi_qk_pj"]) == 70.0 * window / 64
        assert int(r["full_window_steps"]) == 128 - window + 1
    pytest.importorskip("matplotlib")
    assert cli(["sweep", "plot", str(out)]) == 0
    for name in ("pareto.png", "axis-shape.window.png", "axis-numerics.cell_law.png"):
        assert (out / name).stat().st_size > 1000


def test_axis_charts_of_an_eval_sweep_show_perplexity():
    from gcsim.sweeps.plot import chart_metrics
    cost = [{"latency_per_token_ns": 260.0, "energy_per_token_pj": 1.0, "perplexity": 12.0}]
    assert [m[0] for m in chart_metrics("eval", cost)] == ["latency_per_token_ns", "energy_per_token_pj",
                                                          "perplexity", "top1_agreement"]
    assert [m[0] for m in chart_metrics("eval", [{"perplexity": 12.0}])] == ["perplexity", "top1_agreement"]
    assert [m[0] for m in chart_metrics("functional", [{**cost[0], "out_rel_rmse_vs_softmax": 0.5}])] == \
        ["latency_per_token_ns", "energy_per_token_pj", "out_rel_rmse_vs_softmax"]


def test_merge_windows_by_hand():
    from gcsim.sweeps.evalpoint import merge_windows
    a = {"steps": 4, "sequences": 1, "elapsed_ns": 400.0, "latency_per_token_ns": 100.0,
         "latency_per_token_ns_max": 120.0, "energy_per_token_pj": 10.0, "full_window_steps": 1,
         "throughput_tokens_per_s": 1e7, "area_mm2": 2.0}
    b = {**a, "elapsed_ns": 1200.0, "latency_per_token_ns": 300.0, "latency_per_token_ns_max": 310.0,
         "energy_per_token_pj": 30.0, "throughput_tokens_per_s": 4 / 1.2e-6}
    m = merge_windows([a, b])
    assert m["steps"] == 8 and m["elapsed_ns"] == 1600.0 and m["full_window_steps"] == 2
    assert m["latency_per_token_ns"] == 200.0 and m["latency_per_token_ns_max"] == 310.0
    assert m["energy_per_token_pj"] == 20.0 and m["area_mm2"] == 2.0
    assert m["throughput_tokens_per_s"] == pytest.approx(8 / 1.6e-6)
    assert np.isclose(m["throughput_tokens_per_s"], 5e6)


@pytest.mark.slow
def test_noise_example_in_small_form_equals_gcsim_eval_sigma_list(tmp_path):
    """examples/sweep_eval_noise.yaml on 2 windows of 64 characters: a sigma axis over a
    description field (numerics.noise.read_sigma_rel) on the numeric reference gives what
    `gcsim eval --read-sigma` writes in eval.json's noise_sweep; the simulator in the loop
    draws the same noise (its perplexity within float32 of the reference's); sigma 0 is the
    model as trained."""
    data = yaml.safe_load((ROOT / "examples" / "sweep_eval_noise.yaml").read_text())
    data["eval"].update(start=1000, chars=129, window=64, windows=2, chip="reference")
    data["axes"] = [{"grid": {"numerics.noise.read_sigma_rel": [0.0, 0.1]}}]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    ref = run_sweep(path, cache=tmp_path / "c", jobs=2).rows
    data["eval"]["chip"] = "simulator"
    path.write_text(yaml.safe_dump(data))
    sim = run_sweep(path, cache=tmp_path / "c", jobs=2).rows
    assert [r["status"] for r in ref + sim] == ["ok"] * 4
    assert ref[0]["kl"] < 1e-9 and ref[0]["top1_agreement"] == 1.0
    assert ref[1]["kl"] > 1e-4 and ref[1]["perplexity"] != ref[0]["perplexity"]
    for r, s in zip(ref, sim):
        assert s["perplexity"] == pytest.approx(r["perplexity"], rel=1e-4)
        assert s["latency_per_token_ns"] == 260.0
    text = tmp_path / "excerpt.txt"
    text.write_text(HELD_OUT[1000:1129], encoding="utf-8")
    assert cli(["eval", "--text", str(text), "--window", "64", "--windows", "2", "--sim-windows", "0",
                "--sensitivity-windows", "0", "--read-sigma", "0.1", "--noise-seed", "0", "--noise-windows", "2",
                "--no-progress", "-o", str(tmp_path / "ev")]) == 0
    point, = json.loads((tmp_path / "ev" / "eval.json").read_text())["noise_sweep"]["read_sigma_rel"]
    assert point["sigma"] == 0.1
    assert ref[1]["perplexity"] == pytest.approx(point["perplexity"], rel=1e-6)
    assert ref[1]["top1_agreement"] == point["top1_agreement"]
    assert ref[1]["kl"] == pytest.approx(point["kl"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.model
def test_smollm2_eval_sweep_equals_gcsim_eval(tmp_path):
    """SmolLM2 (where its weights are installed) with layer 2 on the chip, scalers calibrated
    on the window as gcsim eval does: the sweep's cubic point against eval.json's simulator row."""
    from weights import weights_missing
    if weights_missing():
        pytest.skip(weights_missing())
    text = tmp_path / "t.txt"
    text.write_text(HELD_OUT[:400], encoding="utf-8")
    path = spec(tmp_path, eval={"lm": "smollm2", "text": str(text), "window": 32, "windows": 1,
                                "chip_layers": [2]}, axes=[{"grid": {"numerics.cell_law": ["cubic"]}}])
    row, = run_sweep(path, cache=tmp_path / "c", jobs=1).rows
    assert row["status"] == "ok", row["error"]
    assert cli(["eval", "--lm", "smollm2", "--text", str(text), "--window", "32", "--windows", "1",
                "--sim-windows", "1", "--chip-layers", "2", "--sensitivity-windows", "0", "--no-progress",
                "-o", str(tmp_path / "ev")]) == 0
    sim = [v for v in json.loads((tmp_path / "ev" / "eval.json").read_text())["rows"] if v["kind"] == "simulator"][0]
    assert row["tokens"] == sim["tokens"] == 32
    assert row["perplexity"] == pytest.approx(sim["perplexity"], rel=1e-5)
    assert row["top1_agreement"] == sim["top1_agreement"]
    assert row["latency_per_token_ns"] == sim["latency_ns_per_token"]
