"""The chip model: its training forward is the reference model, its training is exact on resume."""
import numpy as np
import pytest
from inputs import strong_chip_params

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
@pytest.mark.parametrize("name", ["chip", pytest.param("softmax", marks=pytest.mark.slow)])
def test_training_resumes_exactly(name, tmp_path):
    """Two iterations, a stop, two more: the same losses and weights as four in one go (smoke
    test of `gcsim train`, tiny batch); a chunk killed after logging past its checkpoint leaves
    no record the resumed run repeats."""
    pytest.importorskip("jax")
    import json
    from gcsim.chipmodel.train import train
    from gcsim.chipmodel.weights import load_weights

    quiet = lambda *a: None  # noqa: E731
    small = dict(iters=4, batch_size=2, warmup=2, eval_every=4, eval_batches=1, log=quiet)
    a = train(name, tmp_path / "a", **small)
    assert train(name, tmp_path / "b", stop_at=2, **small) is None
    assert load_weights(tmp_path / "b" / f"chipgpt-{name}.npz").meta["stopped_at"] == 2  # --stop-at writes weights
    with open(tmp_path / "b" / f"{name}.log.jsonl", "a") as f:   # as if killed after logging iteration 3
        f.write(json.dumps({"iter": 3, "loss": 9.0}) + "\n")
    b = train(name, tmp_path / "b", **small)
    logs = [[json.loads(line) for line in open(tmp_path / d / f"{name}.log.jsonl")] for d in "ab"]
    assert [r["iter"] for r in logs[1]] == [1, 2, 3, 4]
    assert [r["loss"] for r in logs[0]] == [r["loss"] for r in logs[1]]
    wa, wb = load_weights(a), load_weights(b)
    init = init_params(wa.cfg, 1337)
    assert set(wa.params) == set(init)
    for key in wa.params:
        np.testing.assert_array_equal(wa.params[key], wb.params[key])
    assert any(not np.array_equal(wa.params[key], init[key]) for key in init)  # it trained
    if name == "chip":
        assert not np.array_equal(wa.params["a_q"], init["a_q"])  # the scalers learn too
        assert wa.meta["grad_law"] == "linear"
    assert wa.meta["iterations"] == 4 and wa.cfg.attention == ("cubic" if name == "chip" else "softmax")


def _strong_params(attention="cubic", seed=3):
    """Untrained weights scaled up so that attention matters (tests/inputs.py), and 32 ids."""
    p, cfg, vocab = strong_chip_params(attention, seed)
    return p, cfg, data.encode(data.read_corpus()[:32], vocab)


def _naive_logits(p, cfg, ids, attention):
    from naive import naive_gpt_logits
    return naive_gpt_logits(p, ids, layers=cfg.layers, heads=cfg.heads, d_head=cfg.d_head, attention=attention,
                            period_ns=HW.timing.nominal_token_period_ps / 1000, tau_ns=HW.decay_tau_ps / 1000,
                            M=HW.shape.window, a=HW.shape.array_size)


@pytest.mark.parametrize("attention", ["cubic", pytest.param("linear", marks=pytest.mark.slow),
                                       pytest.param("softmax", marks=pytest.mark.slow)])
def test_whole_forward_equals_an_independent_one(attention):
    """The whole forward pass (embeddings, layer norms, projections, attention, MLP, tied LM
    head), in float64 and in float32, against tests/naive.py's token-by-token float64
    restatement, which shares no code with gcsim."""
    from gcsim.chipmodel.model import forward
    p, cfg, ids = _strong_params(attention)
    ref = _naive_logits(p, cfg, ids, attention)
    assert np.abs(ref - ref.mean(axis=1, keepdims=True)).max() > 0.1  # logits are not flat
    f64 = forward({k: v.astype(np.float64) for k, v in p.items()}, ids[None], cfg, np, hw=HW)[0]
    np.testing.assert_allclose(f64, ref, rtol=0, atol=1e-9)
    f32 = forward(p, ids[None], cfg, np, hw=HW)[0]
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, ref, rtol=0, atol=2e-4)  # float32 through sharp softmax: ~6e-5


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["cubic", "softmax"])
def test_training_forward_equals_an_independent_one(attention):
    """The same for the JAX forward pass that training runs (float32)."""
    jax = pytest.importorskip("jax")
    from gcsim.chipmodel.model import forward
    jnp = jax.numpy
    p, cfg, ids = _strong_params(attention)
    ref = _naive_logits(p, cfg, ids, attention)
    fj = np.asarray(forward({k: jnp.asarray(v) for k, v in p.items()}, jnp.asarray(ids[None]), cfg, jnp, hw=HW)[0])
    assert fj.dtype == np.float32
    np.testing.assert_allclose(fj, ref, rtol=0, atol=2e-4)


def test_linear_surrogate_gradient():
    """with_gradient_of: the K-array charges of the cubic cell in the forward pass, and in the
    backward pass the paper's surrogate, by hand: dS/dq = 19.3 (g decay) y^T and
    dS/dy = 19.3 q^T (g decay) (its code's DRAM_MAC_temporal_encoding_surrogate_QK)."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    from gcsim import physics
    from gcsim.chipmodel.gradients import with_gradient_of
    rng = np.random.default_rng(6)
    q, y = rng.uniform(0, 1, (3, 8, 16)), rng.uniform(-0.45, 0.45, (3, 8, 16))
    decay, valid = window_decay(8, HW), np.tril(np.ones((8, 8), bool))
    g = rng.normal(size=(3, 8, 8))

    def charges(law):
        c = physics.law_coefficients(law)
        return lambda q, y: physics.bitline_charges_qk(q, physics.stored_powers(y, len(c), xp=jnp), jnp.asarray(decay),
                                                       jnp.asarray(valid), c, xp=jnp)
    f = with_gradient_of(charges("cubic"), charges("linear"))
    with jax.enable_x64(True):
        S, vjp = jax.vjp(f, jnp.asarray(q), jnp.asarray(y))
        dq, dy = (np.asarray(a) for a in vjp(jnp.asarray(g)))
        S_cubic = np.asarray(charges("cubic")(jnp.asarray(q), jnp.asarray(y)))
    np.testing.assert_array_equal(np.asarray(S), S_cubic)
    gd = g * decay * valid
    np.testing.assert_allclose(dq, 19.3 * gd @ y, rtol=1e-12)
    np.testing.assert_allclose(dy, 19.3 * np.swapaxes(gd, 1, 2) @ q, rtol=1e-12)


@pytest.mark.slow
def test_attention_with_the_surrogate_gradient():
    """hardware_attention(grad_law='linear'): the cubic forward pass unchanged, a gradient
    other than the cubic law's own, reaching the scalers."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    from gcsim.chipmodel.train import ste_round
    q, k, v, sc = _inputs(4, B=1, T=64)
    w = np.random.default_rng(5).normal(size=q.shape)

    def grads(grad_law):
        def f(q, sc):
            out = hardware_attention(q, jnp.asarray(k), jnp.asarray(v), sc, 1, HW, jnp, ste_round, grad_law)
            return jnp.sum(out * w), out
        return jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(jnp.asarray(q), {key: jnp.asarray(val)
                                                                                  for key, val in sc.items()})
    with jax.enable_x64(True):
        (_, out_s), g_s = grads("linear")
        (_, out_c), g_c = grads(None)
    np.testing.assert_array_equal(np.asarray(out_s), np.asarray(out_c))
    ref = layer_attention(q[0], k[0], v[0], HW, scalers=sc, layer=1, stages=False).out
    np.testing.assert_allclose(np.asarray(out_s)[0], ref, atol=1e-12)
    assert np.abs(np.asarray(g_s[0]) - np.asarray(g_c[0])).max() > 1e-3
    assert all(np.abs(np.asarray(g_s[1][key])).max() > 0 for key in ("a_q", "b_k", "a_v", "a_out"))


def test_threads_take_the_least_busy_cores():
    """--threads n pins the process to the n cores busiest least over a short sample (two runs
    with --threads 1 started side by side on 2 cores took the same first core before)."""
    from gcsim.chipmodel.train import least_busy_cores
    samples = iter([{0: 1000, 1: 500, 2: 700, 3: 0}, {0: 1100, 1: 500, 2: 705, 3: 50}])  # busy: 100, 0, 5, 50
    assert least_busy_cores([0, 1, 2, 3], 2, sample_s=0, ticks=lambda: next(samples)) == [1, 2]
    assert least_busy_cores([0, 1, 2], 2, sample_s=0, ticks=lambda: {}) == [0, 1]   # no /proc/stat: the first
