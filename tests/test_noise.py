"""Device noise: a counter-based generator (the same value for the same position, whatever the
order of draws) applied in the reference model."""
import numpy as np
import pytest

from gcsim.hardware import load_hardware
from gcsim.noise import Noise, hash_keys, standard_normal
from gcsim.reference import layer_attention

HW = load_hardware("chipgpt")


def test_generator_is_stateless_and_standard_normal():
    z = standard_normal(7, "read_s", np.arange(200)[:, None], np.arange(500)[None, :])
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs((z > 1.96).mean() - 0.025) < 0.002  # the tail of N(0, 1)
    # one value at a time equals the block: a pure function of the position
    assert standard_normal(7, "read_s", 123, 321) == z[123, 321]
    assert standard_normal(8, "read_s", 123, 321) != z[123, 321]      # the seed matters
    assert standard_normal(7, "read_a", 123, 321) != z[123, 321]      # so does the stream
    assert hash_keys(1, 1, 2, 3) != hash_keys(1, 1, 3, 2)             # and the key order


def _qkv(T=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.3, 0.3, (T, 2, 64)), rng.normal(0, 0.3, (T, 2, 64)), rng.normal(0, 0.3, (T, 2, 64))


def test_noise_in_the_reference_is_seeded_and_keyed_by_position():
    q, k, v = _qkv()
    clean = layer_attention(q, k, v, HW, layer=1).out
    n = Noise(seed=3, read_sigma_rel=0.05, write_sigma_v=0.02)
    a = layer_attention(q, k, v, HW, layer=1, noise=n).out
    np.testing.assert_array_equal(a, layer_attention(q, k, v, HW, layer=1, noise=n).out)  # reproducible
    assert not np.array_equal(a, clean)
    assert not np.array_equal(a, layer_attention(q, k, v, HW, layer=1, noise=Noise(seed=4, read_sigma_rel=0.05,
                                                                                       write_sigma_v=0.02)).out)
    # the first 100 steps see the same draws whether 100 or 200 steps are computed
    short = layer_attention(q[:100], k[:100], v[:100], HW, layer=1, noise=n).out
    np.testing.assert_array_equal(short, a[:100])
    # sigma 0 is the ideal chip
    np.testing.assert_array_equal(layer_attention(q, k, v, HW, layer=1, noise=Noise(seed=3)).out, clean)


def test_read_noise_has_the_stated_relative_sigma():
    q, k, v = _qkv()
    clean = layer_attention(q, k, v, HW).S
    noisy = layer_attention(q, k, v, HW, noise=Noise(seed=1, read_sigma_rel=0.1)).S
    ok = np.abs(clean) > 1e-6
    rel = noisy[ok] / clean[ok] - 1.0
    assert rel.std() == pytest.approx(0.1, rel=0.05) and abs(rel.mean()) < 0.005


def test_write_noise_moves_the_stored_values_by_sigma():
    q, k, v = _qkv()
    clean = layer_attention(q, k, v, HW)
    noisy = layer_attention(q, k, v, HW, noise=Noise(seed=1, write_sigma_v=0.03))
    dk = noisy.k_in - clean.k_in
    assert dk.std() == pytest.approx(0.03, rel=0.05)
    np.testing.assert_array_equal(noisy.q_in, clean.q_in)  # queries are not written


def test_bad_noise_settings():
    with pytest.raises(ValueError, match="read_sigma_rel"):
        Noise(read_sigma_rel=-0.1)
    with pytest.raises(ValueError, match="seed"):
        Noise(seed=-1)
