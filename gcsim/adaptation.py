"""The paper's adaptation of the per-head scalers: iterate every a and b (q, k, v and output)
until the mean and standard deviation of each scaled signal match target statistics, per
layer and head, with no gradient (docs/paper-model.md section 2; the authors' code,
GainCellAttention, tests_divers/calibration_dram_scaling_parameters_multiple_functions.py).

Each pass runs the model once on one calibration batch with the chip's attention and the
current scalers, measures the statistics of the scaled signals q' = a_q q + b_q,
k' = a_k k + b_k, v' = a_v v + b_v (before the DACs clip them) and y = a_out sum + b_out (the
attention output), and moves every parameter whose error exceeds the tolerance:

    a <- alpha * a * sigma_target / sigma + (1 - alpha) * a     (when |sigma - sigma_target| > tol)
    b <- alpha * (b + mu_target - mu) + (1 - alpha) * b         (when |mu - mu_target| > tol)

alpha falls linearly from alpha_max to alpha_min over the first alpha_passes passes, then stays;
the loop stops when every error is <= tol (converged) or after max_passes passes. A head whose
signal has no spread (sigma below 1e-9 of its level: the paper's code tests sigma != 0, which a
constant's rounding passes) keeps its a. Statistics are over every batch row, token and
head dimension (population standard deviation).

Written once for any model whose attention is gcsim's: the caller gives `run(scalers)`, one
forward pass returning the raw projections and the attention outputs (the chip GPT's JAX or
numpy forward, SmolLM2's numpy forward with the reference model in its loop), and the targets
(the statistics the linear-law model had, or for a softmax-trained model those of its softmax
outputs and of the DAC-range calibration).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SIGNALS = ("q", "k", "v", "out")  # each with its scaler pair a_NAME, b_NAME


@dataclass(frozen=True)
class AdaptationConfig:
    """The paper's settings (its code's error_threshold, max_calibration_iter, alpha_max,
    alpha_min, alpha_decay_max_step)."""
    max_passes: int = 100
    alpha_max: float = 1.0
    alpha_min: float = 0.1
    alpha_passes: int = 50
    tol: float = 1e-4

    def alpha(self, p: int) -> float:
        """alpha of pass p (0-based): linear from alpha_max to alpha_min over alpha_passes passes."""
        if p >= self.alpha_passes:
            return self.alpha_min
        return float(np.linspace(self.alpha_max, self.alpha_min, self.alpha_passes)[p])

    def to_dict(self) -> dict:
        return asdict(self)


def signal_stats(record: dict, scalers: dict) -> dict:
    """Mean and standard deviation [layers, heads] of each scaled signal.

    record: raw projections q [N, L, H, d], k, v [N, L, KV, d] and the attention output
    out [N, L, H, d] (after the output scaler, so taken as it is); N = tokens of the batch.
    Returns {signal: (mean, std)} in float64."""
    out = {}
    for name in SIGNALS:
        x = np.asarray(record[name], np.float64)
        if name != "out":
            a, b = (np.asarray(scalers[f"{p}_{name}"], np.float64) for p in "ab")
            x = x * a[None, :, :, None] + b[None, :, :, None]
        out[name] = (x.mean(axis=(0, 3)), x.std(axis=(0, 3)))
    return out


def adapt_scalers(run, scalers: dict, targets: dict, cfg: AdaptationConfig = AdaptationConfig(),
                  on_pass=None) -> tuple[dict, list[dict]]:
    """The paper's loop (module docstring). run(scalers) -> record (see signal_stats);
    targets: signal_stats of the model to match; on_pass(p, scalers) -> dict of extra
    figures for pass p's row of the history (e.g. the held-out perplexity with the scalers
    of that pass). Returns (scalers, history): float64 copies, and one row per pass with
    alpha, the largest mean and std errors, how many parameters are within tolerance and
    whether the loop converged there."""
    sc = {k: np.array(v, np.float64) for k, v in scalers.items()}
    history = []
    for p in range(cfg.max_passes):
        used = {k: v.copy() for k, v in sc.items()}
        stats = signal_stats(run(used), used)
        alpha = cfg.alpha(p)
        row = {"pass": p, "alpha": alpha, "mean_error_max": 0.0, "std_error_max": 0.0, "within_tol": 0, "params": 0}
        for name in SIGNALS:
            (mu, sd), (mu_t, sd_t) = stats[name], targets[name]
            err_sd, err_mu = np.abs(sd - sd_t), np.abs(mu - mu_t)
            a, b = sc[f"a_{name}"], sc[f"b_{name}"]
            alive = sd > 1e-9 * (1.0 + np.abs(mu))  # a constant signal's std is rounding (~1e-17)
            move_a = (err_sd > cfg.tol) & alive
            new_a = a * sd_t / np.where(alive, sd, 1.0)
            move_b = err_mu > cfg.tol
            new_b = b + (mu_t - mu)
            row["std_error_max"] = max(row["std_error_max"], float(err_sd.max()))
            row["mean_error_max"] = max(row["mean_error_max"], float(err_mu.max()))
            row["within_tol"] += int((err_sd <= cfg.tol).sum() + (err_mu <= cfg.tol).sum())
            row["params"] += 2 * err_sd.size
            sc[f"a_{name}"] = np.where(move_a, alpha * new_a + (1 - alpha) * a, a)
            sc[f"b_{name}"] = np.where(move_b, alpha * new_b + (1 - alpha) * b, b)
        row["converged"] = row["within_tol"] == row["params"]
        if on_pass is not None:
            row.update(on_pass(p, used) or {})
        history.append(row)
        if row["converged"]:
            break
    return sc, history
