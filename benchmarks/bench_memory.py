"""Peak memory against trace length: `gcsim run` (functional and timing-only), `gcsim profile`
(without and with --timeline), `gcsim validate` and `gcsim reference` at 1,000, 5,000 and
20,000 steps, and the previous version's `run`; optionally a longer timing-only
`profile --timeline` (--timeline-steps, e.g. 100000).

Each command runs in a fresh process (its CLI entry point called in-process, then VmHWM, the
peak resident set, read from /proc/self/status). Shape: GPT-2 heads (12 x 64, window 1024)
with 2 layers (`-s shape.layers=2`) so that 20,000 functional steps take minutes, not an
hour (--heads H --window W: fewer heads and a shorter window, e.g. 2 and 64, for validate at
200,000 steps); the trace is synthetic, float16, written once per length. Memory that grows with the
length shows up as a slope between the columns; flat columns mean it does not.

A cell "A+B" is the command's own peak A and, where it started worker processes (validate and
reference on long traces, -j default), the largest worker's peak B (RUSAGE_CHILDREN). The last
column is the growth of the own peak between the last two lengths, in bytes per step: what a
longer trace would add (0 where the peak does not move; a few MB of noise are ±100s of B/step
over 15,000 steps).

--heap prints instead the Python heap peak (tracemalloc) of each phase at the end of a
timing-only run: the simulation with its end-of-run checks, the report, per_step.csv, the
profile files and validate's timing check; a phase that builds a series of one value per
step shows it as a slope (bytes per step) between the columns.

--baseline REV measures every row with the tree of commit REV too (its trace format must be
this tree's), printed under this tree's row: the same commands side by side in one run.
--commands takes command words (run: both run rows) or row names ("profile --timeline").

Run: nice -n 15 python benchmarks/bench_memory.py [--steps 1000,5000,20000]
     [--commands run,profile,validate,reference,previous] [--previous b1385e8] [--timeline-steps 100000]
     [--baseline b7c094d] [--heap]
The default (run, profile, validate at 1k/5k/20k) takes about 5 minutes on an idle 2-core machine;
validate -j 1 takes about 40 ms per step (100,000 steps: over an hour).
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from trees import tree_at  # benchmarks/trees.py

ROOT = Path(__file__).resolve().parent.parent
LAYERS = 2

CHILD = """
import resource, sys
sys.path.insert(0, {root!r})
from gcsim.cli import main
rc = main({argv!r})
hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]
print('VMHWM', rc, hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


HEAP_CHILD = """
import sys, tempfile, tracemalloc
from pathlib import Path
sys.path.insert(0, {root!r})
from gcsim import load_hardware
from gcsim.profiling import write_profile
from gcsim.report import build_report, write_per_step_csv
from gcsim.sim import Simulator, schedule
from gcsim.traces import open_trace
sim = Simulator(load_hardware('paper-gpt2').derive(shape={{'layers': {layers}}}), open_trace({trace!r}),
                values=False, check=True)
out = Path(tempfile.mkdtemp())
tracemalloc.start()
def phase(name, f):
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    r = f()
    print('PHASE', name, tracemalloc.get_traced_memory()[1] - base, flush=True)
    return r
res = phase('Simulator.run (its end-of-run checks)', sim.run)
rep = phase('build_report', lambda: build_report(res, values=False))
phase('write_per_step_csv', lambda: write_per_step_csv(out / 'per_step.csv', res))
phase('write_profile', lambda: write_profile(out, res, rep))
phase('schedule.check (validate)', lambda: schedule.check(res))
"""


def heap_phases(root: Path, trace: Path) -> dict[str, int]:
    """{phase: heap peak above its start, bytes} of a timing-only run (check=True, as validate
    runs it) and of what run, profile and validate do with its records afterwards."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-c", HEAP_CHILD.format(root=str(root), trace=str(trace), layers=LAYERS)],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"bench_memory --heap: {proc.stderr.strip().splitlines()[-1:]}")
    return {line.split(" ", 1)[1].rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1])
            for line in proc.stdout.splitlines() if line.startswith("PHASE ")}


def print_heap(trees, steps, traces) -> None:
    print("\nPython heap peak (tracemalloc, MB) of each phase, timing-only, above what it started with:")
    for label, root in trees:
        table = {n: heap_phases(root, traces[n]) for n in steps}
        print(f"{label:40s}" + "".join(f"{n:>10d}" for n in steps) + "   steps"
              + (f"   B/step {steps[-2]}->{steps[-1]}" if len(steps) > 1 else ""))
        for name in table[steps[0]]:
            row = [table[n][name] for n in steps]
            growth = f"{(row[-1] - row[-2]) / (steps[-1] - steps[-2]):+12.1f}" if len(steps) > 1 else ""
            print(f"  {name:38s}" + "".join(f"{b / 1e6:10.2f}" for b in row) + growth, flush=True)


def peak_mb(root: Path, argv: list[str]) -> str:
    return peak(root, argv)[0]


def peak(root: Path, argv: list[str]) -> tuple[str, int | None]:
    """(cell text, own peak in kB or None if it failed)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-c", CHILD.format(root=str(root), argv=argv)],
                          capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("VMHWM"):
            _, rc, kb, child_kb = line.split()
            workers = f"+{int(child_kb) / 1024:.0f}" if int(child_kb) else ""   # the largest worker process
            return f"{int(kb) / 1024:.0f}{workers}" + ("" if rc == "0" else f" (exit {rc})"), int(kb)
    return "  failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:60], None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default="1000,5000,20000")
    ap.add_argument("--commands", default="run,profile,validate",
                    help="of run,profile,validate,reference,previous (default: %(default)s)")
    ap.add_argument("--timeline-steps", type=int, default=None,
                    help="also `profile --timing-only --timeline` at this length (and at the first of --steps)")
    ap.add_argument("--previous", default="b1385e8", help="commit whose `run` is measured with 'previous' in --commands")
    ap.add_argument("--baseline", default=None, help="also measure every row on this commit's tree (side by side)")
    ap.add_argument("--heads", type=int, default=12, help="query and K/V heads (default GPT-2's 12)")
    ap.add_argument("--window", type=int, default=1024, help="shape.window (default GPT-2's 1024)")
    ap.add_argument("--heap", action="store_true",
                    help="instead of peak RSS: the Python heap peak of each end-of-run phase (tracemalloc)")
    ap.add_argument("--previous-max-steps", type=int, default=5000,
                    help="the previous version only up to this length (it is several times slower)")
    args = ap.parse_args()
    steps = [int(x) for x in args.steps.split(",")]
    sys.path.insert(0, str(ROOT))
    import gcsim
    from gcsim.traces import write_synthetic

    print(f"gcsim {gcsim.__version__} bench_memory: peak RSS (VmHWM, MB) of one command per cell; "
          f"paper-gpt2 with {LAYERS} layers ({args.heads} heads x 64, window {args.window}), synthetic trace")
    print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine {platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    common = ["-m", "paper-gpt2", "-s", f"shape.layers={LAYERS}"]
    if (args.heads, args.window) != (12, 1024):   # a smaller shape: long traces in minutes
        common += ["-s", f"shape.heads={args.heads}", "-s", f"shape.kv_heads={args.heads}",
                   "-s", f"shape.window={args.window}"]
    rows = {
        "run": ["run", *common, "--no-progress"],
        "run --timing-only": ["run", *common, "--timing-only", "--no-progress"],
        "profile": ["profile", *common, "--no-progress"],
        "profile --timeline": ["profile", *common, "--timeline", "--no-progress"],
        "validate": ["validate", *common, "--no-progress"],
        "validate -j 1": ["validate", *common, "-j", "1", "--no-progress"],
        "reference": ["reference", *common, "--no-progress"],
        "reference -j 1": ["reference", *common, "-j", "1", "--no-progress"],
    }
    wanted = args.commands.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prev = tree_at(args.previous, tmp / "previous") if args.previous and "previous" in wanted else None
        base = None
        if args.baseline:
            base = tree_at(args.baseline, tmp / "baseline")
            if base is None:
                sys.exit(f"bench_memory: --baseline {args.baseline}: git archive failed")
        traces = {}
        long = [steps[0], args.timeline_steps] if args.timeline_steps else []
        for n in sorted(set(steps + long)):
            traces[n] = tmp / f"t{n}.gctrace"
            write_synthetic(traces[n], layers=LAYERS, heads=args.heads, kv_heads=args.heads, steps=n, seed=0)
        if args.heap:
            if (args.heads, args.window) != (12, 1024):
                sys.exit("bench_memory: --heap measures the GPT-2 shape only")
            print_heap([("this tree", ROOT)] + ([(args.baseline, base)] if base else []), steps, traces)
            return
        # numba compiles the bank-read kernel on a tree's first functional run (then caches it on
        # disk): do that here, so that compiling is not in the first cell's peak
        # (and validate its float64 ones)
        for root in (ROOT, base) if base else (ROOT,):
            peak(root, ["run", str(traces[steps[0]]), *common, "--steps", "2", "--no-progress", *out_dir(["run"], tmp)])
            if "validate" in args.commands:
                peak(root, ["validate", str(traces[steps[0]]), *common, "--steps", "2", "-j", "1", "--no-progress"])
        print(f"{'command':32s}" + "".join(f"{n:>10d}" for n in steps) + "   steps"
              + (f"   B/step {steps[-2]}->{steps[-1]}" if len(steps) > 1 else ""))
        todo = []
        for name, argv in rows.items():
            if name.split()[0] in wanted or name in wanted:
                todo.append((name, argv, ROOT))
                if base is not None:
                    todo.append((f"  {name} ({args.baseline})", argv, base))
        if prev is not None and "previous" in wanted:
            todo.append((f"run (gcsim {args.previous})", ["run", *common], prev))
            for n in steps:   # the previous gcsim reads only its own trace format (v1): same data, its writer
                if n <= args.previous_max_steps:
                    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                                    "from gcsim.traces.synthetic import write_synthetic; "
                                    f"write_synthetic(sys.argv[2], layers={LAYERS}, steps={n}, seed=0)",
                                    str(prev), str(tmp / f"prev{n}.gctrace")], check=True, cwd=prev)
        for name, argv, root in todo:
            cells, kbs = [], []
            for n in steps:
                if root == prev and n > args.previous_max_steps:
                    cells.append("-")
                    kbs.append(None)
                    continue
                trace = tmp / f"prev{n}.gctrace" if root == prev else traces[n]
                cell, kb = peak(root, [*argv[:1], str(trace), *argv[1:], *out_dir(argv, tmp)])
                cells.append(cell)
                kbs.append(kb)
            growth = ""
            if len(steps) > 1 and None not in kbs[-2:]:
                growth = f"{(kbs[-1] - kbs[-2]) * 1024 / (steps[-1] - steps[-2]):+12.0f}"
            print(f"{name:32s}" + "".join(f"{c:>10s}" for c in cells) + growth, flush=True)
        if long:
            argv = ["profile", *common, "--timing-only", "--timeline", "--no-progress"]
            cells, sizes = [], []
            for n in long:
                cells.append(peak_mb(ROOT, [argv[0], str(traces[n]), *argv[1:], *out_dir(argv, tmp)]))
                tl = tmp / "out" / "timeline.json"
                sizes.append(f"{tl.stat().st_size / 2**20:8.0f}" if tl.exists() else "-")
            print(f"\n{'profile --timing-only --timeline':32s}" + "".join(f"{n:>10d}" for n in long) + "   steps")
            print(f"{'  peak RSS MB':32s}" + "".join(f"{c:>10s}" for c in cells))
            print(f"{'  timeline.json MB':32s}" + "".join(f"{c:>10s}" for c in sizes), flush=True)


def out_dir(argv, tmp: Path) -> list[str]:
    """A fresh output directory (removed after the run: a long timeline is large)."""
    if argv[0] == "validate":
        return []
    import shutil
    out = tmp / "out"
    shutil.rmtree(out, ignore_errors=True)
    return ["-o", str(out)]


if __name__ == "__main__":
    main()
