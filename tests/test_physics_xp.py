"""physics on other array libraries (array API): the same values as numpy, arrays of the
caller's library back, and the rounding hook of the quantizer."""
import numpy as np
import pytest

from gcsim import physics


def _pipeline(q, yk, yv, decay, valid, a_q, coeffs, xp=None):
    """One bank read, DAC to output code, through physics only."""
    q_in = physics.scale_clip_quantize(q, a_q, 0.0, 0.0, 1.0, 16, xp=xp)
    S = physics.bitline_charges_qk(q_in, physics.stored_powers(yk, len(coeffs)), decay, valid, coeffs)
    phi = physics.hard_sigmoid(S, 80.0)
    A = physics.bitline_charges_av(phi, physics.stored_powers(yv, len(coeffs)), decay, coeffs, 64)
    return physics.output_code(A, 40.0, 32)


def _inputs():
    rng = np.random.default_rng(3)
    kv, g, m, d = 2, 3, 128, 8
    return (rng.uniform(0, 1, (kv, g, d)), rng.uniform(-0.45, 0.45, (kv, m, d)),
            rng.uniform(-0.45, 0.45, (kv, m, d)), rng.uniform(0.5, 1, m), rng.uniform(size=m) > 0.2,
            np.full((kv, g, 1), 0.8))


@pytest.mark.parametrize("law", ["linear", "cubic"])
def test_array_api_strict_gives_numpys_codes(law):
    xs = pytest.importorskip("array_api_strict")
    args = _inputs()
    c = physics.law_coefficients(law)
    want = _pipeline(*args, c)
    got = _pipeline(*(xs.asarray(a) for a in args), c)
    assert type(got).__module__.startswith("array_api_strict")  # stays in the caller's library
    np.testing.assert_array_equal(np.asarray(got), want)
    # the output codes are multiples of 2/31 within [-16, 16] steps
    codes = np.asarray(got) * 31 / 2
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-9)
    assert np.abs(codes).max() <= 16


def test_torch_cpu_gives_numpys_codes():
    torch = pytest.importorskip("torch")
    args = _inputs()
    c = physics.law_coefficients("cubic")
    got = _pipeline(*(torch.asarray(a) for a in args), c)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), _pipeline(*args, c))


def test_namespace_numpy_is_numpy_itself():
    assert physics.namespace(np.zeros(2), 1.0, None) is np
    assert physics.namespace(0.5) is np


def test_round_hook_replaces_the_rounding():
    # step 1/15: 0.1 -> 1.5 steps, 0.5 -> 7.5 steps; floor gives 1 and 7, half-to-even 2 and 8
    x = np.array([0.1, 0.5])
    np.testing.assert_allclose(physics.quantize(x, 0, 1, 16), [2 / 15, 8 / 15])
    np.testing.assert_allclose(physics.quantize(x, 0, 1, 16, round_fn=np.floor), [1 / 15, 7 / 15])
    # through the DAC front end and the output counter too: A/out_sat = 0.25 -> 3.875 steps of 2/31
    np.testing.assert_allclose(physics.output_code(np.array(10.0), 40.0, 32, round_fn=np.floor), 3 * 2 / 31)
    np.testing.assert_allclose(physics.scale_clip_quantize(x, 1.0, 0.0, 0, 1, 16, round_fn=np.ceil), [2 / 15, 8 / 15])
