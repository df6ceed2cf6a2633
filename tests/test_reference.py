import numpy as np
import pytest

from gcsim import load_hardware
from gcsim.reference import DecodeState, ReferenceModelError, head_attention, layer_attention
from naive import naive_head


@pytest.fixture(scope="module")
def small_hw():
    # window 32 in 4 sub-tiles of 8, d_head 8: wraps after 32 tokens
    return load_hardware().derive(shape={"window": 32, "array_size": 8, "d_head": 8, "layers": 1,
                                         "heads": 6, "kv_heads": 2})


def _inputs(T, H, KV, d, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.2, 1.1, (T, H, d)), rng.normal(0, 0.25, (T, KV, d)), rng.normal(0, 0.25, (T, KV, d)))


@pytest.mark.parametrize("kind", ["linear", "cubic"])
def test_head_matches_naive_loop_across_wrap(small_hw, kind):
    q, k, v = _inputs(80, 1, 1, 8)
    sc = {"a_q": 0.9, "b_q": 0.05, "a_k": 1.2, "b_k": 0.44, "a_v": 0.8, "b_v": 0.46, "a_out": 0.5, "b_out": 0.1}
    # slow retention so decay matters visibly at this length: tau = 20 token periods
    hw = small_hw.derive(numerics={"retention": {"tau_ns": 16000.0}})
    st = head_attention(q[:, 0], k[:, 0], v[:, 0], hw, variant=kind, scalers=sc)
    S, phi, sub, out = naive_head(q[:, 0], k[:, 0], v[:, 0], kind=kind, M=32, a=8, tau_ns=16000.0, sc=sc)
    np.testing.assert_allclose(st.S, S, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(st.phi, phi, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(st.sub_out, sub)
    np.testing.assert_allclose(st.out, out, rtol=1e-12, atol=1e-12)
    assert 0 < (phi > 0).mean() < 1 and (sub != 0).any()  # the case exercises the nonlinearity


def test_hand_computed_single_token():
    # one token, q' = 1 everywhere (a_q=0, b_q=1), k' = 0.9 (y = +0.45), v' = 0 (y = -0.45)
    hw = load_hardware().derive(shape={"window": 64, "array_size": 64})
    d = 64
    sc = {"a_q": 0.0, "b_q": 1.0, "a_k": 0.0, "b_k": 0.9, "a_v": 0.0, "b_v": 0.0}
    z = np.zeros((1, d))
    st = head_attention(z, z, z, hw, variant="linear", scalers=sc)
    # S = 64 * 19.3 * 0.45 = 555.84 -> phi = 1 (saturated); A = 1 * 19.3 * -0.45 = -8.685 per column
    assert st.S[0, 0] == pytest.approx(555.84)
    assert st.phi[0, 0] == 1.0 and st.phi[0, 1:].sum() == 0
    # -8.685 / 40 = -0.217125 -> round(-0.217125 * 15.5) = round(-3.365) = -3 steps of 2/31
    np.testing.assert_allclose(st.sub_out[0, 0], -3 * 2 / 31)
    np.testing.assert_allclose(st.out[0], -3 * 2 / 31)
    # cubic: S = 64 * f(0.45) = 64 * 10.312983 ; A = f(-0.45) = 0.52136 - 6.1255 - 0.5306 - 4.1967
    st = head_attention(z, z, z, hw, variant="cubic", scalers=sc)
    assert st.S[0, 0] == pytest.approx(64 * 10.312983, rel=1e-5)
    a = 0.52136 - 13.61226 * 0.45 - 2.62045 * 0.2025 - 46.05484 * 0.091125
    np.testing.assert_allclose(st.sub_out[0, 0], np.round(a / 40 * 15.5) * 2 / 31)


def test_softmax_variant_is_sliding_window_softmax(small_hw):
    q, k, v = _inputs(50, 6, 2, 8, seed=3)
    st = layer_attention(q, k, v, small_hw, variant="softmax")
    t, h = 45, 4
    kv = h // 3
    u = np.arange(t - 31, t + 1)
    s = k[u, kv] @ q[t, h] / np.sqrt(8)
    w = np.exp(s - s.max()); w /= w.sum()
    np.testing.assert_allclose(st.out[t, h], w @ v[u, kv], rtol=1e-12)
    np.testing.assert_allclose(st.phi[t, h, u % 32], w, rtol=1e-12)


@pytest.mark.parametrize("variant", ["softmax", "linear", "cubic"])
def test_step_form_equals_sequence_form_with_explicit_ages(small_hw, variant):
    T = 90  # wraps the 32-slot window almost three times
    q, k, v = _inputs(T, 6, 2, 8, seed=5)
    hw = small_hw.derive(numerics={"retention": {"tau_ns": 20000.0}})
    rng = np.random.default_rng(9)
    # irregular timing: a write then a read some time later, gaps between steps
    write = np.cumsum(rng.integers(100_000, 3_000_000, T))
    read = write + rng.integers(5_000, 50_000, T)
    seq = layer_attention(q, k, v, hw, variant=variant, write_times_ps=write, read_times_ps=read)
    state = DecodeState(hw, variant=variant)
    for t in range(T):
        state.write(t, k[t], v[t], int(write[t]))
        r = state.read(q[t], t, int(read[t]))
        np.testing.assert_allclose(r.S, seq.S[t], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(r.phi, seq.phi[t], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(r.out, seq.out[t], rtol=1e-10, atol=1e-12)
        if variant != "softmax":
            np.testing.assert_array_equal(r.sub_out, seq.sub_out[t])


def test_gqa_group_one_equals_plain_multihead(small_hw):
    mha = small_hw.derive(shape={"heads": 2, "kv_heads": 2})
    q, k, v = _inputs(40, 2, 2, 8, seed=7)
    st = layer_attention(q, k, v, mha)
    for h in range(2):
        one = head_attention(q[:, h], k[:, h], v[:, h], mha)
        np.testing.assert_array_equal(st.out[:, h], one.out)
        np.testing.assert_array_equal(st.S[:, h], one.S)


def test_gqa_heads_share_their_kv_bank(small_hw):
    q, k, v = _inputs(40, 6, 2, 8, seed=8)
    st = layer_attention(q, k, v, small_hw)
    for h in range(6):
        one = head_attention(q[:, h], k[:, h // 3], v[:, h // 3], small_hw)
        np.testing.assert_allclose(st.out[:, h], one.out, rtol=1e-12, atol=1e-12)


def test_per_token_decay_mode_equals_time_mode_at_nominal_period(small_hw):
    q, k, v = _inputs(60, 6, 2, 8, seed=2)
    by_time = layer_attention(q, k, v, small_hw)
    by_token = layer_attention(q, k, v, small_hw.derive(numerics={"retention": {"mode": "per_token"}}))
    np.testing.assert_allclose(by_time.S, by_token.S, rtol=1e-12)
    off = layer_attention(q, k, v, small_hw.derive(numerics={"retention": {"mode": "off"}}))
    assert not np.allclose(off.S, by_time.S, rtol=1e-9)


def test_quantization_off_gives_unquantized_stages(small_hw):
    hw = small_hw.derive(numerics={"q_levels": None, "kv_levels": None, "out_levels": None})
    q, k, v = _inputs(20, 6, 2, 8, seed=4)
    st = layer_attention(q, k, v, hw)
    assert len(np.unique(st.q_in)) > 100 and len(np.unique(st.sub_out)) > 100


@pytest.mark.parametrize("args, message", [
    (((30, 6, 8), (30, 2, 8), (29, 2, 8)), r"v: expected shape \[30, 2, 8\], found \[29, 2, 8\]"),
    (((30, 5, 8), (30, 2, 8), (30, 2, 8)), r"q: expected shape \[T, 6, 8\], found \[30, 5, 8\]"),
])
def test_bad_shapes(small_hw, args, message):
    arrays = [np.zeros(s) for s in args]
    with pytest.raises(ReferenceModelError, match=message):
        layer_attention(*arrays, small_hw)


def test_nan_and_unknown_variant(small_hw):
    q, k, v = _inputs(10, 6, 2, 8)
    k[4, 1, 3] = np.nan
    with pytest.raises(ReferenceModelError, match=r"k: NaN or Inf at index \[4, 1, 3\]"):
        layer_attention(q, k, v, small_hw)
    with pytest.raises(ReferenceModelError, match="unknown variant 'relu'"):
        layer_attention(q, q[:, :2], q[:, :2], small_hw, variant="relu")
