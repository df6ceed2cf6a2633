"""Throughput of the numpy SmolLM2 decoder: load, batched prefill, recorded decode steps.

Run: python benchmarks/bench_decoder.py [--prompt-tokens 20] [--new 64] [--repeats 3]
Single-threaded BLAS so figures are comparable across machines and runs.
"""
import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"   # must precede the numpy import
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

# Let the script run from a source checkout without `pip install -e .`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gcsim.llm import SmolLM2  # noqa: E402

TEXT = ("The history of Paris spans more than two thousand years, from a small settlement "
        "on an island in the Seine to one of the largest cities in Europe, home to many "
        "museums, universities and monuments that attract visitors from all over the world.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-tokens", type=int, default=20)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    model = SmolLM2.load()
    print(f"load      {time.perf_counter() - t0:7.2f} s  ({model.name}, sha256 {model.sha256[:12]}…)")
    prompt = model.tokenizer.encode(TEXT)[:args.prompt_tokens]
    model.generate(prompt, n_new=1)  # warm-up: page in weights, BLAS buffers

    best_pre = best_dec = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.generate(prompt, n_new=0, record=True)
        t_pre = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.generate(prompt, n_new=args.new, record=True)
        t_all = time.perf_counter() - t0
        best_pre, best_dec = min(best_pre, t_pre), min(best_dec, t_all - t_pre)
    print(f"prefill   {len(prompt) / best_pre:7.1f} tokens/s  ({len(prompt)} tokens, best of {args.repeats})")
    print(f"decode    {args.new / best_dec:7.1f} steps/s   ({args.new} steps with recording, "
          f"{1e3 * best_dec / args.new:.1f} ms/step)")


if __name__ == "__main__":
    main()
