"""`gcsim sweep`: design-space sweeps from a YAML description (docs/sweep.md).

    gcsim sweep SPEC.yaml -o OUT [-j N] [--ray [ADDRESS]] [--cache DIR]
    gcsim sweep plot OUT

Every point is an independent simulation, run on N local worker processes (default: every
core) or on Ray (--ray: a local Ray cluster; --ray ADDRESS: join an existing one). Results
are cached per point (--cache, default in the user's cache directory): a rerun, or another
spec sharing points, computes only new points, and an interrupted sweep resumes where it
stopped. It prints the swept fields and the main figures of each point (--quiet: nothing);
OUT gets the whole table, results.csv, results.parquet (with pyarrow) and sweep.json (spec,
counts, provenance). Exit status 4 when the sweep finished but some points failed (their rows give
the error). `gcsim sweep plot OUT` adds pareto.png and one chart per axis (matplotlib).
Modes: timing-only, functional, validate, and eval (a language model's perplexity, top-1
agreement and KL with each point's chip in its loop, next to its cost; plots show perplexity
against each axis).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..errors import EXIT_OK, EXIT_SWEEP_FAILED, UsageError
from ..progress import add_feedback, say, wanted
from .common import add_output, open_output


def register(sub):
    p = sub.add_parser("sweep", help="run a design-space sweep (or `sweep plot OUT`: draw its charts)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC.yaml | plot", help="sweep description, or `plot` followed by OUT")
    p.add_argument("plot_dir", nargs="?", metavar="OUT", help="(with plot) the sweep's output directory")
    add_output(p, "out/sweep")
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="local worker processes (default: every core)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the points on Ray: a local cluster, or join ADDRESS (pip install 'gcsim[ray]')")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="per-point result cache shared by all sweeps (default: the user's cache directory)")
    p.add_argument("--retry-failed", action="store_true", help="compute again the points that failed before")
    add_feedback(p)
    p.set_defaults(func=main)


def _plot(args, out_dir: str) -> int:
    from ..sweeps.plot import plot_sweep
    from ..sweeps.table import SWEEP_JSON
    src = Path(out_dir)
    if not (src / SWEEP_JSON).is_file():
        raise UsageError(f"{src}: not a sweep output directory (no {SWEEP_JSON}); run gcsim sweep SPEC -o {src} first")
    from ..outdir import output_dir
    with output_dir(src) as tmp:             # OUT is rewritten whole: its table plus the charts
        for f in sorted(src.iterdir()):
            if f.is_file() and not f.name.startswith(".") and not f.name.endswith(".png"):
                shutil.copy2(f, tmp / f.name)
        written = plot_sweep(src, tmp)
    say(args, f"wrote {src}/ ({', '.join(written)})")
    return EXIT_OK


def main(args) -> int:
    if args.spec == "plot" and args.plot_dir is not None:
        return _plot(args, args.plot_dir)
    if args.spec == "plot" and not Path("plot").is_file():
        raise UsageError("gcsim sweep plot OUT: name the sweep's output directory (OUT of gcsim sweep SPEC -o OUT)")
    if args.plot_dir is not None:
        raise UsageError(f"unexpected argument {args.plot_dir!r} (did you mean: gcsim sweep plot {args.plot_dir}?)")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j/--jobs must be >= 1, got {args.jobs}")
    from ..sweeps.runner import run_sweep
    from ..sweeps.spec import load_spec
    from ..sweeps.table import write_outputs
    spec = load_spec(args.spec)                  # a bad spec fails before OUT is touched
    with open_output(args) as tmp:
        result = run_sweep(spec, jobs=args.jobs, ray=args.ray, cache=args.cache,
                           progress=wanted(args),
                           retry_failed=args.retry_failed, command=getattr(args, "command_line", None))
        written = write_outputs(tmp, result)
    c = result.counts
    from ..sweeps.table import format_table, main_columns
    say(args, format_table(result.rows, main_columns(result)) + "\n")
    say(args, f"sweep {spec.source}: {c['points']} points: {c['ok']} ok, {c['failed']} failed, "
          f"{c['skipped']} skipped; {c['computed']} computed, {c['cached']} from the cache "
          f"({result.provenance['backend']})")
    for row in result.rows:
        if row["status"] == "failed":
            say(args, f"  point {row['point']} failed: {row['error']}")
    say(args, f"wrote {args.out}/ ({', '.join(written)})")
    return EXIT_SWEEP_FAILED if c["failed"] else EXIT_OK
