"""Run a sweep: plan the points, take what the cache holds, run the rest on a backend and
store each result in the cache the moment it arrives (so an interrupted sweep loses no
finished point), then assemble the table in point order."""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..hardware import to_dict
from .cache import ResultCache, point_key, source_hash, trace_checksum
from .evalpoint import ModelMismatch
from .spec import SweepSpec, load_spec


@dataclass
class SweepResult:
    spec: SweepSpec
    rows: list[dict]                 # one per point, in point order
    columns: list[str]
    counts: dict                     # points, ok, failed, skipped, cached, computed
    provenance: dict = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.counts["failed"]


def _synthetic_path(cache: ResultCache, settings: dict, hw) -> Path:
    """A synthetic trace shaped like `hw`, generated once into the cache."""
    import hashlib

    from ..traces.synthetic import write_synthetic
    s = hw.shape
    shape = {"layers": s.layers, "heads": s.heads, "kv_heads": s.kv_heads, "d_head": s.d_head}
    tag = hashlib.sha256(json.dumps([settings, shape, source_hash()], sort_keys=True).encode()).hexdigest()[:20]
    path = cache.trace_dir() / f"synthetic-{tag}.gctrace"
    if not path.is_file():
        write_synthetic(path, steps=settings["steps"], seed=settings["seed"], dtype=settings["dtype"],
                        name=f"synthetic-{hw.name}", **shape)
    return path


class _Traces:
    """Opens each trace file once (verifying its checksums) and remembers its checksum."""

    def __init__(self, spec: SweepSpec, cache: ResultCache):
        self.spec, self.cache, self.open = spec, cache, {}

    def for_point(self, point):
        from ..sim import check_fit
        from ..traces import TraceError, open_trace
        src = self.spec.traces[point.trace]
        path = Path(src.path) if src.path is not None else _synthetic_path(self.cache, src.synthetic, point.hardware)
        if path not in self.open:
            try:
                tr = open_trace(path)
            except TraceError:
                if src.synthetic is None:
                    raise
                path.unlink(missing_ok=True)     # a cached synthetic trace that is corrupt: made again
                path = _synthetic_path(self.cache, src.synthetic, point.hardware)
                tr = open_trace(path)
            self.open[path] = (tr, trace_checksum(tr))
        tr, sha = self.open[path]
        check_fit(point.hardware, tr)
        return str(path), sha


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "gcsim"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


_GROUPS = ("", "energy_item", "path", "stall")   # metric column groups, in table order


def _cell(value):
    """Swept values as table cells: scalars as they are, mappings and lists as JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value, sort_keys=True)


def run_sweep(spec, *, jobs: int | None = None, ray: str | bool | None = None, cache=None,
              progress: bool = False, retry_failed: bool = False, command: str | None = None) -> SweepResult:
    """Run every point of `spec` (a path, a dict or a SweepSpec).

    jobs: worker processes (default: the CPUs this process may use). ray: False/None for
    local workers, True (or "local") for a local Ray cluster, or a Ray address. cache: the
    cache folder (default: the user's cache directory). retry_failed: compute again the
    points whose cached result is a failure. command: the command line, for the provenance.
    """
    from ..errors import UsageError
    if jobs is not None and (type(jobs) is not int or jobs < 1):
        raise UsageError(f"-j/--jobs must be an integer >= 1, got {jobs!r:.60}")
    if cache is not None and not isinstance(cache, (str, os.PathLike, ResultCache)):
        raise UsageError(f"cache: expected a folder path, found {type(cache).__name__}")
    if ray is not None and not isinstance(ray, (bool, str)):
        raise UsageError(f"ray: expected True, False or a Ray address, found {type(ray).__name__}")
    spec = load_spec(spec)
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    store = cache if isinstance(cache, ResultCache) else ResultCache(cache)
    started = datetime.datetime.now(datetime.timezone.utc)
    from ..progress import bar as progress_bar
    n_combos = math.prod(len(next(iter(block.values()))) if block else 0 for block in spec.axes)
    with progress_bar(n_combos * (1 + len(spec.traces)), "planning", enabled=progress, unit="point") as planning:
        points = spec.points(planned_one=planning.update)
        keys, records, tasks = _look_up(spec, points, store, retry_failed, planning.update)
    failed = sum(r["status"] != "ok" for r in records.values())
    if ray in (None, False):
        from .backends import run_local
        stream, backend = run_local(tasks, jobs), {"backend": "local", "jobs": jobs}
    else:
        from .backends import run_ray
        address = None if ray in (True, "local") else ray
        stream, backend = run_ray(tasks, address, jobs if address is None else None), \
            {"backend": "ray", "address": address or "local", "jobs": jobs if address is None else None}
    n_cached = len(records)
    bar = None
    try:
        if progress:
            import sys

            from tqdm import tqdm

            from ..progress import DELAY_S   # the look of every gcsim bar; cached points count as done
            bar = tqdm(total=n_cached + len(tasks), initial=n_cached, desc="sweep", unit="point", leave=False,
                       delay=DELAY_S, file=sys.stderr, dynamic_ncols=True)
            bar.set_postfix_str(f"cached {n_cached}, failed 0")
        for index, rec in stream:
            rec = json.loads(json.dumps(rec))           # what the cache holds, exactly
            if rec.get("gcsim_source", source_hash()) != source_hash():
                rec = {"status": "failed", "metrics": {}, "lost_worker": True,
                       "error": "WorkerMismatch: the worker ran another version of gcsim's source than this one"}
            if not rec.pop("lost_worker", False):       # a lost worker is not the point's result
                store.put(keys[index], rec)
            records[index] = rec
            failed += rec["status"] != "ok"
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"cached {n_cached}, failed {failed}")
    finally:
        stream.close()
        if bar is not None:
            bar.close()
    return _assemble(spec, points, records, keys, n_cached, backend, started, command)


def _look_up(spec, points, store: ResultCache, retry_failed: bool, looked_up):
    """(cache keys, cached records, tasks to run) of the points; looked_up() after each."""
    traces = spec.eval if spec.mode == "eval" else _Traces(spec, store)
    from ..sim import SimError
    records: dict = {}
    tasks = []
    keys: dict = {}
    for p in points:
        looked_up()
        if p.skip_reason is not None:
            continue
        try:
            path, sha = traces.for_point(p)
        except SimError as exc:                      # e.g. a swept shape the trace lacks
            p.skip_reason = f"trace does not fit: {exc}"
            continue
        except ModelMismatch as exc:                 # eval: a shape the language model lacks
            p.skip_reason = f"model does not fit: {exc}"
            continue
        desc = to_dict(p.hardware)
        desc.pop("source", None)
        key = keys[p.index] = point_key(desc, sha, spec.mode, spec.steps, spec.seed)
        hit = store.get(key)
        if hit is not None and not (retry_failed and hit["status"] != "ok"):
            records[p.index] = hit
            continue
        task = {"description": desc, "trace": path, "mode": spec.mode, "steps": spec.steps,
                "seed": spec.seed, "label": f"{spec.source} point {p.index}"}
        if spec.mode == "eval":
            task["eval"] = spec.eval.task()
        tasks.append((p.index, task))
    return keys, records, tasks


def _assemble(spec, points, records, keys, n_cached, backend, started, command) -> SweepResult:
    fields = spec.fields
    rows = []
    for p in points:
        row = {"point": p.index, "trace": spec.traces[p.trace].label, "mode": spec.mode}
        row.update({f: _cell(p.values.get(f)) for f in fields})
        rec = records.get(p.index)
        if p.skip_reason is not None:
            row.update(status="skipped", error=p.skip_reason)
        else:
            row.update(status=rec["status"], error=rec.get("error"))
            row.update(rec.get("metrics", {}))
        row["key"] = keys.get(p.index)
        rows.append(row)
    columns: list = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    head = ["point", "trace", "mode", *fields, "status", "error"]
    metrics = sorted((c for c in columns if c not in head and c != "key"), key=lambda c: _GROUPS.index(
        c.split(".", 1)[0] if "." in c and c.split(".", 1)[0] in _GROUPS else ""))  # stable within a group
    columns = head + metrics + ["key"]
    for row in rows:                    # a cause absent from a point's run cost it nothing
        if row["status"] == "ok":
            for c in metrics:
                if c.startswith(("path.", "stall.")):
                    row.setdefault(c, 0.0)
    counts = {"points": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
              "failed": sum(r["status"] == "failed" for r in rows),
              "skipped": sum(r["status"] == "skipped" for r in rows),
              "cached": n_cached, "computed": len(records) - n_cached}
    from ..provenance import provenance
    prov = provenance(hw=spec.hardware, seed=spec.seed, command=command, git_commit=_git_commit(),
                      host=platform.node(), **backend, started_utc=started.isoformat(timespec="seconds"),
                      finished_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return SweepResult(spec, rows, columns, counts, prov)
