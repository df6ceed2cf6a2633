"""float32 output codes against float64 on a validation trace, and how far each differing code
lies from its code boundary, measured three ways:

  rel. to the value      |x - b| / |b|, x the exact (float64) value and b the boundary, both in
                         code steps (what issue 13 and benchmarks/float32_codes.py state)
  rel. to full scale     |A - A_b| / out_sat: the distance in units of the output range
  rel. to the sum's size |A - A_b| / sum_j phi_j |f(y_j d_j)|: in units of the magnitude of the
                         terms that the bit line sums (what a float32 sum can resolve: its
                         rounding error scales with that, not with A or the boundary)

and the float32 error itself, |A32 - A64| / sum_j phi_j |f(y_j d_j)|, over every code. A code can
differ only where a boundary lies between A32 and A64, so every differing code lies within that
error of its boundary.

The float32 path is the simulator's: the fused kernel over DAC codes (gcsim/kernels); the exact
one physics over float64 powers. A synthetic GPT-2-shaped trace (`gcsim trace synth`'s
generator) replayed through `DecodeState` of both, reads at full window (the first `window`
steps only written).

Run: nice -n 15 python benchmarks/float32_trace.py [--layers 2] [--reads 64]
"""
import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gcsim import load_hardware  # noqa: E402
from gcsim import physics  # noqa: E402
from gcsim.datapath import dac_query, retention_decay  # noqa: E402
from gcsim.reference import DecodeState  # noqa: E402
from gcsim.traces import open_trace, write_synthetic  # noqa: E402


def bank_read(state, q_t, t, time_ps):
    """DecodeState.read up to the V bit-line sums: q', S, phi, A (before the output counters)."""
    hw, s, ring = state.hw, state.hw.shape, state.ring
    valid = ring.valid(t)
    q_in = dac_query(np.asarray(q_t, state.dtype), state.sc, hw, state.variant)
    decay = np.where(valid, retention_decay(ring.ages_ps(time_ps), ring.ages_tokens(t), hw), 0.0).astype(state.dtype)
    S, phi, A = ring.read(q_in.reshape(s.kv_heads, s.group_size, s.d_head), decay, valid)
    return decay, np.asarray(phi, np.float64), np.asarray(A, np.float64)


def terms_size(hw, state64, phi, decay):
    """sum_j phi_j |f(y_jd d_j)| per [KV, G, n_sub, d], in float64."""
    s = hw.shape
    y = state64.ring.v_pow[0]                                 # [KV, M, d] stored V deviations
    c = physics.law_coefficients(hw.numerics.cell_law)
    yd = y * decay[None, :, None]
    f = np.abs(sum(ci * yd ** i for i, ci in enumerate(c)))   # |cell current| per cell
    w = phi.reshape(s.kv_heads, s.group_size, s.n_sub_tiles, s.array_size)
    return np.einsum("kgsa,ksad->kgsd", w, f.reshape(s.kv_heads, s.n_sub_tiles, s.array_size, s.d_head))


def compare(hw, trace, layers, reads):
    """Per differing code: (rel. to value, rel. to full scale, rel. to the sum's size); and the
    largest float32 error over all codes (rel. to full scale and to the sum's size)."""
    s, n = hw.shape, hw.numerics
    step = 2 / (n.out_levels - 1)
    per = hw.timing.nominal_token_period_ps
    M = s.window
    diffs, total, worst_fs, worst_size = [], 0, 0.0, 0.0
    for l in range(layers):
        st32 = DecodeState(hw, layer=l, dtype=np.float32, storage="codes", scalers=trace.scalers)
        st64 = DecodeState(hw, layer=l, dtype=np.float64, storage="powers", scalers=trace.scalers)
        for t in range(M + reads):
            k, v = (np.asarray(a[t, l], np.float64) for a in (trace.k, trace.v))
            st32.write(t, k, v, t * per)
            st64.write(t, k, v, t * per)
            if t < M:
                continue
            q = np.asarray(trace.q[t, l], np.float64)
            _, _, A32 = bank_read(st32, q, t, t * per)
            decay, phi, A64 = bank_read(st64, q, t, t * per)
            x = np.clip(A64 / n.out_sat, -1, 1) / step                   # exact value in code steps
            x32 = np.clip(A32 / n.out_sat, -1, 1) / step
            size = terms_size(hw, st64, phi, decay)
            err = np.abs(A32 - A64)
            worst_fs = max(worst_fs, float((err / n.out_sat).max()))
            worst_size = max(worst_size, float((err / np.where(size > 0, size, np.inf)).max()))
            bad = np.round(x32) != np.round(x)
            total += x.size
            for i in zip(*np.nonzero(bad)):
                b = (np.round(x[i]) + np.round(x32[i])) / 2                # the boundary between the two codes
                dist_a = abs(x[i] - b) * step * n.out_sat                  # |A - A_b| in uA
                diffs.append((abs(x[i] - b) / abs(b), dist_a / n.out_sat, dist_a / size[i], float(b),
                              float(err[i] / size[i])))
    return total, diffs, worst_fs, worst_size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--reads", type=int, default=64, help="reads per layer at full window")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    hw = load_hardware("paper-gpt2").derive(shape={"layers": args.layers})
    s = hw.shape
    print(f"float32_trace: paper-gpt2 with {args.layers} layers (12 heads x 64, window {s.window}, "
          f"{s.n_sub_tiles} sub-tiles of {s.array_size}), synthetic trace seed {args.seed}, "
          f"{args.reads} reads per layer at full window")
    print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_synthetic(Path(tmp) / "t.gctrace", layers=args.layers, steps=s.window + args.reads,
                               seed=args.seed)
        total, diffs, worst_fs, worst_size = compare(hw, open_trace(path), args.layers, args.reads)
    eps = float(np.finfo(np.float32).eps)
    print(f"{total} output codes, {len(diffs)} differ between float32 (kernel) and float64 (physics)")
    print(f"largest float32 error over all codes: {worst_fs:.2e} of full scale, {worst_size:.2e} of the sum's "
          f"size ({worst_size / eps:.1f} float32 eps)")
    if diffs:
        d = np.array(diffs)
        for j, name in enumerate(("rel. to the value", "rel. to full scale", "rel. to the sum's size")):
            col = d[:, j]
            print(f"  distance from the boundary, {name:24s}: max {col.max():.2e}, median {np.median(col):.2e}; "
                  f"within 1e-6: {(col <= 1e-6).sum()} of {len(col)}")
        print("  each differing code (boundary in code steps; distances rel. to value / full scale / sum's size; "
              "float32 error rel. to the sum's size):")
        for rv, rf, rs, b, e in sorted(diffs, key=lambda r: -r[0])[:20]:
            print(f"    boundary {b:+6.1f}: {rv:.2e} / {rf:.2e} / {rs:.2e}; error {e:.2e}")


if __name__ == "__main__":
    main()
