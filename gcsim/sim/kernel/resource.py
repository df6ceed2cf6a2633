"""A resource: hardware that serves one work item at a time (a K/V bank read by several
query heads, a set of output counters, a periphery bank shared by layers, a host engine,
a link). Components claim it when the work reaches it, for a known time; it serves claims
in the order they are made (time order; ties in event order).

`claim` returns when the work starts and records who held the resource before, so that
the wait is explained: the stall's cause for the statistics and the critical path
(`kernel/path.py`). No SimPy event is created: a claim is a few integer operations, and
the claimant schedules its own completion. A resource never serves two claims at once
(`served` keeps the intervals when `check` is on, for the validation invariants).
"""
from __future__ import annotations

from .path import add


class Resource:
    __slots__ = ("name", "cause", "free_at", "holder", "holder_path", "served", "last_wait")

    def __init__(self, name: str, cause: str, check: bool = False):
        self.name, self.cause = name, cause
        self.free_at = 0            # ps: end of the last claim
        self.holder = None          # the work item (job) of the last claim, or a label
        self.holder_path = None     # its critical path when it let go
        self.served = [] if check else None
        self.last_wait = 0

    def claim(self, ready: int, hold: int, job, path: dict, cause: str | None = None):
        """Serve `job` (ready at `ready` ps) for `hold` ps. Returns (start, path): the path
        to follow from the start (the job's own, with a stall added when it waited for
        someone else; the holder's, when it waited for an earlier round of the same job)."""
        start = ready if ready >= self.free_at else self.free_at
        wait = start - ready
        if wait:
            if self.holder is job and self.holder_path is not None:
                path = dict(self.holder_path)
            else:
                add(path, "stall:" + (cause or self.cause), wait)
        self.last_wait = wait
        self.free_at = start + hold
        self.holder = job
        if self.served is not None:
            self.served.append((start, start + hold))
        return start, path

    def release(self, path: dict | None) -> None:
        """The claimant's path when the hold ends (for a same-job successor to continue)."""
        self.holder_path = None if path is None else dict(path)
