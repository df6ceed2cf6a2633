"""Layers in parallel: `gcsim reference` on a long GPT-2-shaped trace with -j 1 (the layers one
after another in this process) and -j 2 (two worker processes, gcsim/parallel.py), side by
side in the same run: wall time (medians of repeats, min .. max) and CPU time of this process
and its workers (getrusage), so the overhead of the workers shows even on a loaded machine.

Run: python benchmarks/bench_layers.py [--steps 1024] [--repeat 5]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gcsim.cli import main as cli  # noqa: E402


def cpu_s() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from gcsim.traces import write_synthetic
    with tempfile.TemporaryDirectory() as tmp:
        trace = write_synthetic(Path(tmp) / "gpt2.gctrace", steps=args.steps, seed=0)
        print(f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; gcsim reference "
              f"(cubic) on paper-gpt2 x {args.steps} steps; medians of {args.repeat} (min .. max); "
              f"load average before: {os.getloadavg()[0]:.1f}")
        walls, cpus = {1: [], 2: []}, {1: [], 2: []}
        for _ in range(args.repeat):
            for j in (1, 2):                    # interleaved: both see the same load
                c0, t0 = cpu_s(), time.perf_counter()
                rc = cli(["reference", str(trace), "-m", "paper-gpt2", "-o", f"{tmp}/out{j}", "-j", str(j), "-q"])
                walls[j].append(time.perf_counter() - t0)
                cpus[j].append(cpu_s() - c0)
                assert rc == 0
        for j in (1, 2):
            w, c = walls[j], cpus[j]
            print(f"-j {j}: wall {statistics.median(w):7.2f} s ({min(w):6.2f} .. {max(w):6.2f}), "
                  f"CPU {statistics.median(c):7.2f} s ({min(c):6.2f} .. {max(c):6.2f})")
        print(f"speed-up -j 2 over -j 1 (wall medians): {statistics.median(walls[1]) / statistics.median(walls[2]):.2f}x; "
              f"CPU overhead of the workers: {statistics.median(cpus[2]) - statistics.median(cpus[1]):+.2f} s; "
              f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
