"""Simulator speed on the GPT-2 shape at full window (issue: >= 256 steps after the window
is full). Prints steps/s of the timing-only mode and the peak memory of functional runs
for several trace lengths. Functional speed (values computed): benchmarks/bench_values.py,
which times segments of steps inside one run (no subtraction of two runs).

Run: python benchmarks/bench_sim.py [--after 256]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from gcsim import load_hardware  # noqa: E402
from gcsim.sim import Simulator  # noqa: E402
from gcsim.traces import open_trace, write_synthetic  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def peak_rss_mb(trace_path: str, steps: int) -> float:
    """Peak RSS (VmHWM: ru_maxrss would carry over the parent's size across fork + exec) of a
    fresh process that runs the functional simulator over `steps`."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r});"
            "from gcsim import load_hardware; from gcsim.sim import Simulator; from gcsim.traces import open_trace;"
            f"Simulator(load_hardware('paper-gpt2'), open_trace({trace_path!r}), steps={steps}).run();"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--after", type=int, default=256, help="steps timed after the window is full")
    args = ap.parse_args()
    hw = load_hardware("paper-gpt2")
    M = hw.shape.window
    T = M + args.after
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gpt2.gctrace"
        long_steps = 2 * M + 512  # for the memory check: well past the window filling up
        write_synthetic(path, steps=long_steps, seed=0)
        trace = open_trace(path)

        timing_only = timed(lambda: Simulator(hw, trace, values=False, steps=T).run())
        # the K/V arrays' pages become resident as slots are first written, so memory grows
        # until the window is full, then must stay flat
        rss = {n: peak_rss_mb(str(path), n) for n in (M // 2, M + 64, long_steps)}

    print(f"GPT-2 shape (12 layers x 12 heads x 64), window {M}, {args.after} steps timed after it is full")
    print("  functional numerics: see benchmarks/bench_values.py (per-step segments, numpy floors, previous version)")
    print(f"  simulator, timing only:            {T / timing_only:8.1f} steps/s  (all {T} steps)")
    print("  peak RSS of a functional run:      " + ", ".join(f"{n} steps {mb:.0f} MB" for n, mb in rss.items()))
    print("  (the window fills at step 1024: before it, the K/V arrays' pages are still being touched)")


if __name__ == "__main__":
    main()
