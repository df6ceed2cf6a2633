"""The chip model: its training forward is the reference model, its training is exact on resume."""
import numpy as np
import pytest

from gcsim.chipmodel import data
from gcsim.chipmodel.model import ModelConfig, hardware_attention, init_params, window_decay
from gcsim.hardware import load_hardware
from gcsim.reference import layer_attention

HW = load_hardware("chipgpt")


def _inputs(seed, B=2, T=256):
    rng = np.random.default_rng(seed)
    H, d = HW.shape.heads, HW.shape.d_head
    q, k, v = rng.normal(0.3, 0.3, (B, T, H, d)), rng.normal(0, 0.3, (B, T, H, d)), rng.normal(0, 0.3, (B, T, H, d))
    sc = {key: val.astype(np.float64) + rng.normal(0, 0.1, val.shape)
          for key, val in init_params(ModelConfig(), 0).items() if key[:2] in ("a_", "b_")}
    return q, k, v, sc


def test_corpus_split_and_vocabulary():
    text = data.read_corpus()
    assert len(text) == 1115394
    vocab = data.vocabulary(text)
    assert len(vocab) == 65 and vocab[0] == "\n"
    train, val = data.split(data.encode(text, vocab))
    assert len(train) == 1003854 and len(train) + len(val) == len(text)
    assert data.decode(val[:20], vocab) == text[1003854:1003874]
    with pytest.raises(ValueError, match=r"'\{' at position 3"):
        data.encode("abc{", vocab)


def test_decay_matrix_is_the_nominal_retention():
    d = window_decay(3, HW)
    rate = HW.timing.nominal_token_period_ps / HW.decay_tau_ps  # 260 ns / 5 ms
    assert rate == pytest.approx(5.2e-5)
    np.testing.assert_allclose(d, [[1, 0, 0], [np.exp(-rate), 1, 0], [np.exp(-2 * rate), np.exp(-rate), 1]])


@pytest.mark.parametrize("T", [256, 100])
def test_numpy_forward_attention_equals_reference(T):
    q, k, v, sc = _inputs(1, T=T)
    out = hardware_attention(q, k, v, sc, 2, HW, np)
    for b in range(q.shape[0]):
        ref = layer_attention(q[b], k[b], v[b], HW, scalers=sc, layer=2, stages=False).out
        np.testing.assert_allclose(out[b], ref, rtol=0, atol=1e-12)
    assert np.abs(out).max() > 0.5  # the comparison is not between zeros


def test_training_forward_attention_equals_reference():
    """The JAX forward used for training gives the reference model's outputs (float64)."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    q, k, v, sc = _inputs(2)
    with jax.enable_x64(True):
        out = np.asarray(hardware_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                                            {key: jnp.asarray(val) for key, val in sc.items()}, 1, HW, jnp))
    for b in range(q.shape[0]):
        ref = layer_attention(q[b], k[b], v[b], HW, scalers=sc, layer=1, stages=False).out
        np.testing.assert_allclose(out[b], ref, rtol=0, atol=1e-12)


def test_straight_through_rounding_passes_the_gradient():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    from gcsim import physics
    from gcsim.chipmodel.train import ste_round

    f = lambda x: jnp.sum(physics.quantize(x, 0.0, 1.0, 16, ste_round, xp=jnp))  # noqa: E731
    x = jnp.asarray([0.01, 0.52, 0.97])
    assert float(f(x)) == pytest.approx(0.0 + 8 / 15 + 1.0)  # the forward rounds
    np.testing.assert_allclose(np.asarray(jax.grad(f)(x)), [1.0, 1.0, 1.0])  # the gradient does not


@pytest.mark.slow
def test_training_resumes_exactly(tmp_path):
    """Two iterations, a stop, two more: the same weights as four in one go (smoke test of
    `gcsim train`, tiny batch)."""
    pytest.importorskip("jax")
    from gcsim.chipmodel.train import train
    from gcsim.chipmodel.weights import load_weights

    quiet = lambda *a: None  # noqa: E731
    a = train("chip", tmp_path / "a", iters=4, batch_size=2, warmup=2, eval_every=4, eval_batches=1, log=quiet)
    assert train("chip", tmp_path / "b", iters=4, batch_size=2, warmup=2, eval_every=4, eval_batches=1,
                 stop_at=2, log=quiet) is None
    assert load_weights(tmp_path / "b" / "chipgpt-chip.npz").meta["stopped_at"] == 2  # --stop-at writes weights
    b = train("chip", tmp_path / "b", iters=4, batch_size=2, warmup=2, eval_every=4, eval_batches=1, log=quiet)
    wa, wb = load_weights(a), load_weights(b)
    init = init_params(wa.cfg, 1337)
    assert set(wa.params) == set(init)
    for key in wa.params:
        np.testing.assert_array_equal(wa.params[key], wb.params[key])
    assert any(not np.array_equal(wa.params[key], init[key]) for key in init)  # it trained
    assert not np.array_equal(wa.params["a_q"], init["a_q"])  # the scalers learn too
    assert wa.meta["iterations"] == 4 and wa.cfg.attention == "cubic"
