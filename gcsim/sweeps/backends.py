"""Where points run: local worker processes (concurrent.futures) or a Ray cluster.

Both take a list of (point index, task) and yield (point index, record) as points finish, in
completion order; the runner stores each record at once. Neither schedules anything itself:
the standard library's process pool or Ray does.

Lost workers. Local: a killed worker breaks the whole pool (BrokenProcessPool) and fails
every point in flight; at most `jobs` points are in flight, so those are retried in a new
pool, up to `max_retries` times each, then recorded as failed (not cached, so a rerun tries
again). Workers that die before any of them has started (an import that fails in a fresh
interpreter, say) are no point's fault: the sweep stops at once with that said, instead of
failing every point as a lost worker. Ray: tasks are submitted with max_retries, so Ray reruns a task whose worker or node
was lost; if it still fails the point is recorded as failed. A point that raises is a result,
never retried.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .point import THREAD_ENV, pin_threads, run_point

MAX_RETRIES = 2


def _died(attempts: int, what: str) -> dict:
    return {"status": "failed", "error": f"WorkerDied: {what} ({attempts} attempts)", "metrics": {},
            "lost_worker": True}


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the workers now (on Ctrl-C or an error)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()


def _start_worker(started) -> None:
    """Worker initializer: pin the numeric libraries' threads, then count the worker as started."""
    pin_threads()
    with started.get_lock():
        started.value += 1


def run_local(tasks, jobs: int, max_retries: int = MAX_RETRIES, fn=run_point):
    """Run tasks on `jobs` worker processes (spawned: fresh interpreters whose numeric
    libraries load after pin_threads)."""
    from ..parallel import check_main_guarded
    todo = list(tasks)
    todo.reverse()                               # pop() from the end keeps point order
    attempts: dict = {}
    ctx = multiprocessing.get_context("spawn")
    if todo:
        check_main_guarded()                     # a script's unguarded top level: one line, no worker
    started = ctx.Value("i", 0)                  # workers that got through their start-up
    while todo:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_start_worker, initargs=(started,))
        running: dict = {}
        lost: list = []
        try:
            while (todo or running) and not lost:
                while todo and len(running) < jobs:      # only `jobs` in flight: a broken pool
                    index, task = todo.pop()             # fails only the points it was running
                    running[pool.submit(fn, task)] = (index, task)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    index, task = running.pop(fut)
                    try:
                        rec = fut.result()
                    except BrokenProcessPool:
                        lost.append((index, task))
                        continue
                    except Exception as exc:  # e.g. a result that cannot be sent back
                        rec = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "metrics": {}}
                    yield index, rec
            lost += running.values()             # in flight in a dead pool: lost with it
            if lost and started.value == 0:
                from ..errors import GcsimError
                raise GcsimError("the sweep's worker processes died while starting, before running any point "
                                 "(their error is printed above); nothing was computed")
            for index, task in lost:
                attempts[index] = attempts.get(index, 0) + 1
                if attempts[index] <= max_retries:
                    todo.append((index, task))
                else:
                    yield index, _died(attempts[index], "the worker process running this point died "
                                                        "(killed, or out of memory)")
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown(wait=not lost, cancel_futures=True)


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address nobody listens at (Ray itself retries for minutes)."""
    import socket
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return                                      # e.g. "auto": Ray finds the cluster itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        from ..errors import UsageError
        raise UsageError(f"--ray {address}: nothing answers there ({exc.strerror or exc}); start the cluster "
                         f"with `ray start --head` or check the address") from None


def ray_init(address: str | None, jobs: int | None):
    """Connect to Ray (a local cluster of `jobs` CPUs when address is None); returns whether
    we started it (and so must shut it down)."""
    try:
        import ray
    except ImportError:
        from ..errors import UsageError
        raise UsageError("--ray needs Ray: pip install 'gcsim[ray]' (or pip install ray)") from None
    if ray.is_initialized():
        return False
    import os
    from pathlib import Path
    package = Path(__file__).resolve().parent.parent
    env = dict(THREAD_ENV)
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address is None:   # workers import this very copy of gcsim, not another installed one
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package.parent), os.environ.get("PYTHONPATH")]))
        ray.init(num_cpus=jobs, runtime_env={"env_vars": env}, **kwargs)
    else:                 # a remote cluster may not have gcsim: ship the package
        _check_reachable(address)
        try:
            ray.init(address=address, runtime_env={"env_vars": env, "py_modules": [str(package)]}, **kwargs)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            from ..errors import UsageError
            raise UsageError(f"--ray {address}: cannot join the Ray cluster ({' '.join(str(exc).split())[:200]})") from None
    return True


def run_ray(tasks, address: str | None, jobs: int | None, max_retries: int = MAX_RETRIES):
    """Run tasks as Ray tasks (one CPU each), yielding records as they finish."""
    import ray
    started = ray_init(address, jobs)
    try:
        remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(run_point)
        refs = {remote.remote(task): index for index, task in tasks}
        try:
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                index = refs.pop(done[0])
                try:
                    rec = ray.get(done[0])
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                        ray.exceptions.OwnerDiedError, ray.exceptions.ObjectLostError) as exc:
                    rec = _died(max_retries + 1, f"Ray lost the worker running this point: {type(exc).__name__}")
                except ray.exceptions.RayError as exc:
                    rec = _died(1, f"Ray could not run this point: {' '.join(str(exc).split())[:300]}")
                yield index, rec
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()
