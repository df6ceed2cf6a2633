"""Sweep throughput: points per second of a timing-only sweep against the number of local
workers (1, 2), its parallel efficiency, and the same sweep on a local Ray cluster with Ray's
overhead per point.

Every configuration computes every point (a fresh, empty cache per repeat). The baseline,
printed in the same run, is the same points run one after another in this process with no
pool at all (gcsim.sweeps.point.run_point). Overhead per point = (wall time x workers -
baseline time) / points: the time a backend spends per point on anything but simulating
(process start, imports, pickling, scheduling), assuming the workers are never idle. On a
machine loaded by other work the wall times mostly measure the contention, so the local
backends are also given in CPU time (this process and its worker processes, from
getrusage): CPU per point, and its excess over the baseline's CPU per point. Ray's workers are
not children of this process, so Ray has wall figures only.

Run: python benchmarks/bench_sweep.py [--points 8] [--steps 1000] [--repeat 5] [--no-ray]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gcsim.sweeps.runner import run_sweep  # noqa: E402
from gcsim.sweeps.spec import parse_spec  # noqa: E402


def spec_for(trace: Path, points: int) -> dict:
    return {"hardware": "paper-gpt2", "traces": [{"path": str(trace)}], "mode": "timing-only",
            "axes": [{"grid": {"timing.host_ns_per_layer": [float(i) for i in range(points)]}}]}


def cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    import resource
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


CPU = {}


def baseline(spec) -> float:
    """Every point in this process, one after another (no pool, no cache)."""
    from gcsim.hardware import to_dict
    from gcsim.sweeps.point import run_point
    c0 = cpu_s()
    t0 = time.perf_counter()
    for p in spec.points():
        desc = to_dict(p.hardware)
        desc.pop("source", None)
        rec = run_point({"description": desc, "trace": spec.traces[0].path, "mode": spec.mode,
                         "steps": None, "seed": 0})
        assert rec["status"] == "ok", rec
    CPU.setdefault("in-process", []).append(cpu_s() - c0)
    return time.perf_counter() - t0


def timed(spec, **backend) -> float:
    with tempfile.TemporaryDirectory() as cache:
        c0 = cpu_s()
        t0 = time.perf_counter()
        res = run_sweep(spec, cache=cache, **backend)
        wall = time.perf_counter() - t0
        if "jobs" in backend:                 # the pool's workers have ended: their CPU is counted
            CPU.setdefault(f"-j {backend['jobs']}", []).append(cpu_s() - c0)
    assert res.counts["computed"] == res.counts["points"] and res.counts["failed"] == 0, res.counts
    return wall


def stats(xs):
    return statistics.median(xs), min(xs), max(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2000, help="steps of the GPT-2-shaped trace per point")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    from gcsim.traces import write_synthetic
    with tempfile.TemporaryDirectory() as tmp:
        trace = write_synthetic(Path(tmp) / "gpt2.gctrace", steps=args.steps, seed=0)
        spec = parse_spec(spec_for(trace, args.points))
        n = args.points
        print(f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
              f"{n} timing-only points of paper-gpt2 x {args.steps} steps; medians of {args.repeat} "
              f"(min .. max); load average before: {os.getloadavg()[0]:.1f}")
        rows = [("in-process baseline (no pool)", 1, [baseline(spec) for _ in range(args.repeat)])]
        for j in (1, 2):
            rows.append((f"local workers -j {j}", j, [timed(spec, jobs=j) for _ in range(args.repeat)]))
        if not args.no_ray:
            try:
                import ray
            except ImportError:
                ray = None
                print("(Ray not installed: pip install -e '.[ray]')")
            if ray is not None:
                from gcsim.sweeps.backends import ray_init
                t0 = time.perf_counter()
                ray_init(None, 2)
                start = time.perf_counter() - t0
                rows.append(("Ray, local cluster of 2 CPUs", 2, [timed(spec, ray=True) for _ in range(args.repeat)]))
                ray.shutdown()
                print(f"Ray cluster start-up (ray.init, once, not in the figures below): {start:.2f} s")
        base = statistics.median(rows[0][2])
        one = statistics.median(rows[1][2])
        print(f"{'configuration':<32} {'wall s':>22} {'points/s':>9} {'speed-up':>9} {'efficiency':>10} "
              f"{'overhead/point':>15}")
        for name, workers, walls in rows:
            med, lo, hi = stats(walls)
            eff = (one / med) / workers if workers > 1 or name.startswith("local") else float("nan")
            over = (med * workers - base) / n
            print(f"{name:<32} {med:8.2f} ({lo:5.2f} .. {hi:5.2f}) {n / med:9.2f} {base / med:8.2f}x "
                  f"{eff:10.2f} {over * 1000:12.0f} ms")
        print(f"load average after: {os.getloadavg()[0]:.1f} (efficiency: points/s over workers x the -j 1 "
              f"points/s; speed-up: against the in-process baseline)")
        base_cpu = statistics.median(CPU["in-process"]) / n
        print(f"CPU time per point (this process + its workers), medians (min .. max):")
        for name, vals in CPU.items():
            med, lo, hi = stats([v / n for v in vals])
            print(f"  {name:<12} {med * 1000:7.0f} ms ({lo * 1000:5.0f} .. {hi * 1000:5.0f})   "
                  f"overhead over in-process {(med - base_cpu) * 1000:6.0f} ms per point")


if __name__ == "__main__":
    main()
