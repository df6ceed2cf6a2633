"""Sweep planning: the time `gcsim sweep` spends before its first point runs (every
combination's description built and validated, constraints evaluated, each point's cache key
and cache look-up), for a spec of N points (default 10,000, the most a spec may have).

The baseline, in the same run, is another commit's tree (--baseline REV, default main)
planning the same spec with the same empty cache; the two alternate, repeat by repeat, so a
machine loaded by other work slows both alike. No point is simulated: the worker backend is
replaced by one that stops the sweep when it is handed the tasks.

Run: python benchmarks/bench_sweep_plan.py [--points 10000] [--repeat 3] [--baseline REV]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import ROOT, tree_at  # noqa: E402

# run in a child process with PYTHONPATH at the tree measured; prints the planning seconds
CHILD = r"""
import json, sys, time
import gcsim.sweeps.backends as backends
from gcsim.sweeps.runner import run_sweep

class Planned(Exception):
    pass

def handed(tasks, jobs):
    raise Planned(len(tasks))

backends.run_local = handed
spec, cache = json.loads(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
try:
    run_sweep(spec, jobs=1, cache=cache)
except Planned as done:
    print(json.dumps({"seconds": time.perf_counter() - t0, "tasks": done.args[0]}))
"""


def spec_for(points: int) -> dict:
    """A timing-only grid of `points` points on a synthetic trace, with one constraint."""
    a = max(1, int(points ** 0.5))
    b = points // a
    return {"hardware": "paper-gpt2", "mode": "timing-only", "steps": 4,
            "traces": [{"synthetic": {"steps": 4, "seed": 0}}],
            "axes": [{"grid": {"timing.host_ns_per_layer": list(range(a)),
                               "timing.phases_ns.routing": list(range(1, b + 1))}}],
            "constraints": [{"require": "timing.host_ns_per_layer >= 0", "reason": "never"}]}


def plan_once(tree: Path, spec: dict, cache: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), str(cache)], env=env, cwd=tree,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", default="main", metavar="REV")
    args = ap.parse_args()
    spec = spec_for(args.points)
    with tempfile.TemporaryDirectory() as tmp:
        base = tree_at(args.baseline, Path(tmp) / "baseline")
        if base is None:
            raise SystemExit(f"--baseline {args.baseline}: no such commit in this repository")
        trees = [("this tree", ROOT), (f"baseline {args.baseline}", base)]
        times = {name: [] for name, _ in trees}
        tasks = {}
        for r in range(args.repeat):
            for name, tree in trees:
                got = plan_once(tree, spec, Path(tmp) / f"cache-{r}-{name.replace(' ', '-')}")
                times[name].append(got["seconds"])
                tasks[name] = got["tasks"]
    grid = spec["axes"][0]["grid"]
    n = len(grid["timing.host_ns_per_layer"]) * len(grid["timing.phases_ns.routing"])
    print(f"planning a {n:,}-point timing-only spec (empty cache), {args.repeat} repeats, alternating; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'tree':<22} {'median s':>9} {'min s':>7} {'ms / point':>11} {'tasks':>7}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<22} {med:9.1f} {min(ts):7.1f} {1000 * med / tasks[name]:11.2f} {tasks[name]:7,}")
    a, b = (statistics.median(times[n]) for n, _ in trees)
    print(f"this tree takes {a / b:.2f} x the baseline's time")


if __name__ == "__main__":
    main()
