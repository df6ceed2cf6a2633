"""Device non-idealities (numerics.noise): a counter-based generator (the same value for the same
position, whatever the order of draws), applied alike in the reference model and the simulator."""
from pathlib import Path

import numpy as np
import pytest
from inputs import random_trace
from naive import naive_head

from gcsim import HardwareError, load_hardware
from gcsim import physics
from gcsim.commands.validate import validate
from gcsim.hardware import parse_overrides
from gcsim.kernels import codes_exact, make_store
from gcsim.noise import cell_factors, hash_keys, standard_normal
from gcsim.reference import layer_attention
from gcsim.sim import Simulator

ROOT = Path(__file__).resolve().parent.parent
HW = load_hardware("chipgpt")
# 2 layers x 4 heads on 2 K/V banks (GQA), window 16 in 2 sub-tiles; tau 2 us: retention visible
SMALL = load_hardware().derive(shape={"layers": 2, "heads": 4, "kv_heads": 2, "d_head": 8, "window": 16,
                                      "array_size": 8}, numerics={"retention": {"tau_ns": 2000.0}},
                               costs={"model": "table"})
KINDS = {"read_sigma_rel": 0.05, "write_sigma_v": 0.02, "cell_sigma_rel": 0.1, "tau_sigma_ln": 0.7}


def with_noise(hw, **fields):
    return hw.derive(numerics={"noise": fields})


def sim_outputs(hw, trace, steps):
    out = np.zeros((steps, hw.shape.layers, hw.shape.heads, hw.shape.d_head))

    def hook(seq, t, l, ages, S, phi, codes, o):
        out[t, l] = o
    Simulator(hw, trace, steps=steps, stages_hook=hook).run()
    return out


def _sample_std_tol(sigma, n):
    """5 standard errors of the sample standard deviation of n normal draws: sigma / sqrt(2n)."""
    return 5 * sigma / np.sqrt(2 * n)


# ---- the generator ---------------------------------------------------------------------

def test_generator_is_stateless_and_standard_normal():
    z = standard_normal(7, "read_s", np.arange(200)[:, None], np.arange(500)[None, :])
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.std() - 1.0) < _sample_std_tol(1.0, z.size)
    assert abs((z > 1.96).mean() - 0.025) < 0.002  # the tail of N(0, 1)
    # one value at a time equals the block: a pure function of the position
    assert standard_normal(7, "read_s", 123, 321) == z[123, 321]
    assert standard_normal(8, "read_s", 123, 321) != z[123, 321]      # the seed matters
    assert standard_normal(7, "read_a", 123, 321) != z[123, 321]      # so does the stream
    assert hash_keys(1, 1, 2, 3) != hash_keys(1, 1, 3, 2)             # and the key order


def test_fixed_pattern_factors_have_the_stated_spread():
    noise = with_noise(HW, seed=2, cell_sigma_rel=0.08, tau_sigma_ln=0.6).numerics.noise
    f = cell_factors(noise, 0, 1, 4, np.arange(1024), 64)
    n = f["gain_k"].size
    for key in ("gain_k", "gain_v"):
        assert f[key].shape == (4, 1024, 64)
        assert abs(f[key].std() - 0.08) < _sample_std_tol(0.08, n) and abs(f[key].mean() - 1) < 5 * 0.08 / n ** 0.5
    for key in ("inv_tau_k", "inv_tau_v"):  # tau_cell = tau / inv_tau is log-normal: ln(inv_tau) ~ N(0, 0.6)
        ln = np.log(f[key])
        assert abs(ln.std() - 0.6) < _sample_std_tol(0.6, n) and abs(ln.mean()) < 5 * 0.6 / n ** 0.5
    assert not np.array_equal(f["gain_k"], f["gain_v"])                 # K and V arrays apart
    # a cell's factors depend on its position only: a subset of slots gives the same values
    sub = cell_factors(noise, 0, 1, 4, np.array([5, 900]), 64)
    np.testing.assert_array_equal(sub["gain_k"], f["gain_k"][:, [5, 900]])
    other = cell_factors(noise, 1, 1, 4, np.array([5, 900]), 64)       # another sequence's arrays
    assert not np.array_equal(other["gain_k"], sub["gain_k"])
    assert cell_factors(HW.numerics.noise, 0, 1, 4, np.arange(4), 64)["gain_k"] is None   # off by default


# ---- description fields ---------------------------------------------------------------------

def test_noise_fields_are_off_by_default_settable_and_checked():
    n = HW.numerics.noise
    assert (n.seed, n.read_sigma_rel, n.write_sigma_v, n.cell_sigma_rel, n.tau_sigma_ln) == (0, 0, 0, 0, 0)
    assert not n.active
    hw = HW.derive(**parse_overrides(["numerics.noise.cell_sigma_rel=0.1", "numerics.noise.seed=4"]))
    assert hw.numerics.noise.cell_sigma_rel == 0.1 and hw.numerics.noise.per_cell and hw.numerics.noise.active
    with pytest.raises(HardwareError, match=r"numerics.noise.write_sigma_v': value -0.1 is out of range \(allowed "
                                            r"0 <= x <= 1 V\)"):
        with_noise(HW, write_sigma_v=-0.1)
    with pytest.raises(HardwareError, match="numerics.noise.tau_sigma_ln"):
        with_noise(HW, tau_sigma_ln=9)
    with pytest.raises(HardwareError, match="numerics.noise.seed': expected an integer"):
        with_noise(HW, seed=0.5)
    with pytest.raises(HardwareError, match="unknown field 'numerics.noise.sigma'"):
        with_noise(HW, sigma=0.1)


def test_stores_hold_floats_when_noise_perturbs_values():
    assert make_store(HW, np.float32).kind == "codes" and codes_exact(HW)
    for name, sigma in KINDS.items():
        hw = with_noise(HW, **{name: sigma})
        assert make_store(hw, np.float32).kind == "powers", name
        with pytest.raises(ValueError, match="no device noise"):
            make_store(hw, np.float32, kind="codes")
    assert not codes_exact(with_noise(HW, write_sigma_v=0.01))     # stored values are not codes
    assert not codes_exact(with_noise(HW, cell_sigma_rel=0.01))


# ---- the reference model: seeded, keyed by position, sigma as stated --------------------------

def _qkv(T=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.3, 0.3, (T, 2, 64)), rng.normal(0, 0.3, (T, 2, 64)), rng.normal(0, 0.3, (T, 2, 64))


@pytest.mark.parametrize("name", list(KINDS))
def test_noise_in_the_reference_is_seeded_and_keyed_by_position(name):
    q, k, v = _qkv(300)  # past the 256-slot window: slots are reused
    hw = HW.derive(numerics={"retention": {"tau_ns": 20_000.0}})  # decay visible (tau spread matters)
    clean = layer_attention(q, k, v, hw, layer=1).out
    noisy = with_noise(hw, seed=3, **{name: KINDS[name]})
    a = layer_attention(q, k, v, noisy, layer=1).out
    np.testing.assert_array_equal(a, layer_attention(q, k, v, noisy, layer=1).out)  # reproducible
    assert not np.array_equal(a, clean)
    assert not np.array_equal(a, layer_attention(q, k, v, with_noise(hw, seed=4, **{name: KINDS[name]}), layer=1).out)
    # the first 100 steps see the same draws whether 100 or 300 steps are computed, in blocks of any size
    np.testing.assert_array_equal(layer_attention(q[:100], k[:100], v[:100], noisy, layer=1, block=37).out, a[:100])
    # sigma 0 with a seed is the ideal chip, bit for bit
    np.testing.assert_array_equal(layer_attention(q, k, v, with_noise(hw, seed=3), layer=1).out, clean)


def test_a_part_of_a_sequence_draws_what_the_whole_does():
    """The block-wise reference (offset/skip, what validate runs) keys its draws by absolute
    step and slot: a part equals the whole, bit for bit, with every non-ideality on."""
    from gcsim.reference import steps_block
    hw = with_noise(HW.derive(numerics={"retention": {"tau_ns": 20_000.0}}), seed=5, **KINDS)
    q, k, v = _qkv(400)
    whole = layer_attention(q, k, v, hw, layer=2)
    off, skip = steps_block(300, 400, hw)
    part = layer_attention(q[off:], k[off:], v[off:], hw, layer=2, offset=off, skip=skip)
    np.testing.assert_array_equal(part.out, whole.out[300:])
    np.testing.assert_array_equal(part.S, whole.S[300:])


def test_read_noise_has_the_stated_relative_sigma():
    q, k, v = _qkv()
    clean = layer_attention(q, k, v, HW).S
    noisy = layer_attention(q, k, v, with_noise(HW, seed=1, read_sigma_rel=0.1)).S
    ok = np.abs(clean) > 1e-6
    rel = noisy[ok] / clean[ok] - 1.0
    assert abs(rel.std() - 0.1) < _sample_std_tol(0.1, rel.size) and abs(rel.mean()) < 5 * 0.1 / rel.size ** 0.5


def test_write_noise_moves_the_stored_values_by_sigma():
    q, k, v = _qkv()
    clean = layer_attention(q, k, v, HW)
    noisy = layer_attention(q, k, v, with_noise(HW, seed=1, write_sigma_v=0.03))
    for dev in (noisy.k_in - clean.k_in, noisy.v_in - clean.v_in):
        assert abs(dev.std() - 0.03) < _sample_std_tol(0.03, dev.size)
    np.testing.assert_array_equal(noisy.q_in, clean.q_in)  # queries are not written


def test_per_cell_form_equals_the_factored_polynomial_without_spread():
    """physics' per-cell bank read (cell law per cell) against the factored form (powers of
    the stored values, decay per slot) on the same inputs: the same sums, another order."""
    rng = np.random.default_rng(0)
    q = rng.uniform(0, 1, (2, 3, 8))
    y = rng.uniform(-0.45, 0.45, (2, 16, 8))
    decay = rng.uniform(0.5, 1.0, 16)
    valid = np.arange(16) < 13
    coeffs = physics.law_coefficients("cubic")
    pows = physics.stored_powers(y, 4)
    S = physics.bitline_charges_qk(q, pows, decay, valid, coeffs)
    i = physics.cell_currents_ua(y, physics.decay_per_cell(decay[:, None], None), coeffs)
    np.testing.assert_allclose(physics.bitline_charges_qk_cells(q, i, valid), S, rtol=1e-12, atol=1e-12)
    phi = physics.hard_sigmoid(S, 80.0) * valid
    np.testing.assert_allclose(physics.bitline_charges_av_cells(phi, i, 8),
                               physics.bitline_charges_av(phi, pows, decay, coeffs, 8), rtol=1e-12, atol=1e-12)
    # a cell with tau / 2 retains decay ** 2; gain scales its current
    np.testing.assert_allclose(physics.cell_currents_ua(np.array([0.3]), physics.decay_per_cell(
        np.array([0.9]), np.array([2.0])), coeffs, np.array([1.1])), 1.1 * physics.cell_cubic_ua(0.3 * 0.81))


# ---- the simulator: validate exact with noise on; against a naive per-cell statement ------------

@pytest.mark.parametrize("fields", [{k: v} for k, v in KINDS.items()] + [KINDS], ids=[*KINDS, "all"])
def test_validate_stays_exact_with_noise(fields):
    hw = with_noise(SMALL, seed=9, **fields)
    tr = random_trace(hw, 40, seed=3)  # 40 steps wrap the 16-slot window
    rep = validate(hw, tr, stage_steps=40)
    assert rep["pass"]
    for row in rep["layers"]:
        assert row["exact"]["code_mismatches"] == 0 and row["exact"]["out"]["max_abs"] < 1e-12
    hw64 = hw.derive(numerics={"dtype": "float64"})
    out = sim_outputs(hw64, tr, 40)
    assert not np.array_equal(out, sim_outputs(SMALL.derive(numerics={"dtype": "float64"}), tr, 40))  # it acts
    np.testing.assert_array_equal(out, sim_outputs(hw64, tr, 40))                                       # same seed
    assert not np.array_equal(out, sim_outputs(with_noise(hw64, seed=10, **fields), tr, 40))           # new seed


def test_simulator_noise_matches_a_naive_statement_of_the_keys():
    """One head, every non-ideality on: the simulator against tests/naive.py given the draws
    computed here from the documented keys (gcsim/noise.py). Fixed-pattern factors are indexed
    by slot only: tokens t and t + 16 share a slot and its factors (never keyed by step)."""
    hw = load_hardware().derive(shape={"layers": 1, "heads": 1, "kv_heads": 1, "d_head": 8, "window": 16,
                                       "array_size": 8},
                                numerics={"dtype": "float64", "retention": {"tau_ns": 800.0},
                                          "noise": {"seed": 21, **KINDS}},
                                costs={"model": "table"})  # 65 ns per token
    T, M, d, seed = 40, 16, 8, 21
    t, slot, col = np.arange(T)[:, None], np.arange(M), np.arange(d)
    z = lambda stream, *keys: standard_normal(seed, stream, *keys)  # noqa: E731
    dev = {"write_k": 0.02 * z("write_k", 0, 0, 0, t % M, col, t), "write_v": 0.02 * z("write_v", 0, 0, 0, t % M, col, t),
           "gain_k": 1 + 0.1 * z("cell_k", 0, 0, 0, slot[:, None], col), "gain_v": 1 + 0.1 * z("cell_v", 0, 0, 0, slot[:, None], col),
           "inv_tau_k": np.exp(-0.7 * z("tau_k", 0, 0, 0, slot[:, None], col)),
           "inv_tau_v": np.exp(-0.7 * z("tau_v", 0, 0, 0, slot[:, None], col)),
           "read_s": 1 + 0.05 * z("read_s", 0, 0, 0, slot, t),
           "read_a": 1 + 0.05 * z("read_a", 0, 0, 0, np.arange(2)[:, None], col, t[:, :, None])}
    tr = random_trace(hw, T, seed=11)
    seen = {}
    Simulator(hw, tr, stages_hook=lambda seq, t, l, ages, S, phi, codes, out: seen.__setitem__(
        t, (S.reshape(-1).copy(), codes.reshape(2, 8).copy(), out.reshape(-1).copy()))).run()
    S, phi, sub, out = naive_head(tr.q[:, 0, 0], tr.k[:, 0, 0], tr.v[:, 0, 0], M=16, a=8, period_ns=65.0,
                                  tau_ns=800.0, dev=dev)
    for step in range(T):
        np.testing.assert_allclose(seen[step][0], S[step], rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(seen[step][1], sub[step])
        np.testing.assert_allclose(seen[step][2], out[step], rtol=1e-12, atol=1e-12)


def test_noise_off_is_bit_identical():
    """All sigmas 0 (whatever the seed) is today's chip: the same store and the same bits."""
    off = with_noise(SMALL, seed=77)
    assert not off.numerics.noise.active and make_store(off, np.float32).kind == make_store(SMALL, np.float32).kind
    tr = random_trace(SMALL, 30, seed=2)
    np.testing.assert_array_equal(sim_outputs(off, tr, 30), sim_outputs(SMALL, tr, 30))


# ---- gcsim eval: accuracy against sigma, and noise in the loop ---------------------------------

@pytest.mark.slow
def test_eval_sweeps_each_non_ideality_reproducibly(tmp_path, capsys):
    import json

    from gcsim.cli import main as cli
    args = ["eval", "--windows", "1", "--sim-windows", "0", "--sensitivity-windows", "0", "--noise-windows", "1",
            "--read-sigma", "0,0.1", "--write-sigma", "0.05", "--cell-sigma", "0.2", "--tau-sigma", "2",
            "--noise-seed", "3", "--no-progress"]
    reps = []
    for run in ("a", "b"):
        assert cli(args + ["-o", str(tmp_path / run)]) == 0
        reps.append(json.loads((tmp_path / run / "eval.json").read_text()))
    assert reps[0]["noise_sweep"] == reps[1]["noise_sweep"]        # seeded: the same figures
    sweep = reps[0]["noise_sweep"]
    assert set(sweep) == {"read_sigma_rel", "write_sigma_v", "cell_sigma_rel", "tau_sigma_ln"}
    ref = [r for r in reps[0]["rows"] if "software model" in r["variant"]][0]
    assert sweep["read_sigma_rel"][0]["perplexity"] == ref["perplexity"]   # sigma 0: the ideal chip
    for name, pts in sweep.items():
        assert pts[-1]["perplexity"] != ref["perplexity"] and pts[-1]["top1_agreement"] < 1, name
    assert cli(args[:-1] + ["--tau-sigma", "9", "-o", str(tmp_path / "c")]) == 2
    assert "numerics.noise.tau_sigma_ln': value 9.0 is out of range" in capsys.readouterr().err


def test_eval_with_noise_in_the_description_runs_it_in_the_simulator_too(tmp_path):
    """--set numerics.noise...: the reference and the simulator in the loop draw the same values,
    so they give the same perplexity (the simulator in float32: within 1 %)."""
    import json

    from gcsim.cli import main as cli
    out = tmp_path / "ev"
    assert cli(["eval", "--windows", "1", "--sim-windows", "1", "--sensitivity-windows", "0", "--no-progress",
                "--set", "numerics.noise.cell_sigma_rel=0.3", "--set", "numerics.noise.read_sigma_rel=0.1",
                "-o", str(out)]) == 0
    rows = json.loads((out / "eval.json").read_text())["rows"]
    ref, sim = ([r for r in rows if key in r["variant"]][0] for key in ("software model", "simulator"))
    assert sim["perplexity"] == pytest.approx(ref["perplexity"], rel=0.01)


@pytest.mark.parametrize("device", ["array-api-strict", "torch:cpu"])
def test_noise_on_another_array_library_gives_the_cpu_codes(device):
    """The store's noise on the device path (array-api-strict, torch on the CPU: stand-ins for
    a GPU): the draws are made on the host and moved, the per-cell form is array-generic."""
    pytest.importorskip({"array-api-strict": "array_api_strict", "torch:cpu": "torch"}[device])
    hw = with_noise(SMALL.derive(numerics={"dtype": "float64"}), seed=4, **KINDS)
    tr = random_trace(hw, 24, seed=6)
    outs = {dev: Simulator(hw, tr, outputs=np.zeros((24, 2, 4, 8)), device=dev).run().outputs
            for dev in ("cpu", device)}
    np.testing.assert_allclose(outs[device], outs["cpu"], rtol=0, atol=1e-12)
    assert not np.array_equal(outs["cpu"], sim_outputs(SMALL.derive(numerics={"dtype": "float64"}), tr, 24))


@pytest.mark.slow
def test_the_noise_sweep_example_validates_every_point(tmp_path):
    import gcsim
    rows = gcsim.sweep(str(ROOT / "examples" / "sweep_noise.yaml"), jobs=1, out=str(tmp_path / "sw"))
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    assert len(rows) == 9 and all(r["validate_pass"] for r in rows)
    cos = {(r["numerics.noise.read_sigma_rel"], r["numerics.noise.cell_sigma_rel"]): r["out_cosine_vs_softmax"]
           for r in rows}
    assert len(set(cos.values())) == 9   # every sigma moves the outputs
