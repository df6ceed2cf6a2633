"""Simulator speed on the GPT-2 shape at full window (models/paper-gpt2.yaml, 12 layers x 12
heads x 64, window 1024), side by side in one run:

- this tree and the previous simulators, each taken with `git archive` into a temporary
  directory and imported in its own process: one process per component with 13 events per
  layer step (main at 18ec054), the components as callback actors (main at 0898eac: only the
  host's decode loop and refresh were SimPy processes, 5 events per layer step) and the
  one-process sequencer (main at b1385e8);
- timing-only mode: whole runs of 1024 + AFTER steps, repeated (median, min, max), and the
  SimPy events per layer step (events scheduled / (steps x layers));
- functional mode (float32): per-step times of the steps after the window is full, read from
  the moments the simulator asks for each step's inputs (no subtraction of two runs), in
  chunks (median, min, max over the chunks); next to the reference model's step form
  (`DecodeState`, float32) over the same steps in the same process, for each tree (each with
  its own kernels);
- wall-clock and CPU (process) time: on a shared machine the wall figure includes time the
  process waited for a core, the CPU figure does not;
- peak memory of a functional run at three trace lengths.
benchmarks/bench_values.py measures the functional path further (numpy floors, kernel
threads, larger descriptions).

With --baseline REV (e.g. main), that commit's tree is measured too, beside this tree, in the
same run (for a change's speed against the tree it changes).

Run: python benchmarks/bench_sim.py [--after 256] [--repeats 5] [--no-previous] [--baseline REV]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from trees import tree_at  # noqa: E402  (benchmarks/trees.py)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PREVIOUS = {"18ec054": "13-event processes", "0898eac": "callback components",
            "b1385e8": "sequencer"}   # earlier versions of main

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, TREE)
from gcsim import load_hardware
from gcsim.sim import ArrayTrace, Simulator
hw = load_hardware(TREE + "/models/paper-gpt2.yaml")
M, L, H, d = hw.shape.window, hw.shape.layers, hw.shape.heads, hw.shape.d_head
T = M + AFTER
rng = np.random.default_rng(0)
q = rng.normal(0.4, 0.4, (T, L, H, d)).astype(np.float16)
k = rng.normal(0, 0.3, (T, L, H, d)).astype(np.float16)
v = rng.normal(0, 0.3, (T, L, H, d)).astype(np.float16)
out = {}

def rate(n, dt):
    return n / dt

if MODE == "timing":
    wall, cpu = [], []
    for _ in range(REPEATS):
        sim = Simulator(hw, ArrayTrace(q, k, v), values=False)
        w0, c0 = time.perf_counter(), time.process_time()
        sim.run()
        wall.append(T / (time.perf_counter() - w0)); cpu.append(T / (time.process_time() - c0))
    out["timing"] = {"wall": wall, "cpu": cpu, "events": next(sim.env._eid) / (T * L) if hasattr(sim, "env") else float("nan")}
else:
    STAMPS = {}
    class Stamped(np.ndarray):   # q as the simulator reads it: one read per step, time-stamped
        stamps = STAMPS          # (an ndarray subclass: ArrayTrace checks it is a 4-d float array)
        def __getitem__(self, t):
            if isinstance(t, (int, np.integer)) and int(t) not in STAMPS:
                STAMPS[int(t)] = (time.perf_counter(), time.process_time())
            return np.asarray(np.ndarray.__getitem__(self, t))
    sq = q.view(Stamped)
    trace = ArrayTrace(q, k, v)
    trace.q = sq   # after its checks: ArrayTrace keeps a plain ndarray (np.asarray), which has no stamps
    Simulator(hw, trace, steps=T).run()
    chunk = AFTER // REPEATS
    def chunks(stamps):
        wall, cpu = [], []
        for i in range(REPEATS):
            a, b = M + i * chunk, M + (i + 1) * chunk
            if b >= T:
                b = T - 1
            wall.append((b - a) / (stamps[b][0] - stamps[a][0])); cpu.append((b - a) / (stamps[b][1] - stamps[a][1]))
        return {"wall": wall, "cpu": cpu}
    out["functional"] = chunks(sq.stamps)
    if REFERENCE:
        from gcsim.reference import DecodeState
        states = [DecodeState(hw, layer=l, dtype=np.float32) for l in range(L)]
        per = hw.timing.nominal_token_period_ps
        stamps = {}
        for t in range(T):
            stamps[t] = (time.perf_counter(), time.process_time())
            for l, st in enumerate(states):
                st.write(t, k[t, l].astype(np.float32), v[t, l].astype(np.float32), t * per)
                st.read(q[t, l].astype(np.float32), t, t * per)
        out["reference"] = chunks(stamps)
print(json.dumps(out))
"""


def child(tree: str, mode: str, after: int, repeats: int, reference: bool = False) -> dict:
    code = (f"TREE = {tree!r}; MODE = {mode!r}; AFTER = {after}; REPEATS = {repeats}; REFERENCE = {reference}\n"
            + CHILD)
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env, cwd=tree)
    return json.loads(out.stdout.strip().splitlines()[-1])


def previous_tree(tmp: str, commit: str) -> str | None:
    """main at `commit` (None if git or the commit is missing)."""
    tree = tree_at(commit, Path(tmp) / commit)
    return None if tree is None else str(tree)


def stats(xs) -> str:
    import statistics
    return f"{statistics.median(xs):8.0f}  ({min(xs):.0f} - {max(xs):.0f})"


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
    ap.add_argument("--after", type=int, default=250, help="steps after the window is full (default 250)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats / chunks (default 5)")
    ap.add_argument("--no-previous", action="store_true", help="skip the previous simulators")
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="also measure this commit's tree (e.g. main), beside this tree")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    args = ap.parse_args()
    import numpy as np
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, "
          f"load average at start {' '.join(load)}")
    print(f"GPT-2 shape (12 layers x 12 heads x 64), window 1024; steps/s, median (min - max) of "
          f"{args.repeats} repeats (timing-only: whole runs of {1024 + args.after} steps; functional: "
          f"chunks of the {args.after} steps after the window is full)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = [("this tree", str(ROOT))]
        if args.baseline:
            base = previous_tree(tmp, args.baseline)
            if base is None:
                raise SystemExit(f"--baseline {args.baseline}: no such commit in this repository")
            trees.append((f"baseline {args.baseline}", base))
        for commit, what in ({} if args.no_previous else PREVIOUS).items():
            prev = previous_tree(tmp, commit)
            if prev:
                trees.append((f"{what} ({commit})", prev))
        for name, tree in trees:   # one after another per mode so that all see the same load
            r = child(tree, "timing", args.after, args.repeats)["timing"]
            rows.append((name, f"timing only ({r.pop('events'):.1f} events per layer step)", r))
        for name, tree in trees:
            res = child(tree, "functional", args.after, args.repeats, reference=True)
            rows.append((name, "functional (float32)", res["functional"]))
            if "reference" in res:
                rows.append((name, "reference step form DecodeState (float32), same process", res["reference"]))
    print(f"{'simulator':<32} {'mode':<58} {'wall steps/s':>24}   {'CPU steps/s':>24}")
    for name, mode, r in rows:
        print(f"{name:<32} {mode:<58} {stats(r['wall']):>24}   {stats(r['cpu']):>24}")
    import statistics
    for name, _ in trees:   # each tree against its own reference step form (its own kernels)
        func = next(r for n, m, r in rows if n == name and m.startswith("functional"))
        ref = next(r for n, m, r in rows if n == name and m.startswith("reference"))
        print(f"{name}: functional / reference time (median of per-chunk ratios, CPU): "
              f"{statistics.median(b / a for a, b in zip(func['cpu'], ref['cpu'])):.2f}x")
    if not args.no_memory:
        with tempfile.TemporaryDirectory() as tmp:
            from gcsim.traces import write_synthetic
            path = Path(tmp) / "gpt2.gctrace"
            long_steps = 2 * 1024 + 512
            write_synthetic(path, steps=long_steps, seed=0)
            rss = {n: peak_rss_mb(str(path), n) for n in (512, 1024 + 64, long_steps)}
        print("peak RSS of a functional run: " + ", ".join(f"{n} steps {mb:.0f} MB" for n, mb in rss.items()))


if __name__ == "__main__":
    main()
