"""The fused periphery kernels (gcsim/kernels/periphery.py: DAC front end, output codes,
readout) are a second implementation of gcsim.datapath's numpy path: checked here bit for
bit against it (float64 and float32), on random inputs and on the hard cases (values at and
next to level boundaries, at and beyond the clip edges, NaN and infinities, zero and
negative scalers), and against hand-computed values."""
import numpy as np
import pytest

from gcsim import load_hardware, physics
from gcsim.datapath import dac_kv, dac_query, dac_step, layer_scalers, output_code, readout

pytest.importorskip("numba")

DTYPES = (np.float32, np.float64)


def _same(got, want):
    """Bit-for-bit equal values: dtype, shape, every value and the sign of every zero (NaN
    where NaN)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
    num = ~np.isnan(want)
    assert (np.signbit(got[num]) == np.signbit(want[num])).all()


def _hw(**numerics):
    hw = load_hardware("paper-gpt2")
    return hw.derive(numerics=numerics) if numerics else hw


def _near(values, rng, n, spread):
    """n inputs: the given values, their float64 neighbours on both sides, and random ones."""
    v = np.asarray(values, np.float64)
    picks = np.concatenate([v, np.nextafter(v, np.inf), np.nextafter(v, -np.inf),
                            v + spread * 1e-7 * rng.standard_normal(v.size)])
    return np.concatenate([picks, rng.uniform(-spread, spread, max(0, n - picks.size))])[:n]


def _dac_inputs(rng, lo, hi, levels, heads, d, rows=1):
    """x [rows, heads, d] and per-head scalers a, b whose scaled values a x + b hit level
    boundaries (half steps), levels, the clip edges and beyond; a includes 0 and negatives."""
    step = (hi - lo) / (levels - 1) if levels else (hi - lo) / 7
    targets = np.concatenate([(np.arange(-2, round(hi / step) + 3) + 0.5) * step,   # boundaries
                              np.arange(-1, round(hi / step) + 2) * step,           # levels
                              [lo, hi, lo - 1e-3, hi + 1e-3, 0.0, -0.0, 10 * hi + 1]])
    a = rng.uniform(0.3, 2.0, heads)
    a[0], a[1 % heads] = 0.0, -rng.uniform(0.3, 2.0)        # a zero and a negative scaler
    b = rng.uniform(-0.2, 0.6, heads)
    b[0] = targets[rng.integers(targets.size)]               # a = 0: every value is b
    b[1 % heads] = -0.0                                       # a x + b = -0.0 at x = +0.0 (a < 0)
    x = np.empty((rows, heads, d))
    for h in range(heads):   # x with a x + b near the targets (as exactly as float64 allows)
        t = _near(targets, rng, d * rows, hi)
        x[:, h, :] = ((t - b[h]) / (a[h] if a[h] else 1.0)).reshape(rows, d)
    x[0, 2 % heads, :4] = [np.nan, np.inf, -np.inf, -0.0]
    x[0, 1 % heads, :2] = [0.0, -0.0]     # a signed zero at a clip edge lo = 0: np.maximum gives lo
    return x, a, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("levels, q_range, kv_range", [(16, (0.0, 1.0), (0.0, 0.9)), (8, (0.0, 1.0), (0.0, 0.9)),
                                                    (None, (0.0, 1.0), (0.0, 0.9)), (4, (0.2, 0.7), (-0.3, 0.6)),
                                                    (256, (0.0, 1.0), (0.0, 0.9))])
def test_dac_kernel_equals_the_numpy_path(dtype, levels, q_range, kv_range):
    hw = _hw(q_levels=levels, q_range=q_range, kv_levels=levels, kv_range_v=kv_range)
    rng = np.random.default_rng(levels or 1)
    for heads, rows in ((12, 1), (3, 5)):   # one step [H, d] and a block of steps [T, H, d]
        x, a, b = _dac_inputs(rng, *q_range, levels, heads, 64, rows)
        x = (x[0] if rows == 1 else x).astype(dtype)
        sc = {"a_q": a, "b_q": b}
        _same(dac_query(x, sc, hw, "cubic"), dac_query(x, sc, hw, "cubic", kernel=False))
        k, a, b = _dac_inputs(rng, *kv_range, levels, heads, 64, rows)
        k = (k[0] if rows == 1 else k).astype(dtype)
        _same(dac_kv(k, a, b, hw, "cubic"), dac_kv(k, a, b, hw, "cubic", kernel=False))
        if rows == 1:   # the three DACs of a layer step in one call (the simulator's controller)
            sc.update(a_k=a, b_k=b, a_v=a[::-1].copy(), b_v=b[::-1].copy())
            v = k[::-1].copy()
            for got, want in zip(dac_step(x, k, v, sc, hw, "cubic"),
                                 (dac_query(x, sc, hw, "cubic", kernel=False),
                                  dac_kv(k, a, b, hw, "cubic", kernel=False),
                                  dac_kv(v, sc["a_v"], sc["b_v"], hw, "cubic", kernel=False))):
                _same(got, want)


def test_dac_hand_values():
    hw = _hw()
    one, zero = np.ones(1), np.zeros(1)
    x = np.array([[0.52, -0.3, 1.7, 0.5 / 15, np.nan]])
    # q: 16 levels over [0, 1], step 1/15: 0.52 -> 8/15; clipped at 0 and 1; half a step rounds to 0 (even)
    np.testing.assert_array_equal(dac_query(x, {"a_q": one, "b_q": zero}, hw, "cubic"),
                                  [[8 / 15, 0.0, 1.0, 0.0, np.nan]])
    # k, v: 8 levels over [0, 0.9] V, step 0.9/7, minus 0.45 V: 2 x + 0.45 with x = 0.1 -> 0.65 V,
    # level 5 (5.06 steps) -> 5 x 0.9/7 - 0.45; x = -1 -> 0 V -> -0.45; x = 1 -> 0.9 V -> +0.45
    got = dac_kv(np.array([[0.1, -1.0, 1.0]], np.float32), 2 * one, 0.45 * one, hw, "cubic")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.float32(0.9 / 7) * np.float32([[5, 0, 7]]) - np.float32(0.45))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("levels", [32, 8, None])
def test_output_code_kernel_equals_physics(dtype, levels):
    hw = _hw(out_levels=levels)
    n = hw.numerics
    rng = np.random.default_rng(3)
    step = 2 / ((levels or 32) - 1)
    edges = np.concatenate([(np.arange(-17, 17) + 0.5) * step, np.arange(-16, 17) * step, [-1.0, 1.0]]) * n.out_sat
    acc = _near(edges, rng, 12 * 16 * 64, 1.5 * n.out_sat).reshape(12, 16, 64)
    acc[0, 0, :5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    acc = acc.astype(dtype)
    _same(output_code(acc, hw), physics.output_code(acc, n.out_sat, n.out_levels))
    kv = acc.reshape(4, 3, 16, 64)     # the simulator's [KV, G, n_sub, d]
    _same(output_code(kv, hw), physics.output_code(kv, n.out_sat, n.out_levels))


def test_output_code_hand_values():
    hw = _hw()   # out_sat 40, 32 levels over [-1, 1]: step 2/31
    got = output_code(np.array([20.0, -1000.0, 40.0, 0.3 * 40 * 2 / 31, -0.7 * 40 * 2 / 31]), hw)
    # 0.5 -> 7.75 steps -> 8; clipped -1 -> -15.5 steps -> -16 (half to even); 1 -> 16
    np.testing.assert_array_equal(got, np.array([8, -16, 16, 0, -1]) * (2 / 31))


@pytest.mark.parametrize("dtype", DTYPES)
def test_readout_kernel_equals_the_numpy_path(dtype):
    rng = np.random.default_rng(5)
    for shape in ((12, 16, 64), (7, 12, 16, 64), (9, 1, 30), (2, 3, 5, 7)):
        H = shape[-3]
        sc = {"a_out": rng.uniform(-2, 2, H), "b_out": rng.normal(0, 1, H)}
        sc["a_out"][0] = 0.0
        # arbitrary floats, not only codes: the order of the sub-tile sum shows in their rounding
        sub = (rng.normal(0, 1, shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(dtype)
        sc["a_out"][-1], sc["b_out"][-1] = 1.5, -0.0
        sub[..., -1, :, 0] = -0.0      # numpy's sum of -0.0 is +0.0: it starts from 0
        _same(readout(sub, sc), readout(sub, sc, kernel=False))


def test_readout_hand_values():
    sub = np.full((2, 16, 3), 2 / 31)
    sub[1, :, 2] = -1.0
    got = readout(sub, {"a_out": np.array([2.0, 0.5]), "b_out": np.array([1.0, -1.0])})
    np.testing.assert_allclose(got, [[2 * 32 / 31 + 1] * 3, [0.5 * 32 / 31 - 1] * 2 + [0.5 * -16 - 1]], rtol=1e-15)


def test_the_numpy_path_is_kept_where_the_kernel_does_not_apply():
    hw = _hw()
    sc = layer_scalers(None, 0, 12, 12)
    x = np.random.default_rng(0).normal(0, 0.3, (12, 64))
    # a non-contiguous view, an integer array: the same values either way
    _same(dac_query(x.T.copy().T, sc, hw, "cubic"), dac_query(x, sc, hw, "cubic", kernel=False))
    for got, want in zip(dac_step(x, x[:, ::2], x[:, 1::2], sc, hw, "cubic"),   # k, v views: the numpy path
                         (dac_query(x, sc, hw, "cubic", kernel=False),
                          dac_kv(x[:, ::2], sc["a_k"], sc["b_k"], hw, "cubic", kernel=False),
                          dac_kv(x[:, 1::2], sc["a_v"], sc["b_v"], hw, "cubic", kernel=False))):
        _same(got, want)
    ints = np.arange(12 * 64).reshape(12, 64) % 3 - 1
    _same(output_code(ints, hw), physics.output_code(ints, 40.0, 32))


def test_the_simulator_and_the_step_form_take_the_kernels(tmp_path, monkeypatch):
    """A functional run on a trace (float32 and float64) and DecodeState never fall back to the
    numpy path of the DACs and counters (a silent fallback would cost ~50 us per layer step)."""
    from gcsim.reference import DecodeState
    from gcsim.sim import Simulator
    from gcsim.traces import open_trace, write_synthetic

    def numpy_path(*args, **kwargs):
        raise AssertionError("the numpy path ran")
    hw = load_hardware("smollm2").derive(shape={"layers": 2, "window": 64})
    s = hw.shape
    trace = open_trace(write_synthetic(tmp_path / "t.gctrace", layers=2, heads=s.heads, kv_heads=s.kv_heads,
                                       d_head=s.d_head, steps=6, seed=0))
    monkeypatch.setattr(physics, "scale_clip_quantize", numpy_path)
    monkeypatch.setattr(physics, "output_code", numpy_path)
    for dtype in ("float32", "float64"):
        Simulator(hw.derive(numerics={"dtype": dtype}), trace, values=True).run()
    st = DecodeState(hw)
    st.write(0, trace.k[0, 0], trace.v[0, 0], 0)
    assert np.isfinite(st.read(trace.q[0, 0], 0, 0).out).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_kernel_finds_every_nan_and_inf_as_isfinite_does(dtype):
    from gcsim.finite import all_finite

    rng = np.random.default_rng(3)
    big = np.finfo(dtype).max
    assert all_finite(np.full((12, 1, 1024), big, dtype), np.full((12, 64), -big, dtype))   # finite extremes
    assert all_finite(np.zeros(0, dtype), None)
    for bad in (np.nan, np.inf, -np.inf):
        for pos in (0, 1, 4095, 12287):   # first, inside, last element of a [12, 1, 1024] S
            x = rng.normal(size=(12, 1, 1024)).astype(dtype)
            x.reshape(-1)[pos] = bad
            assert not all_finite(x) and not bool(np.isfinite(x).all())
            assert not all_finite(np.ones((12, 64), dtype), x)
            view = x[:, :, ::2]   # strided: the numpy path; it holds the bad value iff its slot is even
            assert all_finite(view) == ((pos % 1024) % 2 == 1)
