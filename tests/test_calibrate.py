"""Per-head scaler calibration from activation statistics, on hand-made data."""

import numpy as np
import pytest

from gcsim.traces import calibrate, default_scalers, open_trace, write_trace
from gcsim.traces.calibrate import clipped_counts, sample_steps


def evenly(lo, hi, steps, layers, heads, d, seed=0):
    """Each head holds a permutation of linspace(lo, hi, steps*d): [steps, layers, heads, d]."""
    rng = np.random.default_rng(seed)
    n = steps * d
    x = np.stack([rng.permutation(np.linspace(lo, hi, n)) for _ in range(layers * heads)])
    return x.reshape(layers, heads, steps, d).transpose(2, 0, 1, 3).copy()


def test_default_scalers_are_the_papers_initial_values():
    s = default_scalers(3, 6, 2)
    assert set(s) == {"a_q", "b_q", "a_k", "b_k", "a_v", "b_v", "a_out", "b_out"}
    for name in ("a_q", "b_q", "a_out", "b_out"):
        assert s[name].shape == (3, 6) and s[name].dtype == np.float64
    for name in ("a_k", "b_k", "a_v", "b_v"):
        assert s[name].shape == (3, 2)
    assert np.all(s["a_q"] == 1) and np.all(s["b_q"] == 0)
    assert np.all(s["a_k"] == 1) and np.all(s["b_k"] == 0.45)
    assert np.all(s["a_v"] == 1) and np.all(s["b_v"] == 0.45)
    assert np.all(s["a_out"] == 1) and np.all(s["b_out"] == 0)


def test_uniform_q_fills_pwm_range_with_known_clipping():
    # 20000 evenly spaced values on [-2, 2] per head: the 0.0005 / 0.9995 quantiles are
    # ±(2 - 4·0.0005) = ±1.998, so a_q = 1/3.996 and b_q = 0.5; 10 values lie beyond each.
    q = evenly(-2.0, 2.0, 2000, 2, 3, 10)
    kv = evenly(-1.0, 1.0, 2000, 2, 1, 10)
    s, clip = calibrate(q, kv, kv, max_steps=None)
    np.testing.assert_allclose(s["a_q"], 1 / 3.996, rtol=1e-9)
    np.testing.assert_allclose(s["b_q"], 0.5, rtol=1e-9)
    assert s["a_q"] == pytest.approx(np.full((2, 3), 0.25), rel=2e-3)
    np.testing.assert_array_equal(clip["q"], np.full((2, 3), 20 / 20000))


def test_kv_median_on_signed_zero_and_half_range():
    # Uniform on [-1, 3]: median 1, the 0.999 quantile of |x - 1| is ≈ 1.998,
    # so a = 0.45/1.998 ≈ 0.225 and b = 0.45 - a·1 ≈ 0.225; ≈ 0.1 % clipped.
    q = evenly(-1.0, 1.0, 2000, 1, 2, 10)
    k = evenly(-1.0, 3.0, 2000, 1, 2, 10, seed=1)
    v = evenly(0.0, 0.5, 2000, 1, 2, 10, seed=2)
    s, clip = calibrate(q, k, v, max_steps=None)
    np.testing.assert_allclose(s["a_k"], 0.45 / 1.998, rtol=1e-3)
    np.testing.assert_allclose(s["b_k"], 0.45 - s["a_k"] * 1.0, rtol=1e-9)
    np.testing.assert_allclose(s["a_v"], 0.45 / 0.24975, rtol=1e-3)  # |x - 0.25| up to 0.25
    np.testing.assert_allclose(s["b_v"], 0.45 - s["a_v"] * 0.25, rtol=1e-9)
    np.testing.assert_allclose(clip["k"], 0.001, atol=1e-4)
    np.testing.assert_allclose(clip["v"], 0.001, atol=1e-4)
    assert np.all(s["a_out"] == 1) and np.all(s["b_out"] == 0)
    assert s["a_out"].shape == (1, 2)


def test_per_head_scales_and_gqa_shapes():
    rng = np.random.default_rng(0)
    scale_q = np.array([[0.5, 1.0, 2.0, 4.0]])  # [layers=1, heads=4]
    q = rng.normal(size=(500, 1, 4, 16)) * scale_q[..., None]
    k = rng.normal(size=(500, 1, 2, 16)) * np.array([[1.0, 10.0]])[..., None] + 3.0
    s, clip = calibrate(q, k, k)
    assert s["a_q"].shape == (1, 4) and s["a_k"].shape == (1, 2)
    assert clip["q"].shape == (1, 4) and clip["k"].shape == (1, 2)
    # a scales inversely with the head's spread
    np.testing.assert_allclose(s["a_q"][0] * scale_q[0], s["a_q"][0, 0] * 0.5, rtol=0.1)
    assert s["a_k"][0, 0] / s["a_k"][0, 1] == pytest.approx(10.0, rel=0.15)
    # the median (≈ 3) lands on the signed zero 0.45 V
    np.testing.assert_allclose(s["a_k"][0] * 3.0 + s["b_k"][0], 0.45, atol=0.02)


def test_clip_fraction_matches_direct_count():
    rng = np.random.default_rng(5)
    q = rng.standard_t(3, size=(300, 2, 2, 8))  # heavy tails
    k = rng.normal(size=(300, 2, 1, 8))
    s, clip = calibrate(q, k, k, coverage=0.99)
    for name, x, (lo, hi) in (("q", q, (0, 1)), ("k", k, (0, 0.9))):
        y = x * s[f"a_{name}"][..., None] + s[f"b_{name}"][..., None]
        direct = ((y < lo - 1e-9) | (y > hi + 1e-9)).mean(axis=(0, 3))
        np.testing.assert_allclose(clip[name], direct)
        np.testing.assert_allclose(clip[name], 0.01, atol=0.002)


def test_coverage_one_maps_extremes_onto_range_ends():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(100, 1, 2, 8))
    k = rng.normal(size=(100, 1, 2, 8))
    s, clip = calibrate(q, k, k, coverage=1.0)
    lo, hi = q.min(axis=(0, 3)), q.max(axis=(0, 3))
    np.testing.assert_allclose(s["a_q"] * lo + s["b_q"], 0.0, atol=1e-12)
    np.testing.assert_allclose(s["a_q"] * hi + s["b_q"], 1.0, atol=1e-12)
    for name in ("q", "k", "v"):
        assert np.all(clip[name] == 0.0)


def test_outlier_values_do_not_set_the_range():
    rng = np.random.default_rng(2)
    q = rng.uniform(-1, 1, size=(1000, 1, 1, 64))
    q[::100, 0, 0, 0] = 1000.0  # 10 huge values in 64000: below the 0.05 % tail
    s, clip = calibrate(q, q[:, :, :1], q[:, :, :1])
    assert s["a_q"][0, 0] == pytest.approx(0.5, rel=0.01)
    assert clip["q"][0, 0] == pytest.approx(0.001, abs=3e-4)


def test_constant_head_falls_back_to_unit_gain():
    q = np.zeros((50, 1, 2, 4))
    q[:, 0, 1] = np.linspace(-1, 1, 200).reshape(50, 4)
    q[:, 0, 0] = 3.0  # constant head
    k = np.full((50, 1, 1, 4), -2.0)
    s, clip = calibrate(q, k, k)
    assert s["a_q"][0, 0] == 1.0 and s["b_q"][0, 0] == pytest.approx(0.5 - 3.0)
    assert s["a_k"][0, 0] == 1.0 and s["b_k"][0, 0] == pytest.approx(0.45 + 2.0)
    assert clip["q"][0, 0] == 0.0 and clip["k"][0, 0] == 0.0
    assert np.all(np.isfinite(s["a_q"])) and s["a_q"][0, 1] != 1.0


def test_sampling_evenly_spaced_steps():
    np.testing.assert_array_equal(sample_steps(10, 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(sample_steps(3, 4), [0, 1, 2])
    np.testing.assert_array_equal(sample_steps(5, None), np.arange(5))
    # with a sample, statistics are those of the sampled steps only
    q = evenly(-1, 1, 10, 1, 1, 4)
    q[1] *= 100.0  # step 1 is not among the sampled steps [0, 3, 6, 9]
    s_sampled, _ = calibrate(q, q, q, max_steps=4, coverage=1.0)
    s_direct, _ = calibrate(q[[0, 3, 6, 9]], q[[0, 3, 6, 9]], q[[0, 3, 6, 9]], max_steps=None,
                            coverage=1.0)
    s_all, _ = calibrate(q, q, q, max_steps=None, coverage=1.0)
    np.testing.assert_array_equal(s_sampled["a_q"], s_direct["a_q"])
    assert s_all["a_q"][0, 0] < s_sampled["a_q"][0, 0] / 10


def test_memmap_input_same_result(tmp_path):
    rng = np.random.default_rng(4)
    q = rng.normal(size=(64, 2, 2, 8)).astype(np.float16)
    mm = np.memmap(tmp_path / "q.bin", dtype=np.float16, mode="w+", shape=q.shape)
    mm[:] = q
    mm.flush()
    ro = np.memmap(tmp_path / "q.bin", dtype=np.float16, mode="r", shape=q.shape)
    s1, c1 = calibrate(ro, ro, ro, max_steps=20)
    s2, c2 = calibrate(q, q, q, max_steps=20)
    for name in s1:
        np.testing.assert_array_equal(s1[name], s2[name])
    np.testing.assert_array_equal(c1["q"], c2["q"])


def test_clipped_counts_shapes():
    x = np.array([[[[-0.1, 0.5, 1.2]], [[0.0, 1.0, 2.0]]]])  # [1, 2 layers, 1 head, 3]
    counts = clipped_counts(x, np.ones((2, 1)), np.zeros((2, 1)), (0.0, 1.0))
    np.testing.assert_array_equal(counts, [[2], [1]])


def test_scalers_stored_in_trace_header(tmp_path):
    rng = np.random.default_rng(6)
    q = rng.normal(size=(20, 1, 2, 8)).astype(np.float32)
    k = rng.normal(size=(20, 1, 1, 8)).astype(np.float32)
    s, clip = calibrate(q, k, k)
    model = {"name": "m", "layers": 1, "heads": 2, "kv_heads": 1, "d_head": 8}
    path = tmp_path / "c.gctrace"
    write_trace(path, q=q, k=k, v=k, token_ids=np.arange(20), model=model, scalers=s,
                clip_fraction=clip, provenance={}, dtype="float32")
    with open_trace(path) as tr:
        assert isinstance(tr.header["scalers"]["a_q"], list)
        assert isinstance(tr.header["clip_fraction"]["k"][0], list)
        for name in s:
            np.testing.assert_array_equal(tr.scalers[name], s[name])
        for name in clip:
            np.testing.assert_array_equal(tr.clip_fraction[name], clip[name])
