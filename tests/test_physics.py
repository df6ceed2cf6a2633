import math

import numpy as np
import pytest

from gcsim import physics


def test_cubic_coefficients_from_the_ten_cij():
    # docs/paper-model.md: summing C_ij 0.9**j over j gives 0.52136, 13.61226, -2.62045, 46.05484
    np.testing.assert_allclose(physics.cubic_coefficients(), [0.52136, 13.61226, -2.62045, 46.05484], atol=5e-6)


def test_cubic_law_equals_double_sum_form():
    c = physics.CUBIC_C_IJ
    for y in (-0.45, -0.2, 0.0, 0.1285714, 0.45):
        idx, direct = 0, 0.0
        for i in range(4):
            for j in range(4 - i):
                direct += c[idx] * y ** i * 0.9 ** j
                idx += 1
        assert physics.cell_cubic_ua(y) == pytest.approx(direct, rel=1e-12)


def test_cell_laws_hand_values():
    assert physics.cell_linear_ua(0.45) == pytest.approx(8.685)
    assert physics.cell_linear_ua(-0.1) == pytest.approx(-1.93)
    # f(0.45) = 0.52136 + 13.61226*0.45 - 2.62045*0.2025 + 46.05484*0.091125
    assert physics.cell_cubic_ua(0.45) == pytest.approx(0.52136 + 6.125517 - 0.530641 + 4.196747, abs=1e-4)
    assert physics.cell_current_ua(0.0, "cubic") == pytest.approx(0.52136, abs=1e-5)
    with pytest.raises(ValueError, match="unknown cell law 'quadratic'"):
        physics.cell_current_ua(0.1, "quadratic")


def test_quantizer_levels_and_edges():
    # q: 16 levels over [0, 1] -> step 1/15
    x = np.array([0.0, 1 / 30 - 1e-9, 1 / 30 + 1e-9, 0.5, 1.0])
    # 0.5 / (1/15) = 7.5 rounds half to even: 8
    np.testing.assert_allclose(physics.quantize(x, 0, 1, 16), [0, 0, 1 / 15, 8 / 15, 1.0])
    levels = np.unique(physics.quantize(np.linspace(0, 1, 10001), 0, 1, 16))
    assert len(levels) == 16
    # k/v: 8 levels over [0, 0.9] -> step 0.9/7; 0.45 (the zero) falls between levels 3 and 4
    kv = np.unique(physics.quantize(np.linspace(0, 0.9, 10001), 0, 0.9, 8))
    np.testing.assert_allclose(kv, np.arange(8) * 0.9 / 7)
    # output: [-1, 1], 32 levels, step 2/31; +-1 round to +-16 steps as in the published code
    assert physics.quantize(np.array(1.0), -1, 1, 32) == pytest.approx(16 * 2 / 31)
    assert physics.quantize(np.array(-1.0), -1, 1, 32) == pytest.approx(-16 * 2 / 31)
    assert physics.quantize_code(np.array([0.0, 0.03, 0.04, -1.0]), -1, 1, 32).tolist() == [0, 0, 1, -16]
    # off
    np.testing.assert_array_equal(physics.quantize(x, 0, 1, None), x)


def test_hard_sigmoid_and_output_code():
    np.testing.assert_allclose(physics.hard_sigmoid(np.array([-5.0, 0, 40, 80, 200]), 80.0), [0, 0, 0.5, 1, 1])
    # as a pulse width: S = 20 of S_sat = 80 drives a quarter of T_max = 15 ns
    assert physics.hard_sigmoid(np.array(20.0), 80.0, t_max_ns=15.0) == pytest.approx(3.75)
    # A = 20 -> 0.5 -> round(0.5 * 15.5) = round(7.75) = 8 steps of 2/31
    assert physics.output_code(np.array(20.0), 40.0, 32) == pytest.approx(8 * 2 / 31)
    assert physics.output_code(np.array(-1000.0), 40.0, 32) == pytest.approx(-32 / 31)


def test_decay_per_token_equals_time_form():
    # 1.6e-4 per token == exp(-0.8 us / 5 ms)
    ages_tok = np.arange(0, 2000, 7)
    by_time = physics.decay_from_age(ages_tok * 800_000, 5e9)  # ps
    np.testing.assert_allclose(physics.decay_per_token(ages_tok, 1.6e-4), by_time, rtol=1e-12)
    assert physics.decay_from_age(5e9, 5e9) == pytest.approx(math.exp(-1))
    np.testing.assert_array_equal(physics.decay_from_age(np.array([0, 10**12]), None), [1, 1])


def test_ring_buffer_slots_across_the_wrap():
    M = 8
    assert physics.ring_slot(11, M) == 3
    assert physics.sub_tile_of_slot(physics.ring_slot(1030, 1024), 64) == 0
    assert physics.sub_tile_of_slot(70, 64) == 1
    np.testing.assert_array_equal(physics.slot_tokens(2, M), [0, 1, 2, -1, -1, -1, -1, -1])
    np.testing.assert_array_equal(physics.valid_slots(2, M), [1, 1, 1, 0, 0, 0, 0, 0])
    # at t = 10 slots hold 8, 9, 10, 3..7: the window t-M+1 .. t
    np.testing.assert_array_equal(physics.slot_tokens(10, M), [8, 9, 10, 3, 4, 5, 6, 7])
    assert physics.valid_slots(10, M).all()


def test_bitline_expansion_equals_elementwise_law():
    rng = np.random.default_rng(1)
    kv, g, m, d, a = 2, 3, 8, 5, 4
    q = rng.uniform(0, 1, (kv, g, d))
    yk = rng.uniform(-0.45, 0.45, (kv, m, d))
    yv = rng.uniform(-0.45, 0.45, (kv, m, d))
    decay = rng.uniform(0.5, 1, m)
    valid = np.array([1, 1, 1, 0, 1, 1, 0, 1], bool)
    c = physics.law_coefficients("cubic")
    S = physics.bitline_charges_qk(q, physics.stored_powers(yk, 4), decay, valid, c)
    direct = np.einsum("kgd,kmd->kgm", q, physics.cell_cubic_ua(yk * decay[None, :, None])) * valid
    np.testing.assert_allclose(S, direct, rtol=1e-12)
    phi = rng.uniform(0, 1, (kv, g, m)) * valid
    A = physics.bitline_charges_av(phi, physics.stored_powers(yv, 4), decay, c, a)
    f = physics.cell_cubic_ua(yv * decay[None, :, None])
    direct = np.einsum("kgsj,ksjd->kgsd", phi.reshape(kv, g, 2, a), f.reshape(kv, 2, a, d))
    np.testing.assert_allclose(A, direct, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_quantizers_equal_the_plain_formula(dtype):
    # the numpy path works in place; it must give the bits of the formula written out
    rng = np.random.default_rng(7)
    x = rng.normal(0.3, 0.7, (50, 6, 8)).astype(dtype)
    x.flat[:20] = np.arange(20) * (0.9 / 14)          # on half steps of 8 levels over 0.9: ties
    x.flat[20:23] = [np.nan, np.inf, -np.inf]
    a, b = rng.uniform(0.5, 1.5, (6, 1)), rng.uniform(-0.1, 0.5, (6, 1))
    for lo, hi, levels in ((0.0, 1.0, 16), (0.0, 0.9, 8), (-1.0, 1.0, 32)):
        step = (hi - lo) / (levels - 1)
        clipped = np.clip(a.astype(dtype) * x + b.astype(dtype), lo, hi)
        want = step * np.round(clipped / step)
        got = physics.scale_clip_quantize(x, a, b, lo, hi, levels)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
    A = 10 * x
    want = (2 / 31) * np.round(np.clip(A / 10.0, -1.0, 1.0) / (2 / 31))
    assert np.array_equal(physics.output_code(A, 10.0, 32), want, equal_nan=True)
    # scalars, and scalers that broadcast beyond x
    assert physics.quantize(0.52, 0, 1, 16) == pytest.approx(8 / 15)
    assert physics.output_code(3.0, 10.0, 32) == pytest.approx(5 * 2 / 31)
    assert physics.scale_clip_quantize(np.ones(3, dtype), 1.0, np.zeros((2, 1)), 0, 1, 16).shape == (2, 3)
