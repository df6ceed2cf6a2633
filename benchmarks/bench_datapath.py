"""Per-call cost of a layer step's periphery stages, numpy path vs fused kernel, side by side
in one run (gcsim.datapath: `kernel=False` is the numpy path composing gcsim.physics; the
default routes numpy CPU arrays to gcsim/kernels/periphery.py):

  DAC q         dac_query of one layer step's q [H, d]
  DAC k / v     dac_kv of k or v [KV, d]
  DAC of a step q, k and v: dac_query + 2 dac_kv (numpy path) vs one dac_step (the simulator's)
  output code   output_code of the bank read's A [KV, G, n_sub, d]
  readout       readout (adder tree, output scaler) of the codes [H, n_sub, d]
  store write   one slot's k and v into a CodeStore: two calls of the encode kernel on the
                slot's views (_encode_before, the write path before) vs CodeStore.write
                (one fused kernel, gcsim/kernels/encode.py)

Each figure is the median [min, max] over R repeats of the mean per-call time of n calls; the
two paths alternate repeat by repeat, so a loaded machine slows both alike. The last line sums
one step of the description (layers x (DAC of a step + output code + readout + store write)).

Run: python benchmarks/bench_datapath.py [--model paper-gpt2] [--dtype float32] [--calls 2000] [--repeats 7]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gcsim import load_hardware  # noqa: E402
from gcsim.datapath import dac_kv, dac_query, dac_step, layer_scalers, output_code, readout  # noqa: E402
from gcsim.kernels import make_store  # noqa: E402


def per_call_us(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return 1e6 * (time.perf_counter() - t0) / calls


def _encode_before(dev, step, zero, inv_step, out):
    """The store write before kernels/encode.py (one call per array, on the slot's views): codes of stored deviations dev [KV,D] into out [KV,D] (any strides); False if a value
    is not exactly code * step - zero (then the compact form would not be exact)."""
    KV, D = dev.shape
    ok = True
    for kv in range(KV):
        for d in range(D):
            c = np.rint((dev[kv, d] + zero) * inv_step)
            if c < 0 or c > 255:
                ok = False
                c = 0
            ci = np.uint8(c)
            if dev.dtype.type(ci) * step - zero != dev[kv, d]:
                ok = False
            out[kv, d] = ci
    return ok

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="paper-gpt2")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    hw = load_hardware(args.model)
    s, law, dt = hw.shape, hw.numerics.cell_law, np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    sc = layer_scalers(None, 0, s.heads, s.kv_heads)
    q = rng.uniform(0, 1, (s.heads, s.d_head)).astype(dt)
    k = rng.normal(0, 0.3, (s.kv_heads, s.d_head)).astype(dt)
    A = rng.normal(0, 20, (s.kv_heads, s.group_size, s.n_sub_tiles, s.d_head)).astype(dt)
    codes = output_code(A, hw).reshape(s.heads, s.n_sub_tiles, s.d_head)
    k_dev = dac_kv(k, sc["a_k"], sc["b_k"], hw, law)
    v = rng.normal(0, 0.3, (s.kv_heads, s.d_head)).astype(dt)
    store = make_store(hw, dt, kind="codes")
    import numba

    encode = numba.njit(cache=True, nogil=True)(_encode_before)

    def two_encodes():   # the write path before: one encode call per array, on the slot's views
        for dev, dst in ((k_dev, store.k_codes[:, :, 5]), (k_dev, store.v_codes[:, 5, :])):
            encode(np.asarray(dev), store.step, store.zero, store.inv_step, dst)

    stages = {
        "DAC q": lambda kern: lambda: dac_query(q, sc, hw, law, kernel=kern),
        "DAC k / v": lambda kern: lambda: dac_kv(k, sc["a_k"], sc["b_k"], hw, law, kernel=kern),
        "DAC of a step": lambda kern: ((lambda: dac_step(q, k, v, sc, hw, law)) if kern else
                                       (lambda: (dac_query(q, sc, hw, law, kernel=False),
                                                 dac_kv(k, sc["a_k"], sc["b_k"], hw, law, kernel=False),
                                                 dac_kv(v, sc["a_v"], sc["b_v"], hw, law, kernel=False)))),
        "output code": lambda kern: lambda: output_code(A, hw, kernel=kern),
        "readout": lambda kern: lambda: readout(codes, sc, kernel=kern),
        "store write": lambda kern: (lambda: store.write(5, k_dev, k_dev)) if kern else two_encodes,
    }
    per_step = {"DAC of a step": 1, "output code": 1, "readout": 1, "store write": 1}
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start, "
          f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    print(f"# {args.model}: heads {s.heads}, kv_heads {s.kv_heads}, d {s.d_head}, sub-tiles {s.n_sub_tiles}, "
          f"{dt.name}; median [min, max] of {args.repeats} repeats x {args.calls} calls, us per call")
    print(f"{'stage':<14} {'numpy path / before':>24} {'fused kernel':>24} {'ratio':>6}")
    step = {"numpy": 0.0, "kernel": 0.0}
    for name, make in stages.items():
        fns = {"numpy": make(False), "kernel": make(True)}
        for fn in fns.values():
            fn()   # compile / load from cache, warm up
        times = {p: [] for p in fns}
        for _ in range(args.repeats):
            for p, fn in fns.items():
                times[p].append(per_call_us(fn, args.calls))
        med = {p: float(np.median(t)) for p, t in times.items()}
        cells = [f"{med[p]:8.2f} [{min(t):6.2f}, {max(t):6.2f}]" for p, t in times.items()]
        print(f"{name:<14} {cells[0]:>24} {cells[1]:>24} {med['numpy'] / med['kernel']:5.1f}x")
        for p in step:
            step[p] += per_step.get(name, 0) * s.layers * med[p]
    print(f"one step ({s.layers} layers: DAC of a step, output code, readout, store write): "
          f"numpy path / before {step['numpy']:.0f} us, fused kernels {step['kernel']:.0f} us")
    bank_read_threads(hw, dt, store, rng, args)


def bank_read_threads(hw, dt, store, rng, args):
    """The bank read of one layer at full window (gcsim/kernels/bitline.py), 1 and 2 threads,
    alternated: with 2 the caller and a helper thread take units (bitline_threads.py)."""
    from gcsim.kernels import bitline

    s = hw.shape
    for slot in range(s.window):   # a full window of random write-DAC levels
        store.write(slot, *(dac_kv(rng.normal(0, 0.3, (s.kv_heads, s.d_head)).astype(dt), np.ones(s.kv_heads),
                                   np.zeros(s.kv_heads), hw, hw.numerics.cell_law) for _ in range(2)))
    q = rng.uniform(0, 1, (s.kv_heads, s.group_size, s.d_head)).astype(dt)
    decay, valid = np.ones(s.window, dt), np.ones(s.window, bool)
    before = bitline.get_threads()
    times = {1: [], 2: []}
    try:
        for n in times:   # compile / load both forms first
            bitline.set_threads(n)
            store.read(q, decay, valid)
        for _ in range(args.repeats):
            for n in times:
                bitline.set_threads(n)
                times[n].append(per_call_us(lambda: store.read(q, decay, valid), args.calls))
    finally:
        bitline.set_threads(before)
    cells = ", ".join(f"{n} thread{'s' if n > 1 else ''} {np.median(t):.1f} [{min(t):.1f}, {max(t):.1f}] us"
                      for n, t in times.items())
    print(f"bank read of one layer at full window ({s.window} slots, {s.kv_heads} K/V heads): {cells}")

if __name__ == "__main__":
    main()
