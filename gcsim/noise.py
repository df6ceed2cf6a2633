"""Device non-idealities drawn from a stateless, counter-based generator.

Every random value is a pure function of (seed, stream, position keys): a SplitMix64-style
hash of the keys in uint64 arithmetic (numpy here; the same integer operations run in a fused
kernel or on a GPU), turned into a standard normal by Box-Muller. Nothing depends on the order
in which values are drawn, so the reference model (a whole sequence at once) and the simulator
(one step at a time) draw identical values for the same seed and position.

The settings are the description's `numerics.noise` section (`Noise`, gcsim/hardware.py), all
off (0) by default. Keys, in this order (a K/V head's arrays are its bank; slot = a K column,
a V row; row/column = the head dimension d):
  read noise   S of a K column   (sequence, layer, query head, slot, step)          read_sigma_rel
               A of a V column   (sequence, layer, query head, sub-tile, d, step)   relative
  write noise  stored k', v'     (sequence, layer, K/V head, slot, d, step written) write_sigma_v, in V
  cell spread  current factor    (sequence, layer, K/V head, slot, d)               cell_sigma_rel
  tau spread   ln(tau) offset    (sequence, layer, K/V head, slot, d)               tau_sigma_ln
Fixed-pattern draws (cell, tau) are keyed by position only, never by step: a cell keeps its
factors for the whole run. Streams keep K and V arrays (and each kind of draw) apart.
A refresh (numerics.retention.refresh) restores the level as written, noise included, without
a new draw: the reference model, given the simulator's ages, does the same.

Where they act: the simulator and the reference's step form (`DecodeState`) in the K/V store
(gcsim/kernels/store.py, PowerStore), the whole-sequence reference in `layer_attention`; both
through these functions and the per-cell form of gcsim/physics.py.
"""
from __future__ import annotations

import numpy as np

from .hardware import Noise  # noqa: F401  (the settings; re-exported)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
STREAMS = {"read_s": 1, "read_a": 2, "write_k": 3, "write_v": 4, "cell_k": 5, "cell_v": 6, "tau_k": 7, "tau_v": 8}


def _mix(x):
    """SplitMix64 finalizer: a bijective avalanche of a uint64."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def hash_keys(seed: int, stream: int, *keys) -> np.ndarray:
    """uint64 hash of (seed, stream, keys...), keys broadcast against each other."""
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed) ^ (np.uint64(stream) * _GOLDEN))
        for i, k in enumerate(keys):
            h = _mix(h ^ (np.asarray(k).astype(np.uint64) + _GOLDEN * np.uint64(i + 1)))
    return h


def standard_normal(seed: int, stream: str, *keys) -> np.ndarray:
    """N(0, 1) per position, a pure function of (seed, stream, keys) (Box-Muller)."""
    h1 = hash_keys(seed, STREAMS[stream], *keys)
    h2 = _mix(h1 ^ _GOLDEN)
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0 ** 53   # (0, 1)
    u2 = (h2 >> np.uint64(11)).astype(np.float64) / 2.0 ** 53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def read_factor(noise: Noise, stream: str, *keys) -> np.ndarray:
    """1 + read_sigma_rel z per position (float64): the factor of a noisy bit-line read."""
    return 1.0 + noise.read_sigma_rel * standard_normal(noise.seed, stream, *keys)


def read_noise(x, noise: Noise | None, stream: str, *keys):
    """x * (1 + sigma_rel z): a bit-line charge read with relative noise."""
    if noise is None or noise.read_sigma_rel == 0:
        return x
    return x * read_factor(noise, stream, *keys).astype(np.asarray(x).dtype)


def write_noise(y, noise: Noise | None, stream: str, *keys):
    """y + sigma_v z: a stored voltage written with noise."""
    if noise is None or noise.write_sigma_v == 0:
        return y
    z = standard_normal(noise.seed, stream, *keys)
    return y + (noise.write_sigma_v * z).astype(np.asarray(y).dtype)


def cell_factors(noise: Noise | None, sequence: int, layer: int, kv_heads: int, slots, d_head: int) -> dict:
    """Fixed-pattern factors of the cells of `slots` ([U] slot indices), each [KV, U, d] float64
    or None where off: 'gain_k', 'gain_v' = max(0, 1 + cell_sigma_rel z) (a cell's current is
    f(y) x gain; a cell does not conduct backwards) and 'inv_tau_k', 'inv_tau_v' = tau_nominal /
    tau_cell = exp(-tau_sigma_ln z) (per-cell retention factor = slot factor ** inv_tau)."""
    out = {"gain_k": None, "gain_v": None, "inv_tau_k": None, "inv_tau_v": None}
    if noise is None or not noise.per_cell:
        return out
    keys = (sequence, layer, np.arange(kv_heads)[:, None, None], np.asarray(slots)[None, :, None],
            np.arange(d_head)[None, None, :])
    for arr in ("k", "v"):
        if noise.cell_sigma_rel > 0:
            z = standard_normal(noise.seed, f"cell_{arr}", *keys)
            out[f"gain_{arr}"] = np.maximum(0.0, 1.0 + noise.cell_sigma_rel * z)
        if noise.tau_sigma_ln > 0:
            out[f"inv_tau_{arr}"] = np.exp(-noise.tau_sigma_ln * standard_normal(noise.seed, f"tau_{arr}", *keys))
    return out
