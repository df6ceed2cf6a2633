"""The paper's scaler adaptation (gcsim/adaptation.py): its schedule and update rule by hand,
convergence on a model whose output depends nonlinearly on its scaled inputs, and the
stopping rules."""
import numpy as np
import pytest

from gcsim.adaptation import AdaptationConfig, adapt_scalers, signal_stats


def toy_scalers(L=2, H=2):
    return {f"{p}_{s}": np.full((L, H), 1.0 if p == "a" else 0.0) for s in ("q", "k", "v", "out") for p in "ab"}


def toy_model(seed=0, N=500, L=2, H=2, d=4):
    """Raw q, k, v fixed per layer except that layer 1's inputs are shifted by layer 0's output
    (as a residual stream would); out = a_out * tanh(q' * k' + v') + b_out, so the output's
    statistics depend nonlinearly on the q, k, v scalers and later layers on earlier ones."""
    rng = np.random.default_rng(seed)
    raw = {s: rng.normal(0.3, 1.0, (N, L, H, d)) for s in ("q", "k", "v")}

    def run(sc):
        rec = {s: raw[s].copy() for s in raw}
        rec["out"] = np.zeros((N, L, H, d))
        for l in range(L):
            if l > 0:
                for s in ("q", "k", "v"):
                    rec[s][:, l] = raw[s][:, l] + 0.5 * rec["out"][:, l - 1]
            scaled = {s: rec[s][:, l] * sc[f"a_{s}"][l][None, :, None] + sc[f"b_{s}"][l][None, :, None]
                      for s in ("q", "k", "v")}
            y = np.tanh(scaled["q"] * scaled["k"] + scaled["v"])
            rec["out"][:, l] = y * sc["a_out"][l][None, :, None] + sc["b_out"][l][None, :, None]
        return rec
    return run


def test_alpha_schedule_is_the_papers():
    c = AdaptationConfig()
    assert (c.max_passes, c.alpha_max, c.alpha_min, c.alpha_passes, c.tol) == (100, 1.0, 0.1, 50, 1e-4)
    assert c.alpha(0) == 1.0 and c.alpha(49) == pytest.approx(0.1) and c.alpha(50) == c.alpha(99) == 0.1
    assert c.alpha(1) == pytest.approx(1 - 0.9 / 49)  # linspace(1, 0.1, 50): 49 equal steps


def test_one_pass_by_hand():
    """One pass with alpha = 0.5 (alpha_max = alpha_min): a <- 0.5 a sigma_t / sigma + 0.5 a and
    b <- 0.5 (b + mu_t - mu) + 0.5 b, for every scaler, from the statistics measured by hand."""
    run = toy_model()
    sc0 = toy_scalers()
    rec = run(sc0)
    targets = {s: (np.full((2, 2), 0.2), np.full((2, 2), 0.7)) for s in ("q", "k", "v", "out")}
    cfg = AdaptationConfig(max_passes=1, alpha_max=0.5, alpha_min=0.5, alpha_passes=1)
    sc1, hist = adapt_scalers(run, sc0, targets, cfg)
    for s in ("q", "k", "v", "out"):
        for l in range(2):
            for h in range(2):
                x = rec[s][:, l, h, :].ravel()
                if s != "out":
                    x = sc0[f"a_{s}"][l, h] * x + sc0[f"b_{s}"][l, h]
                mu, sd = x.mean(), np.sqrt(((x - x.mean()) ** 2).mean())
                a0, b0 = sc0[f"a_{s}"][l, h], sc0[f"b_{s}"][l, h]
                assert sc1[f"a_{s}"][l, h] == pytest.approx(0.5 * a0 * 0.7 / sd + 0.5 * a0, rel=1e-12)
                assert sc1[f"b_{s}"][l, h] == pytest.approx(0.5 * (b0 + 0.2 - mu) + 0.5 * b0, rel=1e-12)
    assert len(hist) == 1 and not hist[0]["converged"] and hist[0]["params"] == 4 * 2 * 2 * 2
    assert sc0["a_q"][0, 0] == 1.0  # the caller's scalers are not modified


def test_converges_to_the_targets():
    """Targets: the statistics of the same model with other scalers. From the identity scalers
    the loop reaches every mean and std within tol, in fewer than 100 passes."""
    run = toy_model(1)
    want = toy_scalers()
    rng = np.random.default_rng(2)
    for key in want:
        want[key] = want[key] * rng.uniform(0.5, 1.5, want[key].shape) + rng.normal(0, 0.2, want[key].shape)
    targets = signal_stats(run(want), want)
    calls = []
    sc, hist = adapt_scalers(run, toy_scalers(), targets, on_pass=lambda p, s: calls.append(p) or {"extra": p})
    assert hist[-1]["converged"] and 2 < len(hist) < 100
    assert calls == list(range(len(hist))) and hist[-1]["extra"] == len(hist) - 1
    stats = signal_stats(run(sc), sc)
    for s in stats:
        for got, tgt in zip(stats[s], targets[s]):
            np.testing.assert_array_less(np.abs(got - tgt), 1e-4)
    # the errors shrink: the first pass is far off, the last within tolerance
    assert hist[0]["std_error_max"] > 1e-2 and hist[-1]["std_error_max"] <= 1e-4


def test_stops_after_max_passes_and_keeps_a_of_a_dead_head():
    run = toy_model(3)

    def dead(sc):  # layer 0 head 1's q carries no signal: sigma = 0, its a_q stays
        rec = run(sc)
        rec["q"][:, 0, 1] = 0.25
        return rec
    targets = {s: (np.full((2, 2), 0.1), np.full((2, 2), 0.5)) for s in ("q", "k", "v", "out")}
    sc, hist = adapt_scalers(dead, toy_scalers(), targets, AdaptationConfig(max_passes=3))
    assert len(hist) == 3 and not any(h["converged"] for h in hist)
    assert sc["a_q"][0, 1] == 1.0 and sc["a_q"][0, 0] != 1.0
    assert sc["b_q"][0, 1] != 0.0  # its mean still moves
