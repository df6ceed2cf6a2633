"""The fused kernel over compact K/V codes is a second implementation of physics' bank
read: checked here against gcsim.physics code for code (float64), within the float32
rounding at code boundaries, and independent of the number of threads."""
import numpy as np
import pytest

from gcsim import load_hardware, physics
from gcsim.datapath import dac_kv, dac_query, layer_scalers
from gcsim.kernels import CodeStore, NotOnGrid, PowerStore, codes_exact, make_store

numba = pytest.importorskip("numba")


def _hw(**shape):
    hw = load_hardware("paper-gpt2")
    return hw.derive(shape=shape) if shape else hw


def _filled(hw, dtype, seed=0, n_written=None, law="cubic"):
    """A code store and a powers store holding the same DAC-written K/V, and a read's inputs."""
    s = hw.shape
    rng = np.random.default_rng(seed)
    sc = layer_scalers(None, 0, s.heads, s.kv_heads)
    sc["a_k"][:] = rng.uniform(0.5, 1.5, s.kv_heads)
    stores = [make_store(hw, dtype, kind="codes"), make_store(hw, dtype, kind="powers")]
    n_written = s.window if n_written is None else n_written
    for j in range(n_written):
        k = dac_kv(rng.normal(0, 0.25, (s.kv_heads, s.d_head)).astype(dtype), sc["a_k"], sc["b_k"], hw, law)
        v = dac_kv(rng.normal(0, 0.25, (s.kv_heads, s.d_head)).astype(dtype), sc["a_v"], sc["b_v"], hw, law)
        for st in stores:
            st.write(j, k, v)
    q = dac_query(rng.uniform(0, 1, (s.heads, s.d_head)).astype(dtype), sc, hw, law)
    valid = np.arange(s.window) < n_written
    decay = np.where(valid, rng.uniform(0.8, 1.0, s.window), 0.0).astype(dtype)
    return stores, q.reshape(s.kv_heads, s.group_size, s.d_head), decay, valid


def _codes(A, hw):
    n = hw.numerics
    return physics.quantize_code(np.clip(A.astype(np.float64) / n.out_sat, -1, 1), -1, 1, n.out_levels)


@pytest.mark.parametrize("law, shape, n_written", [
    ("cubic", {"window": 256}, None),                                   # GPT-2 heads, full window
    ("cubic", {"window": 256}, 100),                                    # partly written window
    ("linear", {"window": 128}, None),
    ("cubic", {"heads": 6, "kv_heads": 2, "window": 128}, 90),          # GQA: 3 query heads per bank
    ("cubic", {"d_head": 30, "window": 96, "array_size": 32}, None),    # d and rows not multiples of 4
])
def test_kernel_equals_physics_in_float64(law, shape, n_written):
    hw = _hw(**shape).derive(numerics={"cell_law": law})
    (cs, ps), q, decay, valid = _filled(hw, np.float64, n_written=n_written, law=law)
    S, phi, A = cs.read(q, decay, valid)
    S0, phi0, A0 = ps.read(q, decay, valid)
    # only the order of the dot products' additions differs
    np.testing.assert_allclose(S, S0, rtol=1e-12, atol=1e-12 * np.abs(S0).max())
    np.testing.assert_allclose(phi, phi0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(A, A0, rtol=1e-12, atol=1e-12 * np.abs(A0).max())
    np.testing.assert_array_equal(_codes(A, hw), _codes(A0, hw))
    assert (S[..., ~valid] == 0).all() and (phi[..., ~valid] == 0).all()
    assert len(np.unique(_codes(A, hw))) > 5  # the codes spread over the range, not all clipped


def test_kernel_equals_the_cell_law_cell_by_cell():
    # independent of physics' expansion: f(y * decay) evaluated per cell, summed directly
    hw = _hw(window=128)
    (cs, _), q, decay, valid = _filled(hw, np.float64, seed=4)
    k, v = cs.values()
    fk = physics.cell_cubic_ua(k * decay[None, :, None])
    S = np.einsum("kgd,kmd->kgm", q, fk) * valid
    phi = np.clip(S / hw.numerics.s_sat, 0, 1)
    fv = physics.cell_cubic_ua(v * decay[None, :, None])
    n_sub, a = hw.shape.n_sub_tiles, hw.shape.array_size
    A = np.einsum("kgsj,ksjd->kgsd", phi.reshape(*phi.shape[:2], n_sub, a), fv.reshape(fv.shape[0], n_sub, a, -1))
    S1, phi1, A1 = cs.read(q, decay, valid)
    np.testing.assert_allclose(S1, S, rtol=1e-12)
    np.testing.assert_allclose(A1, A, rtol=1e-11, atol=1e-12)


def test_float32_codes_differ_only_at_code_boundaries():
    hw = _hw(window=256)
    n = hw.numerics
    step = 2 / (n.out_levels - 1)
    mismatches = 0
    for seed in range(4):
        (cs64, ps64), q64, decay64, valid = _filled(hw, np.float64, seed=seed)
        (cs32, _), q32, decay32, _ = _filled(hw, np.float32, seed=seed)
        exact = np.clip(ps64.read(q64, decay64, valid)[2] / n.out_sat, -1, 1) / step  # in code steps
        got = _codes(cs32.read(q32, decay32, valid)[2], hw)
        bad = got != _codes(exact * step * n.out_sat, hw)
        boundary = np.floor(exact) + 0.5
        # float32 sums of 64 signed terms: their rounding error scales with the terms, not with the
        # code, so the distance is measured against full scale (out_sat): within 1e-6 of it
        # (benchmarks/float32_codes.py: at most 5.5e-7 over 2.5 M codes; relative to the boundary's
        # own value the same distances reach 2.3e-6, at boundaries near zero)
        assert (np.abs(exact - boundary)[bad] * step <= 1e-6).all()
        mismatches += int(bad.sum())
    assert mismatches <= 2  # of 4 x 12 x 4 x 64 codes: a code boundary that close is rare


def test_results_do_not_depend_on_the_number_of_threads():
    from gcsim.kernels import bitline

    hw = _hw(window=256, heads=6, kv_heads=2)   # 6 units: split 1, 2, 3 and 4 ways (uneven too)
    (cs, _), q, decay, valid = _filled(hw, np.float32, seed=2)
    before = bitline.get_threads()
    try:
        runs = []
        for n in (1, 2, 3, 4):
            bitline.set_threads(n)
            runs.append(cs.read(q, decay, valid))
    finally:
        bitline.set_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert a.tobytes() == b.tobytes()
    with pytest.raises(ValueError, match=">= 1"):
        bitline.set_threads(0)


def test_codes_are_one_byte_per_cell_and_round_trip():
    hw = _hw()
    s = hw.shape
    (cs, ps), _, _, _ = _filled(hw, np.float32, n_written=8)
    assert isinstance(cs, CodeStore) and isinstance(ps, PowerStore)
    assert cs.nbytes() == 2 * s.kv_heads * s.window * s.d_head            # 1.5 MiB per GPT-2 layer
    assert ps.nbytes() == 2 * 3 * 4 * s.kv_heads * s.window * s.d_head    # 12x that in float32 powers
    k, v = cs.values()
    np.testing.assert_array_equal(k[:, :8], ps.k_pow[0, :, :8])  # the 8 slots written
    np.testing.assert_array_equal(v[:, :8], ps.v_pow[0, :, :8])
    # a level is code * 0.9/7 - 0.45: code 0 -> -0.45 V, code 7 -> +0.45 V
    assert k.min() == np.float32(-0.45) and set(np.unique(cs.k_codes)) <= set(range(8))


def test_a_value_off_the_dac_grid_is_refused():
    hw = _hw(window=64)
    cs = make_store(hw, np.float32, kind="codes")
    on = np.full((hw.shape.kv_heads, hw.shape.d_head), np.float32(3 * 0.9 / 7) - np.float32(0.45), np.float32)
    cs.write(0, on, on)
    assert (cs.k_codes[:, :, 0] == 3).all()
    off = on.copy()
    off[1, 5] += np.float32(1e-4)  # e.g. write noise
    with pytest.raises(NotOnGrid, match="not a write-DAC level"):
        cs.write(1, off, on)
    with pytest.raises(TypeError, match="float64"):
        cs.write(1, on.astype(np.float64), on)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_slot_write_stores_each_value_as_its_code(dtype):
    hw = _hw(window=128)
    s = hw.shape
    cs = make_store(hw, dtype, kind="codes")
    f, rng = np.dtype(dtype).type, np.random.default_rng(1)
    for slot in (0, 77, 127):
        kc, vc = rng.integers(0, 8, (2, s.kv_heads, s.d_head))
        level = lambda c: f(0.9 / 7) * c.astype(dtype) - f(0.45)   # noqa: E731  the DAC's level of code c
        cs.write(slot, level(kc), level(vc))
        np.testing.assert_array_equal(cs.k_codes[:, :, slot], kc)
        np.testing.assert_array_equal(cs.v_codes[:, slot, :], vc)
    assert (cs.k_codes[:, :, 1:77] == 0).all() and (cs.v_codes[:, 1:77] == 0).all()   # nothing else written
    bad = level(kc)
    bad[3, 4] = np.nan
    with pytest.raises(NotOnGrid):
        cs.write(5, level(kc), bad)
    with pytest.raises(ValueError, match="shape"):
        cs.write(5, level(kc)[:, :10], level(vc)[:, :10])


def test_store_choice():
    hw = _hw(window=64)
    assert codes_exact(hw) and make_store(hw, np.float32).kind == "codes"
    unq = hw.derive(numerics={"kv_levels": None})
    assert not codes_exact(unq) and make_store(unq, np.float32).kind == "powers"
    with pytest.raises(ValueError, match="quantizing write DAC"):
        make_store(unq, np.float32, kind="codes")


def test_prefilled_window_equals_replaying_the_tokens_before():
    """RingBuffer.prefill (benchmarks start long windows full): tokens -P..-1 written one
    per period before time 0, then steps 0.. read them as a sequence M tokens longer would
    (token u there is token u + M, in the same slot)."""
    from gcsim.reference import DecodeState, layer_attention

    hw = _hw(window=128)
    s, M, n = hw.shape, 128, 6
    P = M - 1
    period = hw.timing.nominal_token_period_ps
    rng = np.random.default_rng(7)
    q, k, v = (rng.normal(0, 0.3, (M + n, h, s.d_head)) for h in (s.heads, s.kv_heads, s.kv_heads))
    want = layer_attention(q, k, v, hw, stages=False).out[M:]  # token u + M read at (u + M) x period
    st = DecodeState(hw)
    sc = st.sc
    st.ring.prefill(P, period, lambda u: (dac_kv(k[u + M], sc["a_k"], sc["b_k"], hw, "cubic"),
                                          dac_kv(v[u + M], sc["a_v"], sc["b_v"], hw, "cubic")))
    assert st.ring.counts(-1) == (P, s.n_sub_tiles) and st.ring.oldest_slot(0) == 1  # token -127 sits in slot 1
    for t in range(n):
        st.write(t, k[M + t], v[M + t], t * period)
        assert st.ring.valid(t).all() and st.ring.counts(t) == (M, s.n_sub_tiles)
        np.testing.assert_allclose(st.read(q[M + t], t, t * period).out, want[t], rtol=1e-9, atol=1e-12)


def test_float32_dac_levels_are_the_float64_levels():
    """The DAC front end picks its level in float64 whatever the working precision. A trace's
    calibrated scalers put some inputs on a level boundary to float64 precision (synthetic
    GPT-2 traces: a x + b = 3.4999999999999996 steps for 7 k and 5 v values of 1.7 M); float32
    rounded them onto the other level, a whole level (0.129 V) in a stored cell, which made
    float32 replays differ from float64 by far more than rounding (benchmarks/float32_trace.py).
    Inputs built on boundaries here: the float32 scaler alone moves many of them."""
    hw = _hw()
    n, kv = hw.numerics, hw.shape.kv_heads
    step = (n.kv_range_v[1] - n.kv_range_v[0]) / (n.kv_levels - 1)
    rng = np.random.default_rng(0)
    moved = 0
    for _ in range(50):
        x = rng.normal(0, 0.1, (kv, 64)).astype(np.float16).astype(np.float64)
        a = rng.uniform(0.03, 0.1, kv)
        b = (rng.integers(1, 7, kv) + 0.5) * step - a * x[:, 0]      # x[:, 0] on a boundary
        want = dac_kv(x, a, b, hw, "cubic")
        got = dac_kv(x.astype(np.float32), a, b, hw, "cubic")
        assert got.dtype == np.float32
        level = lambda y, f: np.round((y + f(0.45)) / f(step))   # noqa: E731
        np.testing.assert_array_equal(level(got, np.float32), level(want, np.float64))
        naive = physics.scale_clip_quantize(x.astype(np.float32), a.astype(np.float32)[:, None],
                                            b.astype(np.float32)[:, None], *n.kv_range_v, n.kv_levels)
        moved += int((np.round(naive / np.float32(step)) != level(want, np.float64)).sum())
    assert moved > 20       # of 600 inputs on a boundary: what float32 alone did to them


def test_float32_codes_on_a_validation_trace(tmp_path):
    """A synthetic trace replayed through the float32 kernel (DAC codes) and float64 physics,
    reads at full window: a code differs only where its boundary lies between the float32 and
    the float64 sum, and that float32 error stays below 1e-5 of full scale (out_sat): float32
    sums of 64 rows whose phi carry the error of a 64-term K sum (benchmarks/float32_trace.py,
    GPT-2 shape, 3.1 M codes: error up to 6.5e-6 of full scale, 18 codes differ, each within
    1.1e-6 of full scale of its boundary)."""
    from gcsim.datapath import retention_decay
    from gcsim.reference import DecodeState
    from gcsim.traces import open_trace, write_synthetic
    hw = _hw(layers=1, heads=4, kv_heads=2, window=128)
    s, n = hw.shape, hw.numerics
    step = 2 / (n.out_levels - 1)
    tr = open_trace(write_synthetic(tmp_path / "t.gctrace", layers=1, heads=4, kv_heads=2, steps=200, seed=2))
    states = {d: DecodeState(hw, dtype=d, storage=k, scalers=tr.scalers)
              for d, k in ((np.float32, "codes"), (np.float64, "powers"))}
    worst, total, differ = 0.0, 0, 0
    for t in range(200):
        reads = {}
        for d, st in states.items():
            st.write(t, np.asarray(tr.k[t, 0], np.float64), np.asarray(tr.v[t, 0], np.float64), 1000 * t)
            ring, valid = st.ring, st.ring.valid(t)
            decay = np.where(valid, retention_decay(ring.ages_ps(1000 * t), ring.ages_tokens(t), hw), 0.0).astype(d)
            q = dac_query(np.asarray(tr.q[t, 0], d), st.sc, hw, "cubic").reshape(s.kv_heads, s.group_size, -1)
            reads[d] = ring.read(q, decay, valid)
        if t < s.window:
            continue
        A64 = reads[np.float64][2]
        A32 = reads[np.float32][2].astype(np.float64)
        worst = max(worst, float(np.abs(A32 - A64).max() / n.out_sat))
        x64, x32 = (np.clip(A / n.out_sat, -1, 1) / step for A in (A64, A32))
        bad = np.round(x32) != np.round(x64)
        boundary = (np.round(x32) + np.round(x64)) / 2
        # a differing code has its boundary between the two values: within the float32 error
        assert (np.abs(x64 - boundary)[bad] * step * n.out_sat <= np.abs(A32 - A64)[bad]).all()
        total, differ = total + bad.size, differ + int(bad.sum())
    assert 0 < worst <= 1e-5
    assert total == 72 * 4 * 2 * 64 and differ <= 2, differ
