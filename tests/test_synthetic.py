"""Synthetic GPT-2-shaped traces: determinism, streaming, statistics, attention sink."""

import tracemalloc

import numpy as np
import pytest

from gcsim.traces import calibrate, make_synthetic, open_trace, write_synthetic

SMALL = dict(layers=2, heads=4, kv_heads=2, d_head=16)


@pytest.fixture(scope="module")
def gpt2():
    """GPT-2 124M shape, 160 steps."""
    return make_synthetic(steps=160, seed=0)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = (tmp_path / f"{n}.gctrace" for n in "abc")
    write_synthetic(a, steps=40, seed=3, **SMALL)
    write_synthetic(b, steps=40, seed=3, **SMALL)
    write_synthetic(c, steps=40, seed=4, **SMALL)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_written_trace_matches_in_memory_generation(tmp_path):
    path = tmp_path / "s.gctrace"
    write_synthetic(path, steps=30, seed=9, **SMALL, dtype="float16")
    ref = make_synthetic(steps=30, seed=9, **SMALL)
    with open_trace(path) as tr:
        for name in ("q", "k", "v"):
            np.testing.assert_array_equal(getattr(tr, name), ref[name].astype(np.float16))
        np.testing.assert_array_equal(tr.token_ids, ref["token_ids"])
        assert tr.attn_out is None
        assert tr.model == {"name": "synthetic-gpt2", "layers": 2, "heads": 4, "kv_heads": 2,
                            "d_head": 16}
        p = tr.provenance
        assert p["synthetic"] is True and p["source"] == "synthetic" and p["seed"] == 9
        assert p["generator"] == "gcsim.traces.synthetic v1"
        assert "steps=30, seed=9" in p["command"]
        # scalers: calibrated on the first min(steps, 256) steps as stored (float16)
        s, clip = calibrate(*(ref[n].astype(np.float16) for n in "qkv"), max_steps=None)
        for name in s:
            np.testing.assert_array_equal(tr.scalers[name], s[name])
        np.testing.assert_array_equal(tr.clip_fraction["v"], clip["v"])


def test_step_t_does_not_depend_on_length():
    short = make_synthetic(steps=10, seed=5, **SMALL)
    long = make_synthetic(steps=25, seed=5, **SMALL)
    for name in ("q", "k", "v", "token_ids"):
        np.testing.assert_array_equal(short[name], long[name][:10])


def test_calibration_uses_only_the_first_256_steps(tmp_path):
    a, b = tmp_path / "a.gctrace", tmp_path / "b.gctrace"
    write_synthetic(a, steps=260, seed=1, **SMALL)
    write_synthetic(b, steps=300, seed=1, **SMALL)
    with open_trace(a) as ta, open_trace(b) as tb:
        for name in ta.scalers:
            np.testing.assert_array_equal(ta.scalers[name], tb.scalers[name])
        np.testing.assert_array_equal(ta.q, tb.q[:260])


def test_memory_does_not_grow_with_steps(tmp_path):
    def peak(steps):
        tracemalloc.start()
        write_synthetic(tmp_path / f"m{steps}.gctrace", steps=steps, seed=0, layers=2, heads=4,
                        d_head=64)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    peak(20)  # warm-up: one-time allocations (imports, caches) are not per-step memory
    short, long = peak(300), peak(3000)  # q, k, v are 3 MB each at 3000 steps
    assert long < short * 1.1 + 100_000


def test_gqa_shapes():
    d = make_synthetic(steps=4, seed=0, layers=3, heads=9, kv_heads=3, d_head=64)
    assert d["q"].shape == (4, 3, 9, 64)
    assert d["k"].shape == d["v"].shape == (4, 3, 3, 64)
    assert d["token_ids"].dtype == np.int32 and d["token_ids"][0] == 50256
    with pytest.raises(ValueError, match="must divide"):
        make_synthetic(steps=2, seed=0, heads=9, kv_heads=4)


def test_head_scales_vary_log_normally(gpt2):
    std = gpt2["v"].std(axis=(0, 3))  # [layers, heads]
    assert std.shape == (12, 12)
    assert std.max() / std.min() > 2.0
    assert np.all(np.isfinite(gpt2["q"])) and np.abs(gpt2["q"]).max() < 200  # float16-safe


def test_outlier_channels(gpt2):
    k = np.abs(gpt2["k"][1:]).mean(axis=0)  # [layers, heads, d], without the sink token
    chans = gpt2["outlier_channels"]  # [layers, kv_heads, n]
    outlier = np.take_along_axis(k, chans, axis=-1).min(axis=-1)
    typical = np.median(k, axis=-1)
    assert np.all(outlier > 3.0 * typical)
    # the query heads share their K/V head's outlier channels
    q = np.abs(gpt2["q"]).mean(axis=0)
    assert np.all(np.take_along_axis(q, chans, axis=-1).min(axis=-1) > 3.0 * np.median(q, -1))


def test_consecutive_steps_are_correlated(gpt2):
    x = gpt2["k"][1:] - gpt2["k"][1:].mean(axis=0)  # fluctuations around the channel means
    x /= x.std(axis=0)

    def corr(lag):
        return float((x[lag:] * x[:-lag]).mean())

    # half the variance is AR(1) with rho 0.98: ≈ 0.49 at lag 1 in the population, less here
    # because the mean over 159 steps absorbs part of the slow component
    assert corr(1) > 0.25
    assert corr(50) < corr(1) - 0.2


def test_first_token_attention_sink(gpt2):
    q, k = gpt2["q"].astype(np.float64), gpt2["k"].astype(np.float64)
    weights = []
    for t in range(120, 160, 8):
        scores = np.einsum("lhd,slhd->lhs", q[t], k[:t + 1]) / np.sqrt(64)
        w = np.exp(scores - scores.max(axis=-1, keepdims=True))
        w /= w.sum(axis=-1, keepdims=True)
        weights.append(w[..., 0] * (t + 1))  # weight on token 0 relative to uniform 1/(t+1)
    ratio = np.array(weights)
    assert np.median(ratio) > 20  # token 0 gets far more than a uniform share
    assert np.mean(ratio > 1) > 0.75  # in most heads and steps
    assert np.mean(ratio) / 150 > 0.25  # on average a large part of the attention


def test_no_sink_without_token_zero_direction(gpt2):
    # control: the same statistic for token 1 is about uniform
    q, k = gpt2["q"].astype(np.float64), gpt2["k"].astype(np.float64)
    t = 150
    scores = np.einsum("lhd,slhd->lhs", q[t], k[:t + 1]) / 8
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    assert np.median(w[..., 1] * (t + 1)) < 3
