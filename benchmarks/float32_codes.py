"""Output codes in float32 against the exact (float64) value: how many differ, and how far
each lies from its code boundary, relative to the value (|x - b| / |b| in code steps), to full
scale and to the size of the sum (sum_j phi_j |f(y_j d_j)|; see float32_trace.py). Counts for
the fused kernel over DAC codes and for physics over float32 powers (the previous float32
path), on random bank reads of the GPT-2 layer shape at full window; both precisions are given
the same DAC codes, so only the bit-line sums differ (float32_trace.py replays a trace instead,
DAC included).

Run: python benchmarks/float32_codes.py [--reads 200]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gcsim import load_hardware  # noqa: E402
from gcsim.datapath import dac_kv, dac_query, layer_scalers  # noqa: E402
from gcsim.kernels import make_store  # noqa: E402
from float32_trace import terms_size  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reads", type=int, default=200)
    args = ap.parse_args()
    hw = load_hardware("paper-gpt2")
    s, n = hw.shape, hw.numerics
    step = 2 / (n.out_levels - 1)
    rng = np.random.default_rng(0)
    sc = layer_scalers(None, 0, s.heads, s.kv_heads)
    counts = {"kernel f32": [0, 0, 0.0], "physics f32": [0, 0, 0.0]}
    dist = {name: [] for name in counts}       # (rel. to value, to full scale, to the sum's size)
    worst = {name: 0.0 for name in counts}     # largest float32 error / the sum's size

    class _State:  # what terms_size reads: the float64 store's V deviations
        pass
    total = 0
    for r in range(args.reads):
        if r % 20 == 0:  # new stored K/V every 20 reads (writing 1024 slots is the slow part)
            stores = {d: (make_store(hw, d, kind="codes"), make_store(hw, d, kind="powers")) for d in (np.float32, np.float64)}
            kv_step = (n.kv_range_v[1] - n.kv_range_v[0]) / (n.kv_levels - 1)
            for j in range(s.window):
                # the DAC's codes of random k, v; each precision gets the level it computes for them
                codes = [np.round((dac_kv(rng.normal(0, 0.25, (s.kv_heads, s.d_head)), sc[a], sc[b], hw, "cubic")
                                   + 0.45) / kv_step) for a, b in (("a_k", "b_k"), ("a_v", "b_v"))]
                for d, pair in stores.items():
                    k, v = (kv_step * c.astype(d) - d(0.45) for c in codes)
                    for st in pair:
                        st.write(j, k, v)
        q = rng.uniform(0, 1, (s.heads, s.d_head))
        decay = rng.uniform(0.8, 1.0, s.window)
        valid = np.ones(s.window, bool)
        q64 = dac_query(q, sc, hw, "cubic").reshape(s.kv_heads, s.group_size, s.d_head)
        _, phi64, A64 = stores[np.float64][1].read(q64, decay, valid)
        exact = np.clip(A64 / n.out_sat, -1, 1) / step
        st = _State()
        st.ring = _State()
        st.ring.v_pow = stores[np.float64][1].powers()[1]
        size = terms_size(hw, st, phi64, decay)
        want = np.round(exact)
        boundary = np.floor(exact) + 0.5
        near = np.abs(exact - boundary) <= 1e-6 * np.abs(boundary)
        q32 = dac_query(q.astype(np.float32), sc, hw, "cubic").reshape(q64.shape)
        for name, st in (("kernel f32", stores[np.float32][0]), ("physics f32", stores[np.float32][1])):
            A = st.read(q32, decay.astype(np.float32), valid)[2].astype(np.float64)
            bad = np.round(np.clip(A / n.out_sat, -1, 1) / step) != want
            counts[name][0] += int(bad.sum())
            counts[name][1] += int((bad & ~near).sum())
            worst[name] = max(worst[name], float((np.abs(A - A64) / np.where(size > 0, size, np.inf)).max()))
            for i in zip(*np.nonzero(bad)):
                da = abs(exact[i] - boundary[i]) * step * n.out_sat
                dist[name].append((abs(exact[i] - boundary[i]) / abs(boundary[i]), da / n.out_sat, da / size[i]))
            if bad.any():
                rel = np.abs(exact - boundary) / np.abs(boundary)
                counts[name][2] = max(counts[name][2], float(rel[bad].max()))
        total += want.size
    print(f"{total} output codes ({args.reads} bank reads of 12 heads x 16 sub-tiles x 64, GPT-2 layer, full window)")
    for name, (bad, far, farthest) in counts.items():
        print(f"  {name}: {bad} differ from the float64 code; {far} of them farther than 1e-6 (relative) "
              f"from a boundary; the farthest {farthest:.1e}")
        d = np.array(dist[name]).reshape(-1, 3)
        if len(d):
            print(f"    distance from the boundary: rel. to the value max {d[:, 0].max():.2e}, rel. to full scale "
                  f"max {d[:, 1].max():.2e}, rel. to the sum's size max {d[:, 2].max():.2e} "
                  f"({d[:, 2].max() / np.finfo(np.float32).eps:.1f} float32 eps)")
        print(f"    largest float32 error over all codes: {worst[name]:.2e} of the sum's size "
              f"({worst[name] / np.finfo(np.float32).eps:.1f} float32 eps)")


if __name__ == "__main__":
    main()
