"""Trace-generation speed: record_trace on SmolLM2-135M, and write_synthetic.

Run: python benchmarks/bench_trace.py [--prompt-tokens 16] [--new 64] [--synth-steps 1100]
record_trace is timed end to end (prefill + recorded decode + calibration + write) with the
model already loaded; loading the weights is reported separately. Single-threaded BLAS so
figures are comparable across machines and runs.
"""
import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"   # must precede the numpy import
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

# Let the script run from a source checkout without `pip install -e .`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gcsim.traces import write_synthetic  # noqa: E402
from gcsim.traces.record import record_trace  # noqa: E402

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good "
        "fortune, must be in want of a wife. However little known the feelings or views of such "
        "a man may be on his first entering a neighbourhood,")


def best_of(repeats, fn):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--synth-steps", type=int, default=1100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "t.gctrace"
        from gcsim.llm import SmolLM2
        t0 = time.perf_counter()
        model = SmolLM2.load()
        print(f"load       {time.perf_counter() - t0:7.2f} s  ({model.name})")
        tok = model.tokenizer
        prompt = tok.decode(tok.encode(TEXT)[:args.prompt_tokens])
        n_prompt = len(tok.encode(prompt))
        steps = n_prompt + args.new
        record_trace(out, prompt, n_new=1, model=model)  # warm-up
        t = best_of(args.repeats, lambda: record_trace(out, prompt, n_new=args.new, model=model))
        print(f"record     {steps / t:7.1f} steps/s  ({n_prompt} prompt + {args.new} new tokens, "
              f"float16, {t:.2f} s, {out.stat().st_size / 2**20:.1f} MiB, best of {args.repeats})")

        t = best_of(args.repeats, lambda: write_synthetic(out, layers=12, heads=12, d_head=64,
                                                          steps=args.synth_steps, seed=0))
        print(f"synthetic  {args.synth_steps / t:7.1f} steps/s  (12x12x64, {args.synth_steps} steps, "
              f"float16, {t:.2f} s, {out.stat().st_size / 2**20:.1f} MiB, best of {args.repeats})")


if __name__ == "__main__":
    main()
