"""Overhead of profiling: steps/s of a timing-only GPT-2-shaped run (paper-gpt2, ArrayTrace
of zeros) without a timeline, with a full `Timeline()` (one tuple per booked interval) and
with a filtered one (10 steps, layer 0, so most bookings are dropped by the filter).
The summary-level profile (busy/stalled/idle per unit, critical path) is always on; the
timeline is the optional part measured here.

Run: python benchmarks/bench_profile.py [--steps 300] [--repeat 3]

Measured (x86_64, 2 cores, python 3.11.7, numpy 2.4.6, OPENBLAS_NUM_THREADS=1, 300 steps):
  no timeline                        2508.7 steps/s  (0.12 s, x1.00)
  Timeline() (all events)            2310.6 steps/s  (0.13 s, x1.09), 43200 events, chrome_trace export 0.08 s
  Timeline(steps 0:10, layer 0)      2414.9 steps/s  (0.12 s, x1.04), 120 events
(the lost-read count of gcsim/sim/refresh.py, always on, costs about 1 %: 2578 vs 2607 steps/s)
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from gcsim import load_hardware  # noqa: E402
from gcsim.profiling import chrome_trace  # noqa: E402
from gcsim.sim import ArrayTrace, Simulator, Timeline  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    ap.add_argument("--model", default="paper-gpt2")
    args = ap.parse_args()
    hw = load_hardware(args.model)
    s, T = hw.shape, args.steps
    q = np.zeros((T, s.layers, s.heads, s.d_head), np.float16)
    kv = np.zeros((T, s.layers, s.kv_heads, s.d_head), np.float16)
    trace = ArrayTrace(q, kv, kv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    print(f"{args.model}: {s.layers} layers x {s.heads} heads, {T} steps, timing-only, best of {args.repeat}")
    variants = {
        "no timeline": lambda: None,
        "Timeline() (all events)": lambda: Timeline(),
        "Timeline(steps 0:10, layer 0)": lambda: Timeline((0, 10), {0}),
    }
    base = None
    for name, make in variants.items():
        best, events, export = float("inf"), 0, 0.0
        for _ in range(args.repeat):
            tl = make()
            sim = Simulator(hw, trace, values=False, timeline=tl)
            t0 = time.perf_counter()
            res = sim.run()
            best = min(best, time.perf_counter() - t0)
            if tl is not None:
                events = len(tl.events)
                t1 = time.perf_counter()
                chrome_trace(res.timeline)
                export = time.perf_counter() - t1
        base = base or best
        extra = f", {events} events, chrome_trace export {export:.2f} s" if events else ""
        print(f"  {name:<32} {T / best:8.1f} steps/s  ({best:.2f} s, x{best / base:.2f}){extra}")


if __name__ == "__main__":
    main()
