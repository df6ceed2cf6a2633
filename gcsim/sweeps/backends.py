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

import contextlib
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..parallel import THREAD_ENV, pin_threads
from .point import run_point

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


# A Ray cluster (its GCS, or the Ray Client server) speaks gRPC: HTTP/2 without TLS. An HTTP/2
# server answers the client preface with a SETTINGS frame (type 4); anything else is not Ray.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
PROBE_TIMEOUT_S = 5


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address where no Ray cluster listens: nothing there, or a server
    that does not speak gRPC (Ray itself retries for minutes, or forever)."""
    import socket

    from ..errors import UsageError
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return                                      # e.g. "auto": Ray finds the cluster itself
    hint = "start the cluster with `ray start --head` or check the address"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S) as sock:
            sock.sendall(_HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                block = sock.recv(9 - len(head))
                if not block:
                    break
                head += block
    except socket.timeout:
        raise UsageError(f"--ray {address}: no answer within {PROBE_TIMEOUT_S} s; {hint}") from None
    except (OSError, OverflowError) as exc:
        raise UsageError(f"--ray {address}: nothing answers there ({getattr(exc, 'strerror', None) or exc}); "
                         f"{hint}") from None
    if len(head) < 9 or head[3] != 0x04:
        raise UsageError(f"--ray {address}: something answers there, but not a Ray cluster (it does not speak "
                         f"gRPC); {hint}")


@contextlib.contextmanager
def _quiet_stderr():
    """Ray's C++ core writes its connection retries straight to descriptor 2 (a line a second
    for ~20 s when something other than Ray answers): into a scratch file while connecting."""
    import os
    import sys
    import tempfile
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as scratch:
            os.dup2(scratch.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def ray_init(address: str | None, jobs: int | None):
    """Connect to Ray (a local cluster of `jobs` CPUs when address is None); returns whether
    we started it (and so must shut it down)."""
    if address is not None:
        _check_reachable(address)       # before importing Ray (seconds): nobody there fails at once
    try:
        import ray
    except ImportError:
        from ..errors import UsageError
        raise UsageError("--ray needs Ray: pip install 'gcsim[ray]' (or pip install ray)") from None
    if ray.is_initialized():
        return False
    import logging
    import os
    from pathlib import Path
    logging.getLogger("ray").setLevel(logging.ERROR)   # one line of ours on a failure, not Ray's warnings
    package = Path(__file__).resolve().parent.parent
    env = dict(THREAD_ENV)
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address is None:   # workers import this very copy of gcsim, not another installed one
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package.parent), os.environ.get("PYTHONPATH")]))
        ray.init(num_cpus=jobs, runtime_env={"env_vars": env}, **kwargs)
    else:                 # a remote cluster may not have gcsim: ship the package
        try:
            with _quiet_stderr():
                ray.init(address=address, runtime_env={"env_vars": env, "py_modules": [str(package)]}, **kwargs)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            from ..errors import UsageError
            raise UsageError(f"--ray {address}: cannot join the Ray cluster ({' '.join(str(exc).split())[:200]})") from None
    return True


def run_ray(tasks, address: str | None, jobs: int | None, max_retries: int = MAX_RETRIES):
    """Connect to Ray now (a bad address fails before any work or progress bar), and return
    a stream that runs tasks as Ray tasks (one CPU each), yielding records as they finish."""
    return _ray_stream(tasks, ray_init(address, jobs), max_retries)


def _ray_stream(tasks, started: bool, max_retries: int):
    import ray
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
