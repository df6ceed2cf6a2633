"""Layers in parallel worker processes, for the commands that treat layers independently
(`gcsim validate`'s reference comparison, `gcsim reference`).

`map_layers(fn, layers, jobs)` returns fn(l) for every layer, in layer order. With jobs > 1
the calls run in spawned worker processes (the standard library's ProcessPoolExecutor), each
pinned to one BLAS thread (the workers are the parallelism), so `fn` must be picklable: a
module-level function, or functools.partial of one, whose arguments are plain data, a
description and a trace *path* (workers reopen the file; memory-mapped, nothing copied).
"""
from __future__ import annotations

import ast
import inspect
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Numeric libraries read these when they load: one thread per worker, the workers are the
# parallelism (set before numpy is imported in the worker, see pin_threads).
THREAD_ENV = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                                     "NUMBA_NUM_THREADS", "GCSIM_THREADS")}


_numeric_loaded_before_pin = None


def pin_threads() -> None:
    """Worker initializer: one thread per numeric library. Workers are spawned (fresh
    interpreters), so numpy's BLAS has not started yet and reads these when it loads."""
    global _numeric_loaded_before_pin
    _numeric_loaded_before_pin = "numpy" in sys.modules
    os.environ.update(THREAD_ENV)


def thread_settings(_task=None) -> dict:
    """What a worker runs with (for tests): the thread variables and whether numpy was loaded
    before they were set (then they would not have applied)."""
    return {"env": {k: os.environ.get(k) for k in THREAD_ENV}, "numpy_before_pin": _numeric_loaded_before_pin}


# A worker costs about 1 s of CPU to start (a fresh interpreter importing numpy, numba, gcsim):
# go parallel only when the layers' reference work, ~ steps x min(steps, window) x heads x
# layers, is worth about 10 s on one core (benchmarks/bench_layers.py: 512 GPT-2 steps,
# 3.8e7 units, take 3.2 s of CPU for `gcsim reference`, and two workers lose).
MIN_WORK = 1.2e8


def add_jobs_option(p) -> None:
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="layers in parallel on N worker processes when the trace is long enough to gain from it "
                        "(default: every core)")


def check_jobs(jobs) -> None:
    if jobs is not None and jobs < 1:
        from .errors import UsageError
        raise UsageError(f"-j/--jobs must be >= 1, got {jobs}")


def default_jobs() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worth_it(jobs: int | None, steps: int, hw, trace) -> bool:
    """Whether to start workers: more than one job and layer, a trace file the workers can
    reopen, and enough work per layer to outweigh starting them (MIN_WORK)."""
    jobs = default_jobs() if jobs is None else jobs
    s = hw.shape
    work = steps * min(steps, s.window) * s.heads * s.layers
    path = getattr(trace, "path", None)
    return jobs > 1 and s.layers > 1 and work >= MIN_WORK and path is not None and os.path.isfile(path)


def map_layers(fn, layers, jobs: int | None = None):
    """Yield fn(item) for each item of `layers` (layer numbers, or per-layer tuples), in order;
    on `jobs` worker processes if jobs > 1."""
    layers = list(layers)
    jobs = min(default_jobs() if jobs is None else jobs, len(layers))
    if jobs <= 1:
        for l in layers:
            yield fn(l)
        return
    with worker_pool(jobs) as pool:
        yield from pool.map(fn, layers)


def check_main_guarded() -> None:
    """Refuse to start worker processes from a script's unguarded top level, before any starts.

    A spawned worker begins by running the main script again (multiprocessing's rule for
    fresh interpreters), except a package's `__main__` and code typed at the interpreter or
    in a notebook. A script that calls gcsim.sweep (or anything that starts workers) outside
    `if __name__ == "__main__":` would call it again in every worker, which then dies while
    starting; Python prints a traceback per worker. This says so in one line instead: the
    script's line being run is found on the call stack and looked up in its source."""
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    path = getattr(main, "__file__", None)
    if main is None or not path or (spec_name and spec_name.rsplit(".", 1)[-1] == "__main__"):
        return                                    # nothing the workers would run again
    frame = inspect.currentframe()
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and {"__name__", "__main__"} <= {
                getattr(n, "id", getattr(n, "value", None)) for n in ast.walk(node.test)}:
            if node.body[0].lineno <= line <= node.body[-1].end_lineno:
                return
    from .errors import UsageError
    raise UsageError(f"{path}, line {line}: gcsim starts worker processes, and each runs this script again "
                     f"from the top; put the code that calls gcsim under `if __name__ == \"__main__\":`")


def worker_pool(jobs: int, init: str | None = None, payload: bytes = b"") -> ProcessPoolExecutor:
    """`jobs` spawned workers, each pinned to one BLAS thread and then, if `init` names a
    function ('module:function'), running init(pickle.loads(payload)). Both are unpacked only
    after the pinning: importing gcsim loads numpy, which must find the thread settings."""
    check_main_guarded()
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(init, payload))


def _start_worker(init, payload):
    pin_threads()
    if init:
        import importlib
        import pickle
        module, name = init.split(":")
        getattr(importlib.import_module(module), name)(pickle.loads(payload))
