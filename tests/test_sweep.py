"""gcsim sweep: spec expansion and constraints, table values against hand calculations,
caching, failures, resume after a killed worker or an interrupted sweep, local vs Ray."""
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from gcsim.cli import main as cli
from gcsim.sweeps import SpecError, load_spec, sweep
from gcsim.sweeps.runner import run_sweep

ROOT = Path(__file__).resolve().parent.parent

# 2 layers x 4 heads of the paper's GPT-2 tile, so points take milliseconds
SMALL = {"shape.layers": 2, "shape.heads": 4, "shape.kv_heads": 4}


def spec(tmp_path, **over):
    data = {"hardware": "paper-gpt2", "set": dict(SMALL), "traces": [{"synthetic": {"steps": 70, "seed": 0}}],
            "mode": "timing-only", "axes": [{"grid": {"periphery.counters_shared_by": [1, 2, 4]}}]}
    data.update(over)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rows(out):
    with open(Path(out) / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


# --- the spec ----------------------------------------------------------------------------

def test_axes_grid_zip_random_and_constraints(tmp_path):
    s = load_spec(spec(tmp_path, axes=[
        {"grid": {"shape.window": [64, 96, 128], "numerics.cell_law": ["linear", "cubic"]}},
        {"zip": {"timing.host_ns_per_layer": [0.0, 10.0], "interconnect.links.bank_to_host.gbps": [0.0, 64.0]}},
        {"random": {"samples": 3, "seed": 7, "fields": {"numerics.s_sat": {"uniform": [40, 160]},
                                                        "periphery.host_engines": {"randint": [1, 3]}}}}],
        constraints=[{"require": "shape.window % shape.array_size == 0", "reason": "whole sub-tiles"}]))
    pts = s.points()
    assert len(pts) == 3 * 2 * 2 * 3                               # grid x zip x random
    assert s.fields == ["shape.window", "numerics.cell_law", "timing.host_ns_per_layer",
                        "interconnect.links.bank_to_host.gbps", "numerics.s_sat", "periphery.host_engines"]
    zipped = {(p.values["timing.host_ns_per_layer"], p.values["interconnect.links.bank_to_host.gbps"]) for p in pts}
    assert zipped == {(0.0, 0.0), (10.0, 64.0)}                   # zipped, not crossed
    skipped = [p for p in pts if p.skip_reason]
    assert {p.values["shape.window"] for p in skipped} == {96} and len(skipped) == 12
    assert all(p.skip_reason == "whole sub-tiles" for p in skipped)
    ok = [p for p in pts if not p.skip_reason]
    assert all(p.hardware.shape.window == p.values["shape.window"] for p in ok)
    assert all(p.hardware.interconnect.links["bank_to_host"].gbps == p.values["interconnect.links.bank_to_host.gbps"]
               for p in ok)
    # random samples: reproducible with the seed, inside their ranges, integers for randint
    s_sat = [p.values["numerics.s_sat"] for p in pts[:3]]
    again = load_spec(spec(tmp_path, axes=[{"random": {"samples": 3, "seed": 7, "fields": {
        "numerics.s_sat": {"uniform": [40, 160]}, "periphery.host_engines": {"randint": [1, 3]}}}}])).points()
    assert [p.values["numerics.s_sat"] for p in again] == s_sat
    assert all(40 <= v <= 160 for v in s_sat)
    assert all(isinstance(p.values["periphery.host_engines"], int) and 1 <= p.values["periphery.host_engines"] <= 3
               for p in pts)


def test_point_the_validator_rejects_is_skipped_with_its_reason(tmp_path):
    pts = load_spec(spec(tmp_path, axes=[{"grid": {"periphery.counters_shared_by": [2, 3]}}])).points()
    assert pts[0].skip_reason is None
    assert pts[1].skip_reason == ("invalid description: field 'periphery.counters_shared_by': 3 does not "
                                  "divide heads = 4")


@pytest.mark.parametrize("change, message", [
    ({"axes": [{"grid": {"shape.windw": [64]}}]}, "field 'axes[0].grid.shape.windw': 'shape.windw' is not a field"),
    ({"axes": [{"zip": {"shape.window": [64, 128], "shape.array_size": [64]}}]}, "zipped lists must have the same length"),
    ({"axes": [{"grid": {"shape.window": 64}}]}, "field 'axes[0].grid.shape.window': expected a non-empty list"),
    ({"axes": [{"random": {"samples": 2, "fields": {"numerics.s_sat": {"normal": [0, 1]}}}}]},
     "field 'axes[0].random.fields.numerics.s_sat': expected one of {uniform"),
    ({"constraints": [{"require": "shape.windw > 0"}]}, "unknown field 'shape.windw'"),
    ({"constraints": [{"require": "__import__('os')"}]}, "unsupported expression"),
    ({"mode": "fast"}, "field 'mode': expected one of ['timing-only', 'functional', 'validate', 'eval']"),
    ({"traces": [{"path": "nope.gctrace"}]}, "field 'traces[0].path': trace"),
    ({"colour": 1}, "unknown field 'colour'"),
])
def test_bad_spec_is_one_line_exit_2(tmp_path, capsys, change, message):
    assert_bad_spec(spec(tmp_path, **change), tmp_path, capsys, message)


def assert_bad_spec(path, tmp_path, capsys, message):
    """A bad spec: refused at load, one line naming the field, exit 2, nothing written."""
    with pytest.raises(SpecError, match="spec.yaml"):
        load_spec(path)
    assert cli(["sweep", str(path), "-o", str(tmp_path / "out"), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# --- values, caching, failures --------------------------------------------------------------

def test_table_values_against_hand_calculation_and_cache(tmp_path, capsys):
    """Counters shared by n heads take n turns of 15 ns: 65 + (n - 1) x 15 ns per layer
    (docs/simulator.md). Window 64 = one sub-tile; on full-window steps a head costs
    64 x 1.09375 = 70 pJ of phi(Q.K^T) and 2 x 64 x 0.578125 + 64 x 0.25 = 90 pJ of DACs
    (models/paper-gpt2.yaml, costs.model: table so the table applies as written). Area per
    head (gcsim/costs.py): 2 x 64 x 64 cells of 1 um2 + one sub-tile's periphery
    0.8 x (0.5 - 0.131072) / 16 + the head's 0.2 x (0.5 - 0.131072) mm2, less the output counters
    that sharing saves (a quarter of a sub-tile's periphery per set: 4 sets per layer, 4 / n shared)."""
    path = spec(tmp_path, set={**SMALL, "shape.window": 64, "costs.model": "table"})
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert cli(["sweep", str(path), "-o", str(out), "--cache", str(cache), "-j", "2", "--no-progress"]) == 0
    assert "3 computed, 0 from the cache" in capsys.readouterr().out
    table = rows(out)
    assert [int(r["periphery.counters_shared_by"]) for r in table] == [1, 2, 4]
    for r, n in zip(table, (1, 2, 4)):
        assert r["status"] == "ok"
        assert float(r["latency_per_layer_ns"]) == 65 + (n - 1) * 15
        assert float(r["latency_per_token_ns"]) == 2 * (65 + (n - 1) * 15)
        assert float(r["stall.output_counters_shared_ns_per_token"]) > 0 if n > 1 else True
        assert float(r["energy_item.phi_qk_pj"]) == 70.0 and float(r["energy_item.dacs_pj"]) == 90.0
        assert int(r["full_window_steps"]) == 70 - 63
        head_mm2 = 2 * 64 * 64e-6 + 0.8 * (0.5 - 0.131072) / 16 + 0.2 * (0.5 - 0.131072)
        saved_mm2 = (4 - 4 // n) * 2 * 0.8 * (0.5 - 0.131072) / 16 / 4
        assert float(r["area_mm2"]) == pytest.approx(head_mm2 * 4 * 2 - saved_mm2, rel=1e-12)
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["counts"] == {"points": 3, "ok": 3, "failed": 0, "skipped": 0, "cached": 0, "computed": 3}
    assert meta["provenance"]["gcsim_source_sha256"] and meta["spec"]["mode"] == "timing-only"
    first = (out / "results.csv").read_bytes()
    # a second run computes nothing and writes the same table; a larger grid computes only the new point
    assert cli(["sweep", str(path), "-o", str(out), "--cache", str(cache), "--no-progress"]) == 0
    assert "0 computed, 3 from the cache" in capsys.readouterr().out
    assert (out / "results.csv").read_bytes() == first
    bigger = spec(tmp_path, set={**SMALL, "shape.window": 64, "costs.model": "table"},
                  axes=[{"grid": {"periphery.counters_shared_by": [1, 2, 4, 1]}}])
    res = run_sweep(bigger, cache=cache, jobs=1)
    assert res.counts["computed"] == 0 and res.counts["cached"] == 4
    pq = pytest.importorskip("pyarrow.parquet")
    t = pq.read_table(out / "results.parquet").to_pylist()
    assert [r["latency_per_layer_ns"] for r in t] == [65.0, 80.0, 110.0]


def test_failing_point_is_recorded_and_the_others_go_on(tmp_path, capsys, monkeypatch):
    """A point whose trace is missing on the worker fails; its row says why; exit 4."""
    from gcsim.sweeps import runner
    real = runner._Traces.for_point

    def lose_second(self, point):
        path, sha = real(self, point)
        return (str(tmp_path / "gone.gctrace"), sha) if point.index == 1 else (path, sha)

    monkeypatch.setattr(runner._Traces, "for_point", lose_second)
    path, out, cache = spec(tmp_path), tmp_path / "out", tmp_path / "cache"
    assert cli(["sweep", str(path), "-o", str(out), "--cache", str(cache), "-j", "2", "--no-progress"]) == 4
    assert "point 1 failed: TraceError: " in capsys.readouterr().out
    table = rows(out)
    assert [r["status"] for r in table] == ["ok", "failed", "ok"]
    assert "gone.gctrace" in table[1]["error"] and table[1]["latency_per_token_ns"] == ""
    # recorded, not retried forever: the rerun takes the failure from the cache
    res = run_sweep(path, cache=cache, jobs=1)
    assert res.counts["computed"] == 0 and res.counts["failed"] == 1
    # unless asked to (with the trace back, it now succeeds)
    monkeypatch.setattr(runner._Traces, "for_point", real)
    res = run_sweep(path, cache=cache, jobs=1, retry_failed=True)
    assert res.counts["computed"] == 1 and res.counts["failed"] == 0


def test_python_api_returns_a_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    table = sweep(spec(tmp_path), cache=tmp_path / "cache", jobs=1)
    assert isinstance(table, pd.DataFrame)
    assert list(table["latency_per_layer_ns"]) == [65.0, 80.0, 110.0]
    assert list(table["status"]) == ["ok"] * 3


def test_workers_pin_numeric_libraries_to_one_thread():
    from gcsim.sweeps.backends import run_local
    from gcsim.parallel import thread_settings
    (_, got), = run_local([(0, None)], jobs=1, fn=thread_settings)
    assert got["env"]["OPENBLAS_NUM_THREADS"] == "1" and got["env"]["OMP_NUM_THREADS"] == "1"
    assert got["numpy_before_pin"] is False          # so OpenBLAS read them when it loaded


# --- interruption -------------------------------------------------------------------------

def _children(pid):
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append((int(d.name), cmd))
    return kids


def _slow_spec(tmp_path, n=6):
    # GPT-2 shape, 300 steps timing-only: a fraction of a second per point
    from gcsim.traces import write_synthetic
    trace = write_synthetic(tmp_path / "gpt2.gctrace", steps=300, seed=1)
    return spec(tmp_path, set={}, traces=[{"path": str(trace)}],
                axes=[{"grid": {"timing.host_ns_per_layer": [float(i) for i in range(n)]}}])


def _cached(cache):
    return len(list((cache / "points").rglob("*.json"))) if (cache / "points").exists() else 0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker")
def test_killed_worker_is_retried_and_interrupted_sweep_resumes(tmp_path):
    path, cache = _slow_spec(tmp_path), tmp_path / "cache"
    cmd = [sys.executable, "-m", "gcsim", "sweep", str(path), "--cache", str(cache), "-j", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # 1. kill the worker process in the middle of the sweep: the pool is rebuilt, the lost
    #    point computed again, nothing recorded as failed
    proc = subprocess.Popen(cmd + ["-o", str(tmp_path / "a")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while _cached(cache) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    workers = [p for p, c in _children(proc.pid) if "spawn_main" in c]
    assert workers, "no worker found"
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "6 ok, 0 failed" in out
    reference = (tmp_path / "a" / "results.csv").read_bytes()
    # 2. kill the whole sweep (SIGKILL: no cleanup at all) half-way, then rerun: the finished
    #    points come from the cache and the table is the same
    cache2 = tmp_path / "cache2"
    cmd2 = [c if c != str(cache) else str(cache2) for c in cmd]
    proc = subprocess.Popen(cmd2 + ["-o", str(tmp_path / "b")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while _cached(cache2) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    done = _cached(cache2)
    assert 3 <= done < 6 and not (tmp_path / "b").exists()
    res = subprocess.run(cmd2 + ["-o", str(tmp_path / "b")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"{6 - done} computed, {done} from the cache" in res.stdout
    assert (tmp_path / "b" / "results.csv").read_bytes() == reference


# --- Ray ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from gcsim.sweeps.backends import ray_init
    started = ray_init(None, 2)          # one 2-CPU local cluster for every Ray test here
    yield ray
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_same_table_as_local_workers(tmp_path, ray_cluster):
    path = spec(tmp_path, axes=[{"grid": {"periphery.counters_shared_by": [1, 2, 4],
                                          "numerics.cell_law": ["linear", "cubic"]}}], mode="functional")
    assert cli(["sweep", str(path), "-o", str(tmp_path / "local"), "--cache", str(tmp_path / "c1"),
                "-j", "2", "--no-progress"]) == 0
    assert cli(["sweep", str(path), "-o", str(tmp_path / "ray"), "--cache", str(tmp_path / "c2"),
                "--ray", "--no-progress"]) == 0
    assert json.loads((tmp_path / "ray" / "sweep.json").read_text())["counts"]["computed"] == 6
    assert (tmp_path / "ray" / "results.csv").read_bytes() == (tmp_path / "local" / "results.csv").read_bytes()
    assert all(0 < float(r["out_cosine_vs_softmax"]) <= 1 for r in rows(tmp_path / "ray"))


@pytest.mark.slow
def test_eval_sweep_on_ray_gives_the_same_table_as_local_workers(tmp_path, ray_cluster):
    """Mode eval (the chip GPT with each point's chip in its loop) on both backends."""
    data = {"mode": "eval", "eval": {"chars": 100, "window": 48, "windows": 2},
            "axes": [{"grid": {"numerics.cell_law": ["linear", "cubic"], "shape.window": [64, 256]}}]}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli(["sweep", str(path), "-o", str(tmp_path / "local"), "--cache", str(tmp_path / "c1"),
                "-j", "2", "--no-progress"]) == 0
    assert cli(["sweep", str(path), "-o", str(tmp_path / "ray"), "--cache", str(tmp_path / "c2"),
                "--ray", "--no-progress"]) == 0
    assert (tmp_path / "ray" / "results.csv").read_bytes() == (tmp_path / "local" / "results.csv").read_bytes()
    table = rows(tmp_path / "ray")
    assert [r["status"] for r in table] == ["ok"] * 4
    assert all(float(r["latency_per_token_ns"]) == 260.0 and int(r["tokens"]) == 96 for r in table)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the Ray worker")
def test_ray_retries_a_task_whose_worker_died(tmp_path, ray_cluster):
    path, cache = _slow_spec(tmp_path, n=4), tmp_path / "cache"
    result = {}
    t = threading.Thread(target=lambda: result.update(res=run_sweep(path, cache=cache, ray=True)))
    t.start()
    killed = None
    deadline = time.time() + 120
    while killed is None and t.is_alive() and time.time() < deadline:
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    cmd = (d / "cmdline").read_bytes()
                except OSError:
                    continue
                if cmd.startswith(b"ray::run_point"):
                    os.kill(int(d.name), signal.SIGKILL)
                    killed = int(d.name)
                    break
        time.sleep(0.02)
    t.join(timeout=300)
    assert killed is not None, "no Ray worker was seen running a point"
    res = result["res"]
    assert res.counts["ok"] == 4 and res.counts["failed"] == 0


# --- plots --------------------------------------------------------------------------------

def test_pareto_front_by_hand():
    from gcsim.sweeps.plot import pareto_front
    pts = [(3, 1), (1, 3), (2, 2), (2, 3), (4, 4), (1, 4)]
    assert pareto_front(pts) == [1, 2, 0]          # (1,3), (2,2), (3,1); the rest are beaten


def test_sweep_plot_adds_charts_to_the_output(tmp_path):
    pytest.importorskip("matplotlib")
    path, out = spec(tmp_path, mode="functional"), tmp_path / "out"
    assert cli(["sweep", str(path), "-o", str(out), "--cache", str(tmp_path / "c"), "-j", "1", "--no-progress"]) == 0
    before = (out / "results.csv").read_bytes()
    assert cli(["sweep", "plot", str(out)]) == 0
    assert (out / "pareto.png").stat().st_size > 1000
    assert (out / "axis-periphery.counters_shared_by.png").stat().st_size > 1000
    assert (out / "results.csv").read_bytes() == before
    # OUT stays gcsim's: the sweep may replace it again
    assert cli(["sweep", str(path), "-o", str(out), "--cache", str(tmp_path / "c"), "--no-progress"]) == 0


# --- layers in parallel (gcsim validate / gcsim reference) --------------------------------

@pytest.mark.slow
def test_validate_and_reference_layers_in_parallel_give_the_same_results(tmp_path, monkeypatch):
    """Layer-parallel runs (2 worker processes) against the same commands in one process."""
    import numpy as np
    from gcsim import load_hardware, parallel
    from gcsim.commands.validate import validate
    from gcsim.traces import open_trace, write_synthetic
    hw = load_hardware("paper-gpt2").derive(shape={"layers": 3, "heads": 2, "kv_heads": 2, "window": 128})
    s = hw.shape
    path = write_synthetic(tmp_path / "t.gctrace", layers=3, heads=2, kv_heads=2, steps=200, seed=3)
    trace = open_trace(path)
    # 200 steps x 128 x 2 heads x 3 layers: far below the work that pays for workers...
    assert not parallel.worth_it(2, 200, hw, trace)
    # ...and a GPT-2 layer stack of 1024 steps is above it
    gpt2 = load_hardware("paper-gpt2")
    assert parallel.worth_it(2, 1024, gpt2, trace) and not parallel.worth_it(1, 1024, gpt2, trace)
    monkeypatch.setattr(parallel, "MIN_WORK", 0)          # force the parallel path on the small case
    assert parallel.worth_it(2, 200, hw, trace)
    one, two = validate(hw, trace, jobs=1), validate(hw, trace, jobs=2)
    assert one == two and one["pass"] and [r["layer"] for r in two["layers"]] == [0, 1, 2]
    model = tmp_path / "m.yaml"
    model.write_text(yaml.safe_dump({"extends": "paper-gpt2", "shape": {"layers": 3, "heads": 2, "kv_heads": 2,
                                                                         "window": 128}}))
    for j in ("1", "2"):
        assert cli(["reference", str(path), "-m", str(model), "-o", str(tmp_path / f"r{j}"), "-j", j, "-q"]) == 0
    assert np.array_equal(np.load(tmp_path / "r1" / "outputs.npy"), np.load(tmp_path / "r2" / "outputs.npy"))
    s1, s2 = (json.loads((tmp_path / f"r{j}" / "summary.json").read_text())["layers"] for j in "12")
    assert s1 == s2 and len(s1) == s.layers


# --- the shipped examples -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["sweep_window_law", "sweep_sequences", "sweep_shared_counters",
                                  "sweep_link_bandwidth"])
def test_example_specs_stay_valid(name):
    """Every example spec parses (its trace replaced by a short synthetic one: the window-law
    trace is made by its script)."""
    from gcsim.sweeps import parse_spec
    data = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    data["traces"] = [{"synthetic": {"steps": 4, "seed": 0}}]
    s = parse_spec(data, source=name)
    assert s.points() and s.fields


def test_shared_counters_example_matches_the_hand_calculation(tmp_path):
    data = yaml.safe_load((ROOT / "examples" / "sweep_shared_counters.yaml").read_text())
    data["traces"] = [{"synthetic": {"steps": 3, "seed": 0}}]
    res = run_sweep(data, cache=tmp_path / "c", jobs=2)
    by_n = {r["periphery.counters_shared_by"]: r for r in res.rows}
    for n, r in by_n.items():
        if 12 % n:
            assert r["status"] == "skipped" and r["error"] == "the counters must serve whole groups of heads"
        else:
            assert r["status"] == "ok" and r["latency_per_layer_ns"] == 65 + (n - 1) * 15
    assert res.counts == {"points": 12, "ok": 6, "failed": 0, "skipped": 6, "cached": 0, "computed": 6}
