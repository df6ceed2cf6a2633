"""A resource: hardware that serves one work item at a time (a K/V bank read by several
query heads, a set of output counters, a periphery bank shared by layers, a host engine,
a link). Components claim it when the work reaches it, for a known time; it serves claims
in the order they are made (time order; ties in event order).

`claim` returns when the work starts and records who held the resource before, so that
the wait is explained: the stall's cause for the statistics and the critical path
(`kernel/path.py`). No SimPy event is created: a claim is a few integer operations, and
the claimant schedules its own completion. A holder that does not know yet how long it
will hold (the tiles granting their K arrays to a round whose Q phase the integrators
decide, the counters a round whose heads count in turns) claims it for no known time
(`hold=None`), which keeps every later claim out until `release_at` says when the hold
ended. A resource never serves two claims at once
(with `check` on, `served` checks each served interval against the ones before, for the
validation invariants: a `ServedLog`, whose memory does not grow with the run).
"""
from __future__ import annotations

from .path import add

HELD = 1 << 62   # free_at of a resource held for no known time yet: no claim gets in


class Resource:
    __slots__ = ("name", "cause", "free_at", "holder", "holder_path", "served", "held_from",
                 "track_paths")

    def __init__(self, name: str, cause: str, check: bool = False):
        self.name, self.cause = name, cause
        self.free_at = 0            # ps: end of the last claim
        self.holder = None          # the work item (job) of the last claim, or a label
        self.holder_path = None     # its critical path when it let go
        self.served = ServedLog() if check else None
        self.held_from = 0
        self.track_paths = True     # False: no claim ever continues a holder's path (release keeps none)

    def claim(self, ready: int, hold: int | None, job, path: dict, cause: str | None = None):
        """Serve `job` (ready at `ready` ps) for `hold` ps (None: until `release_at`). Returns
        (start, path): the path to follow from the start (the job's own, with a stall added
        when it waited for someone else; the holder's, when it waited for an earlier round of
        the same job)."""
        start = ready if ready >= self.free_at else self.free_at
        wait = start - ready
        if wait:
            if self.holder is job and self.holder_path is not None:
                path = dict(self.holder_path)
            else:
                add(path, "stall:" + (cause or self.cause), wait)
        self.holder = job
        if hold is None:       # held until release_at
            self.free_at = HELD
            self.held_from = start
        else:
            self.free_at = start + hold
            if self.served is not None:
                self.served.append((start, start + hold))
        return start, path

    def release(self, path: dict | None) -> None:
        """The claimant's path when the hold ends (for a same-job successor to continue)."""
        if self.track_paths:
            self.holder_path = None if path is None else dict(path)

    def release_at(self, end: int) -> None:
        """The hold of a `claim` for no known time ended at `end` ps."""
        if self.served is not None:
            self.served.append((self.held_from, end))
        self.free_at = end


class ServedLog:
    """The intervals a resource served, checked as they come instead of kept: how many, and
    the first two served at once. A resource serves its claims in time order (a claim starts
    at or after the previous one's end), so each interval sorts after all the earlier ones
    and overlaps an earlier one only if it overlaps the latest: checking it against that one
    finds, in arrival order, the first overlap of the sorted intervals. An interval that
    would sort before an earlier one breaks that order and is reported itself."""
    __slots__ = ("n", "last", "violation")

    def __init__(self):
        self.n = 0
        self.last = None          # the interval that sorts last so far
        self.violation = None     # (earlier, later, what) of the first broken invariant

    def append(self, interval: tuple) -> None:
        last = self.last
        self.n += 1
        if last is None:
            self.last = interval
        elif interval >= last:
            if self.violation is None and interval[0] < last[1]:
                self.violation = (last, interval, "at once")
            self.last = interval
        elif self.violation is None:
            self.violation = (last, interval, "out of time order")

    def __len__(self) -> int:
        return self.n


def first_violation(served) -> tuple | None:
    """(a, b, what) of the first two intervals served at once (in sorted order), or served out
    of time order; None if there are none. `served`: a ServedLog or a sequence of intervals."""
    if isinstance(served, ServedLog):
        return served.violation
    iv = sorted(served)
    for a, b in zip(iv, iv[1:]):
        if b[0] < a[1]:
            return a, b, "at once"
    return None
