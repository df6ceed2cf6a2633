"""Issue 13, flat memory: what a run, profile and validate compute from the per-step records
at the end (the report, per_step.csv, the profile files, the timing check, the engine's
critical-path check) never holds a series of one value per step: their Python-heap peak
(tracemalloc) is the same for 10,000 and 100,000 steps. And the report's whole-run figures,
computed chunk by chunk, equal numpy's over the whole series bit for bit."""
import json
import tracemalloc

import numpy as np
import pytest

from gcsim import load_hardware, series, streamio
from gcsim.profiling import write_profile
from gcsim.report import build_report, write_per_step_csv
from gcsim.sim import schedule
from gcsim.sim.engine import ArrayTrace, SimResult, Simulator


def _result(T, seed=0):
    """A SimResult of T steps with made-up records (a contention-free 2-layer GPT-2 whose every
    layer step matches the closed-form schedule; energies and path split drawn at random),
    filled chunk by chunk into the records_arrays a Simulator allocates, without running it:
    what the end of a long run holds, in seconds."""
    hw = load_hardware("paper-gpt2").derive(shape={"layers": 2})
    s = hw.shape
    zeros = lambda *shape: np.broadcast_to(np.zeros((), np.float16), shape)  # noqa: E731  (no memory)
    trace = ArrayTrace(zeros(T, s.layers, s.heads, s.d_head), *(zeros(T, s.layers, s.kv_heads, s.d_head),) * 2)
    sim = Simulator(hw, trace, values=False)
    rec, led, path = sim.record, sim.energy, sim.path
    rng = np.random.default_rng(seed)
    path.categories = {"q_phase": 0, "host": 1}
    layer_ps = schedule._layer_ps(hw)[0]   # [L]
    step_ps = int(layer_ps.sum())
    for t0 in range(0, T, 10_000):
        t1 = min(T, t0 + 10_000)
        start, w, r = schedule.closed_form_rows(hw, t0, t1)
        rec.layer_start[0][t0:t1], rec.write[0][t0:t1], rec.read[0][t0:t1] = start, w, r
        rec.layer_end[0][t0:t1] = start + layer_ps // 2
        rec.step_end[0][t0:t1] = np.arange(t0 + 1, t1 + 1) * step_ps
        host = rng.integers(0, step_ps, t1 - t0)
        path._arrays[0][t0:t1, 0], path._arrays[0][t0:t1, 1] = step_ps - host, host
        led._step_counts[t0:t1] = rng.integers(0, 1000, led._step_counts[t0:t1].shape)
        led._step_direct[t0:t1] = rng.random(led._step_direct[t0:t1].shape) * 1e3
        led._ls[t0:t1] = rng.integers(0, 100, led._ls[t0:t1].shape)
        sim.release_records()
    elapsed = int(rec.step_end[0][T - 1])
    return SimResult(hw, T, elapsed, rec.step_end, rec.write, rec.read, rec.layer_start, rec.layer_end,
                     sim.activity.summary(elapsed), led, path)


def _end_of_run(res, out):
    """Everything run, profile and validate do with the records after the simulation."""
    assert res.path.adds_up(0, res.step_end_ps[0])
    rep = build_report(res, values=False)
    write_per_step_csv(out / "per_step.csv", res)
    write_profile(out, res, rep)
    assert schedule.check(res)["pass"]
    return rep


def _heap_peak(T, tmp_path):
    res = _result(T)
    out = tmp_path / f"T{T}"
    out.mkdir()
    tracemalloc.start()
    try:
        _end_of_run(res, out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_the_end_of_a_run_holds_no_per_step_series(tmp_path):
    """100,000 - 10,000 steps: a series of one float64 per step is 0.7 MB more."""
    short, long = _heap_peak(10_000, tmp_path), _heap_peak(100_000, tmp_path)
    assert long - short < 256 * 1024, (short, long)


def _whole_array_report_figures(res):
    """The report's whole-run figures computed over whole arrays with numpy (the oracle)."""
    hw, s, led = res.hw, res.hw.shape, res.ledger
    n_seq = hw.periphery.sequences
    to_ns = lambda ps: np.asarray(ps, np.float64) / 1000.0  # noqa: E731
    stats = lambda v: {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}  # noqa: E731
    lat = np.asarray(res.layer_end_ps[0]) - np.asarray(res.layer_start_ps[0])
    full = np.arange(res.steps) >= s.window - 1
    step_pj = led.step_pj()
    items = led.step_item_pj(hw.energy.items)
    return {
        "token": [stats(to_ns(res.step_latency_ps(q))) for q in range(n_seq)],
        "layer": [stats(to_ns(lat[:, l])) for l in range(s.layers)],
        "layer_all": stats(to_ns(lat)),
        "cycles": float(lat.mean() / hw.timing.clock_period_ps),
        "items": {k: float((v[full] if full.any() else v).mean() / (n_seq * s.layers * s.heads))
                  for k, v in items.items()},
        "per_token": {**stats(step_pj / n_seq), "last": float(step_pj[-1] / n_seq)},
        "per_head": float(step_pj.sum() / (res.steps * n_seq * s.layers * s.heads)),
    }


@pytest.mark.parametrize("model, T", [("stall-refresh", 700), ("stall-multiseq", 650), ("paper-gpt2", 40)])
def test_report_figures_equal_numpys_over_the_whole_series(model, T, monkeypatch):
    """Small chunks (97 rows) and leaves (128 values) so that the chunked sums really split:
    latency varies with refresh and sequences, energy with charge-mode reads; window 64 (and
    40 steps: no full-window step, the items over every step)."""
    hw = load_hardware(model).derive(shape={"layers": 2, "heads": 2, "kv_heads": 2, "window": 64},
                                     costs={"array_read": "charge"})
    s = hw.shape
    rng = np.random.default_rng(T)
    q, k, v = (rng.standard_normal((T, s.layers, h, s.d_head)).astype(np.float16)
               for h in (s.heads, s.kv_heads, s.kv_heads))
    res = Simulator(hw, ArrayTrace(q, k, v)).run()
    monkeypatch.setattr(streamio, "CHUNK_ROWS", 97)
    monkeypatch.setattr(series, "LEAF", 128)
    rep = build_report(res)
    want = _whole_array_report_figures(res)
    t, e = rep["time"], rep["energy"]
    assert t["token_latency_ns_by_sequence"] == want["token"] and t["token_latency_ns"] == want["token"][0]
    assert [row["latency_ns"] for row in rep["layers"]] == want["layer"]
    assert t["layer_latency_ns"] == want["layer_all"] and t["layer_latency_cycles_mean"] == want["cycles"]
    assert {k: row["per_head_per_token_pj"] for k, row in e["paper_items"].items()} == want["items"]
    assert e["per_token_pj"] == want["per_token"] and e["per_head_per_token_pj"] == want["per_head"]
    assert e["full_window_steps"] == max(0, T - 63)
    if model != "paper-gpt2":   # the figures vary from step to step: the sums' order is tested
        assert t["token_latency_ns"]["min"] < t["token_latency_ns"]["max"]
        assert e["per_token_pj"]["min"] < e["per_token_pj"]["max"]
    json.dumps(rep)
