"""Device non-idealities drawn from a stateless, counter-based generator.

Every random value is a pure function of (seed, stream, position keys): a SplitMix64-style
hash of the keys in uint64 arithmetic (numpy here; the same integer operations run in a fused
kernel or on a GPU), turned into a standard normal by Box-Muller. Nothing depends on the order
in which values are drawn, so the reference model (a whole sequence at once) and the simulator
(one step at a time) draw identical values for the same seed and position.

Keys: read noise on a bit-line charge is keyed by (layer, head, slot or sub-tile, column,
step); write noise on a stored voltage by (layer, K/V head, slot, row, step of the write).
Fixed-pattern draws (per-cell spreads, not implemented yet) would be keyed by position only,
never by step.

Implemented: `read_sigma_rel` (relative sigma of each bit-line charge read: S of the K array,
A of the V array) and `write_sigma_v` (sigma in V added to each stored k', v' after the DAC,
before the cell law). All off (0) by default.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
STREAMS = {"read_s": 1, "read_a": 2, "write_k": 3, "write_v": 4}


@dataclass(frozen=True)
class Noise:
    """Seeded non-idealities; all zero = the ideal chip."""
    seed: int = 0
    read_sigma_rel: float = 0.0
    write_sigma_v: float = 0.0

    def __post_init__(self):
        for name in ("read_sigma_rel", "write_sigma_v"):
            val = getattr(self, name)
            if not (np.isfinite(val) and val >= 0):
                raise ValueError(f"noise.{name}: expected a finite number >= 0, found {val!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"noise.seed: expected a non-negative integer, found {self.seed!r}")

    @property
    def active(self) -> bool:
        return self.read_sigma_rel > 0 or self.write_sigma_v > 0


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


def read_noise(x, noise: Noise | None, stream: str, *keys):
    """x * (1 + sigma_rel z): a bit-line charge read with relative noise."""
    if noise is None or noise.read_sigma_rel == 0:
        return x
    z = standard_normal(noise.seed, stream, *keys)
    return x * (1.0 + noise.read_sigma_rel * z).astype(np.asarray(x).dtype)


def write_noise(y, noise: Noise | None, stream: str, *keys):
    """y + sigma_v z: a stored voltage written with noise."""
    if noise is None or noise.write_sigma_v == 0:
        return y
    z = standard_normal(noise.seed, stream, *keys)
    return y + (noise.write_sigma_v * z).astype(np.asarray(y).dtype)
