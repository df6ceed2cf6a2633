"""Does recording keep its speed as the context grows? Decode-step time at context 64, 512
and 2048, and the prefill of a long prompt in one pass (baseline) vs in chunks (gcsim's way).

Run: python benchmarks/bench_record.py [--repeats 7]
Medians of --repeats decode steps (min..max) at each context length, each step recording
q/k/v like `gcsim trace record`, as ms per step and steps/s; single-threaded BLAS.
"""
import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"   # must precede the numpy import
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from gcsim.llm import SmolLM2  # noqa: E402
from gcsim.llm.decoder import Recording  # noqa: E402


def decode_ms(model, cache, rec, contexts, repeats: int) -> dict[int, list[float]]:
    """ms of one recording decode step at each context, the contexts interleaved round by round
    (so a change in the machine's load falls on all of them alike)."""
    out = {pos: [] for pos in contexts}
    for i in range(repeats):
        for pos in contexts:
            t0 = time.perf_counter()
            model._forward(np.array([42]), pos + i, cache, rec, want_logits=True)
            out[pos].append(1e3 * (time.perf_counter() - t0))
    return out


def fmt(xs):
    med = statistics.median(xs)
    return f"{med:8.1f} ms = {1e3 / med:5.1f} steps/s  ({min(xs):.1f} .. {max(xs):.1f} ms)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--prompt-tokens", type=int, default=1024)
    args = ap.parse_args()
    model = SmolLM2.load()
    T = 2048 + args.repeats + 1
    L, H, KV, dh = model.n_layers, model.n_heads, model.n_kv_heads, model.d_head
    rec = Recording(np.zeros(T, np.int32), [], np.zeros((T, L, H, dh), np.float32),
                    np.zeros((T, L, KV, dh), np.float32), np.zeros((T, L, KV, dh), np.float32),
                    np.zeros((T, L, H, dh), np.float32))
    cache = model._new_cache(T)
    rng = np.random.default_rng(0)
    ids = rng.integers(100, 40000, T)
    # fill the cache up to 2048 positions once (chunked), so every context length is real
    for s in range(0, 2048, 256):
        model._forward(ids[s:s + 256], s, cache, rec, want_logits=False)
    times = decode_ms(model, cache, rec, (64, 512, 2048), args.repeats)
    base = times[64]
    print(f"decode step with recording, median of {args.repeats} (min .. max), contexts interleaved; "
          f"baseline = context 64")
    print(f"  context   64 {fmt(base)}")
    for pos in (512, 2048):
        xs = times[pos]
        print(f"  context {pos:4d} {fmt(xs)}   x{statistics.median(xs) / statistics.median(base):.2f} of context 64")
    n = args.prompt_tokens
    prompt = ids[:n]
    times = {}
    for label, chunk in (("one pass (baseline)", 1 << 30), ("chunks of 256", 256)):
        SmolLM2.PREFILL_CHUNK = chunk
        xs = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.generate(prompt, n_new=0, record=True)
            xs.append(time.perf_counter() - t0)
        times[label] = xs
        print(f"prefill {n} tokens, {label:<20} {statistics.median(xs):6.2f} s  ({min(xs):.2f} .. {max(xs):.2f}; "
              f"median of 3) = {n / statistics.median(xs):.0f} tokens/s")


if __name__ == "__main__":
    main()
