"""The mutation harness: plant each bug of catalogue.py, one at a time, in a scratch copy of
this tree and see what catches it: `gcsim validate` alone (on the shipped descriptions and the
scenarios of scenarios.py, validate_suite.py), and the tests.

    python tests/mutations/run.py                   # every mutation, validate and the tests
    python tests/mutations/run.py --only T1 E1      # some
    python tests/mutations/run.py --tests none      # validate only
    python tests/mutations/run.py --tests all       # the whole default test suite per mutation
    python tests/mutations/run.py --check           # only check that every patch still applies
    python tests/mutations/run.py --all-scenarios   # every scenario on each mutation (slower)

A patch is a text replacement that must find its text exactly once: one that no longer
applies stops the run before anything is planted (the code it targets has moved: update the
catalogue). The unmutated copy must pass validate and the tests first. A mutation is caught
by validate if any scenario exits non-zero: 1 (a check failed) or anything else (the
command crashed: counted apart); the scenarios run in order and stop at the first that
catches it (--all-scenarios: all of them). Results: a table on stdout, `--json PATH` for the record.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from catalogue import MUTATIONS, NotApplicable, apply, check_applies  # noqa: E402

# the tests run against each mutation by default: those of the simulator's timing, energy and
# accounting (`--tests all`: the whole default suite)
TESTS = ["tests/test_witness.py", "tests/test_scenarios.py", "tests/test_sim.py", "tests/test_whatifs.py",
         "tests/test_links.py", "tests/test_costs.py", "tests/test_sim_processes.py", "tests/test_flat_memory.py"]
VALIDATE_TIMEOUT_S = 1800
TESTS_TIMEOUT_S = 3600


def copy_tree(dst: Path) -> None:
    """The files git tracks, and the untracked ones it does not ignore, as they are now."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():   # e.g. gcsim/data/models -> ../../models: the same link
            os.symlink(os.readlink(src), dst / name)
        elif src.is_file():
            shutil.copy2(src, dst / name)


def env_for(tree: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1", GCSIM_NO_PROGRESS="1")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_validate(tree: Path, first: bool = False) -> dict:
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, str(tree / "tests/mutations/validate_suite.py")] + (["--first"] if first else []),
                           cwd=tree,
                           env=env_for(tree), capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_S)
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        rc = p.returncode
    except subprocess.TimeoutExpired:
        lines, rc = [], "timeout"
    checked = [x for x in lines if x["exit"] == 1]          # a check failed
    crashed = [x for x in lines if x["exit"] not in (0, 1)]  # the command crashed
    return {"caught": rc != 0, "crash": not checked and rc != 0,   # caught by a crash only
            "by": [f"{x['scenario']}: {', '.join(x['failed'])}" for x in checked] +
                  [f"{x['scenario']}: crashed (exit {x['exit']})" for x in crashed],
            "seconds": round(time.monotonic() - t0, 1)}


def run_tests(tree: Path, tests: list[str]) -> dict:
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=tree,
                           env=env_for(tree), capture_output=True, text=True, timeout=TESTS_TIMEOUT_S)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired:
        rc, out = "timeout", ""
    failed = [x.split(" - ")[0] for x in out.splitlines() if x.startswith(("FAILED", "ERROR"))]
    return {"caught": rc != 0, "by": failed[:1], "seconds": round(time.monotonic() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="mutation ids")
    ap.add_argument("--tests", default="default", help="'default' (the timing and energy tests), 'all' (the "
                    "default suite), 'none', or test files separated by commas")
    ap.add_argument("--check", action="store_true", help="only check that every patch applies")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--markdown", help="write the results as a markdown table here (docs/validation.md)")
    ap.add_argument("--tests-for", choices=("all", "missed"), default="all",
                    help="run the tests for every mutation, or only those validate missed")
    ap.add_argument("--all-scenarios", action="store_true",
                    help="run every scenario on each mutation (default: stop at the first that catches it)")
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    chosen = [m for m in MUTATIONS if not args.only or m.id in args.only]
    tests = {"default": TESTS, "all": [], "none": None}.get(args.tests, args.tests.split(",") if args.tests else None)
    with tempfile.TemporaryDirectory(prefix="gcsim-mutations-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        try:
            for m in chosen:
                check_applies(m, tree)
        except NotApplicable as exc:
            print(f"mutation harness: {exc}", file=sys.stderr)
            return 2
        print(f"{len(chosen)} mutations apply to {ROOT}")
        if args.check:
            return 0
        base = run_validate(tree)
        if base["caught"]:
            print(f"the unmutated tree fails validate: {base['by']}", file=sys.stderr)
            return 2
        if tests is not None:
            base_tests = run_tests(tree, tests)
            if base_tests["caught"]:
                print(f"the unmutated tree fails the tests: {base_tests['by']}", file=sys.stderr)
                return 2
        print(f"baseline: validate passes ({base['seconds']} s)"
              + (f", tests pass ({base_tests['seconds']} s)" if tests is not None else ""), flush=True)
        results = []
        record = {"commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "tests": tests, "tests_for": args.tests_for, "all_scenarios": args.all_scenarios, "baseline": {"validate": base,
                  "tests": base_tests if tests is not None else None}, "results": results}
        for m in chosen:
            with apply(m, tree):
                v = run_validate(tree, first=not args.all_scenarios)
                t = None
                if tests is not None and (args.tests_for == "all" or not v["caught"]):
                    t = run_tests(tree, tests)
            results.append({"id": m.id, "area": m.area, "what": m.what, "validate": v, "tests": t})
            if args.json:   # after each mutation: a run stopped half-way keeps what it measured
                record["wall_s"] = round(time.monotonic() - t_start)
                Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
            print(f"{m.id:<4} {m.area:<14} validate {'CAUGHT' if v['caught'] else 'missed'}"
                  f"{' (only by a crash)' if v['crash'] else ''}"
                  + ("" if t is None else f", tests {'CAUGHT' if t['caught'] else 'missed'}")
                  + (f"  [{v['by'][0]}]" if v["by"] else "")
                  + f"  {m.what}", flush=True)
    record["wall_s"] = round(time.monotonic() - t_start)
    record["summary"] = summary(results, tests is not None)
    print(record["summary"])
    print(f"wall time {record['wall_s']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(results))
    return 0


def commit() -> str:
    """The tree's commit, +dirty when gcsim/ or tests/ have uncommitted changes."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--", "gcsim", "tests") else "")


def markdown(results) -> str:
    rows = ["| id | area | planted bug | `gcsim validate`: the first scenario that fails, its failed checks "
            "| tests (the first failing) |",
            "|---|---|---|---|---|"]
    for r in results:
        v, t = r["validate"], r["tests"]
        vt = (f"caught: {v['by'][0]}" if v["caught"] and v["by"] else
              "caught (no scenario line)" if v["caught"] else "**missed**")
        tt = "not run" if t is None else (f"caught: {t['by'][0] if t['by'] else 'failed'}" if t["caught"] else
                                           "**missed**")
        rows.append(f"| {r['id']} | {r['area']} | {r['what']} | {vt} | {tt} |")
    return "\n".join(rows) + "\n"


def only_invariants(r) -> bool:
    """Caught, and in every failing scenario listed only by (i), the simulator's own invariants
    (it stopped at its accounting check, so the witness's comparisons did not run)."""
    by = r["validate"]["by"]
    return r["validate"]["caught"] and bool(by) and all(b.endswith(": (i) invariants") for b in by)


def summary(results, with_tests: bool) -> str:
    n = len(results)
    v = sum(r["validate"]["caught"] for r in results)
    crash = sum(r["validate"]["caught"] and r["validate"]["crash"] for r in results)
    inv = [r["id"] for r in results if only_invariants(r)]
    lines = [f"validate alone: {v} of {n} caught ({100 * v / n:.0f} %): {v - crash} by a failing check, {crash} only "
             f"by a crash ({100 * (v - crash) / n:.0f} % by a check)",
             f"of those, by the witness's comparisons or the values (a): {v - crash - len(inv)} "
             f"({100 * (v - crash - len(inv)) / n:.0f} %); only by the invariants (i), the simulator stopping at its own "
             f"accounting check: {len(inv)}" + (f" ({', '.join(inv)})" if inv else "")]
    if with_tests:
        ran = [r for r in results if r["tests"] is not None]
        t = sum(r["tests"]["caught"] for r in ran)
        both = sum(r["validate"]["caught"] or (r["tests"] or {}).get("caught", False) for r in results)
        lines += [f"tests: run on {len(ran)} mutations ({'those validate missed' if len(ran) < n else 'all'}), "
                  f"caught {t}",
                  f"validate and tests together: {both} of {n} ({100 * both / n:.0f} %)"]
    missed = [r["id"] for r in results if not r["validate"]["caught"]]
    if missed:
        lines.append("missed by validate: " + ", ".join(missed))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
