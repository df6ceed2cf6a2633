"""Data-dependent array energy (`costs.array_read: charge`, gcsim/costs.py): the integrated
|I| x pulse width of a read by hand, both K/V stores against a per-cell loop, the paper's
1120 / 700 pJ on the calibration trace, and the refusal of timing-only runs."""

import numpy as np
import pytest

from gcsim import costs, physics
from gcsim.cli import main as cli
from gcsim.errors import SimError
from gcsim.hardware import load_hardware
from gcsim.kernels import bitline
from gcsim.kernels.store import CodeStore, PowerStore

STEP = 0.9 / 7   # 3-bit write DAC over [0, 0.9] V


def _stores(law, kv, m, d, array_size):
    coeffs = physics.law_coefficients(law)
    ps = PowerStore(kv, m, d, np.float64, coeffs, array_size, 80.0)
    cs = CodeStore(kv, m, d, np.float64, coeffs, array_size, 80.0, kv_range_v=(0.0, 0.9), kv_levels=8) \
        if bitline.AVAILABLE else None
    return [s for s in (ps, cs) if s is not None]


def _write(store, slot, k_codes, v_codes):
    dev = lambda c: np.asarray(c, np.float64) * STEP - physics.V_ZERO_V  # noqa: E731
    if isinstance(store, CodeStore):
        dev = lambda c: np.asarray(c, np.float64) * store.step - store.zero  # noqa: E731
    store.write(slot, dev(k_codes), dev(v_codes))


@pytest.mark.parametrize("kind", [0, 1])
def test_read_charge_by_hand_linear_law(kind):
    """One head, d = 2, two slots, linear law f = 19.3 uA/V x y. K codes (rows d, columns j)
    [[0, 7], [3, 4]], V codes (rows j) [[7, 0], [4, 4]]; decay (1, 0.5); q = (0.2, 1.0);
    phi = (0.5, 0.25). y(code) = code x 0.9/7 - 0.45: -0.45, 0.45, -0.0642857, 0.0642857."""
    stores = _stores("linear", 1, 2, 2, 2)
    if kind >= len(stores):
        pytest.skip("numba absent: no code store")
    store = stores[kind]
    _write(store, 0, [[0, 3]], [[7, 0]])        # slot 0: K column (d0, d1) = (0, 3), V row (7, 0)
    _write(store, 1, [[7, 4]], [[4, 4]])
    decay, valid = np.array([1.0, 0.5]), np.array([True, True])
    k_rows, v_rows = store.row_abs_currents(decay, valid)
    # K row d0: |19.3 x -0.45 x 1| + |19.3 x 0.45 x 0.5| = 8.685 + 4.3425
    # K row d1: |19.3 x -0.0642857| + |19.3 x 0.0642857 x 0.5| = 1.2407143 + 0.6203571
    assert k_rows[0] == pytest.approx([13.0275, 1.8610714], rel=1e-6)
    # V row j0: 8.685 + 8.685; V row j1: 2 x |19.3 x 0.0642857 x 0.5| = 1.2407143
    assert v_rows[0] == pytest.approx([17.37, 1.2407143], rel=1e-6)
    qk, qv = physics.read_abs_charges(np.array([[[0.2, 1.0]]]), np.array([[[0.5, 0.25]]]), k_rows, v_rows)
    assert qk[0, 0] == pytest.approx(0.2 * 13.0275 + 1.0 * 1.8610714, rel=1e-6)      # 4.4665714 uA x T_max
    assert qv[0, 0] == pytest.approx(0.5 * 17.37 + 0.25 * 1.2407143, rel=1e-6)        # 8.9951786
    # V_dd x charge: 0.9 V x 4.4665714 uA x 15 ns = 60.30 fJ drawn by the K cells of this read
    assert 0.9 * qk[0, 0] * 1e-6 * 15e-9 == pytest.approx(60.2987e-15, rel=1e-4)


def test_both_stores_match_a_per_cell_loop_cubic_law():
    """Random codes, decay and validity, cubic law: CodeStore, PowerStore and a loop over every
    cell with physics.cell_current_ua give the same integrated |I|; invalid slots add nothing."""
    rng = np.random.default_rng(3)
    kv, g, m, d = 2, 3, 8, 5
    stores = _stores("cubic", kv, m, d, 4)
    kc, vc = rng.integers(0, 8, (m, kv, d)), rng.integers(0, 8, (m, kv, d))
    for s in stores:
        for j in range(m):
            _write(s, j, kc[j], vc[j])
    decay = rng.uniform(0.3, 1.0, m)
    valid = rng.random(m) < 0.7
    q = rng.uniform(0, 1, (kv, g, d))
    phi = rng.uniform(0, 1, (kv, g, m)) * valid
    want_k, want_v = np.zeros((kv, g)), np.zeros((kv, g))
    for a in range(kv):
        for h in range(g):
            for j in range(m):
                for e in range(d):
                    yk = (kc[j, a, e] * STEP - 0.45) * decay[j]
                    yv = (vc[j, a, e] * STEP - 0.45) * decay[j]
                    if valid[j]:
                        want_k[a, h] += q[a, h, e] * abs(float(physics.cell_current_ua(yk, "cubic")))
                    want_v[a, h] += phi[a, h, j] * abs(float(physics.cell_current_ua(yv, "cubic")))
    for s in stores:
        qk, qv = physics.read_abs_charges(q, phi, *s.row_abs_currents(decay, valid))
        np.testing.assert_allclose(qk, want_k, rtol=1e-9)
        np.testing.assert_allclose(qv, want_v, rtol=1e-9)


def test_cell_spread_enters_the_charge():
    """With the fixed-pattern spread of numerics.noise (each cell's gain and retention time),
    the integrated |I| is that of each cell's own current |gain x f(y x decay ** inv_tau)|."""
    noise = load_hardware("paper-gpt2").derive(
        numerics={"noise": {"seed": 4, "cell_sigma_rel": 0.3, "tau_sigma_ln": 0.5}}).numerics.noise
    kv, g, m, d = 2, 2, 4, 3
    coeffs = physics.law_coefficients("cubic")
    store = PowerStore(kv, m, d, np.float64, coeffs, 2, 80.0, noise=noise)
    ideal = PowerStore(kv, m, d, np.float64, coeffs, 2, 80.0)
    rng = np.random.default_rng(5)
    yk, yv = rng.uniform(-0.45, 0.45, (2, m, kv, d))
    for j in range(m):
        store.write(j, yk[j], yv[j], step=j)
        ideal.write(j, yk[j], yv[j], step=j)
    decay, valid = rng.uniform(0.5, 1.0, m), np.array([True, True, False, True])
    c = store.cells
    q, phi = rng.uniform(0, 1, (kv, g, d)), rng.uniform(0, 1, (kv, g, m)) * valid
    want_k, want_v = np.zeros((kv, g)), np.zeros((kv, g))
    for a in range(kv):
        for j in range(m):
            for e in range(d):
                ik = c["gain_k"][a, j, e] * float(physics.cell_current_ua(
                    yk[j, a, e] * decay[j] ** c["inv_tau_k"][a, j, e], "cubic"))
                iv = c["gain_v"][a, j, e] * float(physics.cell_current_ua(
                    yv[j, a, e] * decay[j] ** c["inv_tau_v"][a, j, e], "cubic"))
                want_k[a] += valid[j] * q[a, :, e] * abs(ik)
                want_v[a] += phi[a, :, j] * abs(iv)
    got = physics.read_abs_charges(q, phi, *store.row_abs_currents(decay, valid))
    np.testing.assert_allclose(got[0], want_k, rtol=1e-9)
    np.testing.assert_allclose(got[1], want_v, rtol=1e-9)
    assert not np.allclose(physics.read_abs_charges(q, phi, *ideal.row_abs_currents(decay, valid))[0], want_k)


@pytest.mark.slow
def test_calibration_trace_gives_the_papers_1120_and_700_pj():
    """`gcsim paper --functional` on the calibration trace with array_read: charge: the
    paper items per head and token at full window are the paper's (the calibration), while
    the other items keep the table's; the default stays per cell."""
    from gcsim.calibration import reproduce_synthetic
    assert load_hardware("paper-gpt2").costs.array_read == "per_cell"
    cal = costs.CALIBRATION_TRACE
    hw = load_hardware(cal["model"]).derive(costs={"array_read": "charge"})
    items = reproduce_synthetic(hw, cal["steps"], cal["seed"], functional=True)["items_pj"]
    assert items["phi_qk"] == pytest.approx(1120.0, rel=1e-6)
    assert items["phi_v"] == pytest.approx(700.0, rel=1e-6)
    assert items["digital_routing"] == pytest.approx(4000.0, rel=1e-9)
    assert items["dacs"] == pytest.approx(330.0, rel=1e-9)


def test_charge_mode_refuses_timing_only(capsys):
    hw = load_hardware("paper-gpt2").derive(costs={"array_read": "charge"})
    from gcsim.sim import ArrayTrace, Simulator
    s = hw.shape
    rng = np.random.default_rng(0)
    trace = ArrayTrace(*(rng.normal(size=(4, s.layers, n, s.d_head))
                         for n in (s.heads, s.kv_heads, s.kv_heads)))
    with pytest.raises(SimError, match="costs.array_read: charge needs"):
        Simulator(hw, trace, values=False)
    assert cli(["paper", "--no-progress", "-s", "costs.array_read=charge"]) == 2
    assert "run functional" in capsys.readouterr().err


def test_charge_mode_changes_only_the_array_reads_on_the_shipped_trace():
    """The shipped SmolLM2 trace, per cell vs charge: every other action costs the same, the
    K/V reads' counts are the same and their pj_each is the mean energy of a read; the energy
    booked is kappa x the charges the tiles recorded."""
    from gcsim.report import build_report
    from gcsim.resources import DEFAULT_TRACE
    from gcsim.sim import Simulator
    from gcsim.traces import open_trace
    reps, sims = {}, {}
    for mode in ("per_cell", "charge"):
        hw = load_hardware("smollm2").derive(costs={"array_read": mode})
        with open_trace(str(DEFAULT_TRACE)) as trace:
            sims[mode] = Simulator(hw, trace, steps=12)
            reps[mode] = build_report(sims[mode].run())["energy"]["by_action"]
    a, b = reps["per_cell"], reps["charge"]
    assert a.keys() == b.keys()
    for act in a:
        assert a[act]["count"] == b[act]["count"], act
        if act not in ("k_column_read", "v_row_read"):
            assert a[act]["energy_pj"] == b[act]["energy_pj"], act
    kappa = costs.charge_pj(sims["charge"].hw)
    charges = sum(t.read_charge_ua_tmax.sum(axis=0) for t in sims["charge"].tiles)
    for i, act in enumerate(("k_column_read", "v_row_read")):
        assert b[act]["energy_pj"] == pytest.approx(kappa[act] * charges[i], rel=1e-12)
        assert b[act]["pj_each"] == pytest.approx(b[act]["energy_pj"] / b[act]["count"], rel=1e-12)
        assert b[act]["energy_pj"] != pytest.approx(a[act]["energy_pj"], rel=1e-3)
