"""Summary of a trace: shapes, value ranges per layer, clipping after calibration, provenance.

Everything is computed chunk by chunk over the memory-mapped arrays (bounded memory). Clipping
is measured over all steps with the scalers stored in the trace and the paper's DAC ranges
(q' in [0, 1], k' and v' in [0, 0.9] V); the header's ``clip_fraction`` is the value measured at
calibration time on a sample.
"""

from __future__ import annotations

import numpy as np

from .calibrate import clipped_counts
from .format import Trace, iter_chunks, open_trace

RANGES = {"q": (0.0, 1.0), "k": (0.0, 0.9), "v": (0.0, 0.9)}
_CHUNK_BYTES = 4 << 20  # float64 working copies are 4x a float16 chunk


def _layer_stats(arr, a, b, rng):
    """Per-layer min/max/mean/std (over steps, heads, dims) and per-head clip counts."""
    L = arr.shape[1]
    n = 0
    mean, m2 = np.zeros(L), np.zeros(L)
    lo, hi = np.full(L, np.inf), np.full(L, -np.inf)
    clipped = np.zeros(arr.shape[1:3], dtype=np.int64)
    for _, chunk in iter_chunks(arr, _CHUNK_BYTES):
        x = np.asarray(chunk, dtype=np.float64)
        nb = x.size // L
        mb = x.mean(axis=(0, 2, 3))
        m2b = ((x - mb[None, :, None, None]) ** 2).sum(axis=(0, 2, 3))
        # Chan et al. pairwise merge: stable for long traces, unlike sum of squares.
        delta = mb - mean
        tot = n + nb
        mean = mean + delta * nb / tot
        m2 = m2 + m2b + delta ** 2 * n * nb / tot
        n = tot
        lo, hi = np.minimum(lo, x.min(axis=(0, 2, 3))), np.maximum(hi, x.max(axis=(0, 2, 3)))
        clipped += clipped_counts(x, a, b, rng)
    stats = {"min": lo.tolist(), "max": hi.tolist(), "mean": mean.tolist(),
             "std": np.sqrt(m2 / n).tolist()}
    return stats, clipped / (arr.shape[0] * arr.shape[3])


def summarize(trace) -> dict:
    """Summary dict of a Trace (or a path, opened and verified).

    Keys: path, file_bytes, model, steps, dtype, arrays {name: {shape, dtype}},
    stats {q|k|v: {min, max, mean, std: per-layer lists over steps, heads and dims}},
    clipping {q|k|v: {mean, max, worst: [layer, head], per_head: [layers][heads]}},
    provenance.
    """
    if not isinstance(trace, Trace):
        with open_trace(trace) as opened:
            return summarize(opened)
    stats, clipping = {}, {}
    for name in ("q", "k", "v"):
        arr = getattr(trace, name)
        s = trace.scalers
        stats[name], frac = _layer_stats(arr, s[f"a_{name}"], s[f"b_{name}"], RANGES[name])
        worst = np.unravel_index(int(np.argmax(frac)), frac.shape)
        clipping[name] = {"mean": float(frac.mean()), "max": float(frac.max()),
                          "worst": [int(i) for i in worst], "per_head": frac.tolist()}
    arrays = {n: {"shape": e["shape"], "dtype": e["dtype"]}
              for n, e in trace.header["arrays"].items()}
    return {"path": str(trace.path), "file_bytes": trace.path.stat().st_size,
            "model": dict(trace.model), "steps": trace.steps, "dtype": trace.dtype,
            "arrays": arrays, "stats": stats, "clipping": clipping,
            "provenance": dict(trace.provenance)}


def format_summary(summary: dict) -> str:
    """Human-readable text of a summarize() result."""
    m = summary["model"]
    lines = [
        f"trace     {summary['path']} ({summary['file_bytes'] / 2**20:.2f} MiB)",
        f"model     {m['name']}: {m['layers']} layers x {m['heads']} heads "
        f"({m['kv_heads']} K/V heads) x d_head {m['d_head']}",
        f"steps     {summary['steps']}   dtype {summary['dtype']}",
        "arrays    " + ", ".join(f"{n} {a['dtype']}{a['shape']}"
                                 for n, a in summary["arrays"].items()),
        "values    per layer: min / max / mean / std (model units)",
    ]
    for name, s in summary["stats"].items():
        for layer in range(len(s["min"])):
            lines.append(f"  {name} L{layer:<3d} {s['min'][layer]:>9.3f} {s['max'][layer]:>9.3f} "
                         f"{s['mean'][layer]:>9.3f} {s['std'][layer]:>8.3f}")
    lines.append("clipping  after calibration, fraction of values outside the DAC range")
    for name, c in summary["clipping"].items():
        head = "kv_head" if name in ("k", "v") else "head"
        lines.append(f"  {name}  mean {c['mean']:.5f}  max {c['max']:.5f}  "
                     f"(worst: layer {c['worst'][0]}, {head} {c['worst'][1]})")
    lines.append("provenance")
    for key, value in sorted(summary["provenance"].items()):
        lines.append(f"  {key:<14s}{value}")
    return "\n".join(lines)
