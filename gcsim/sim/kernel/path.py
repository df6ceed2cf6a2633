"""The critical path of each step, derived from the recorded wait chain.

Every piece of work that moves a step forward (a phase, a transfer, host compute) adds its
duration to the *path* of the work item it belongs to, a dict {category: ps}. When the
item waits for a resource, the wait is explained by who held it (`Resource.claim`):
- held by another step (another sequence, a refresh, another layer on a shared bank): the
  wait is on this step's path as `stall:<cause>`;
- held by the same layer step (the query-head rounds of grouped-query attention): the
  item continues the holder's path, whose work is what it waited for.
When rounds join (the adder tree waits for every round's counts) the path of the last
round to finish is taken. At the end of a step the path's categories add up to the step's
latency (checked by the engine for every sequence).
"""
from __future__ import annotations

import numpy as np

from ...streamio import in_chunks, records_array, release_pages, widened


class CriticalPath:
    """Per step and sequence: where its latency went, by category (phase, wait cause, host, link).

    Each finished path goes to a row of a [T, categories] records_array per sequence (on disk
    for long runs, gcsim.streamio): a dict per step kept for the whole run would grow the
    process with the trace."""

    def __init__(self, n_seq: int, steps: int):
        self.categories: dict[str, int] = {}
        self.steps = steps
        self._cap = 16     # columns allocated; doubled when more categories appear
        self._arrays = [records_array((steps, self._cap)) for _ in range(n_seq)]

    def record(self, seq: int, step: int, path: dict) -> None:
        """The finished path of step `step` of sequence `seq`."""
        cols, arr = self.categories, self._arrays[seq]
        for c, ps in path.items():
            i = cols.get(c)
            if i is None:
                i = cols[c] = len(cols)
                if i >= self._cap:
                    self._grow(i + 1)
                    arr = self._arrays[seq]
            arr[step, i] = ps

    def _grow(self, n: int) -> None:
        cap = self._cap
        while cap < n:
            cap *= 2
        self._arrays, self._cap = [widened(arr, cap) for arr in self._arrays], cap

    def trim(self, rows: list[int]) -> None:
        """Keep the first rows[seq] steps of each sequence (serving: the decode steps it served)."""
        self._arrays = [a[:n] for a, n in zip(self._arrays, rows)]

    def release(self) -> None:
        """Drop the arrays' resident pages (on disk for long runs: gcsim.streamio)."""
        for arr in self._arrays:
            release_pages(arr)

    @property
    def per_step(self) -> list[np.ndarray]:
        """Per sequence [T, categories] ps (disk-backed on long runs: read them `in_chunks`)."""
        return [arr[:, :len(self.categories)] for arr in self._arrays]

    def step_totals(self, seq: int) -> np.ndarray:
        arr = self.per_step[seq]
        return np.concatenate([chunk.sum(axis=1) for _, chunk in in_chunks(arr)]) if len(arr) else \
            np.zeros(0, np.int64)

    def adds_up(self, seq: int, step_end) -> bool:
        """Every step's path of sequence `seq` adds up to its latency (the differences of
        `step_end` [T], the step ends), checked chunk by chunk."""
        prev = 0
        for (_, rows), (_, end) in zip(in_chunks(self.per_step[seq]), in_chunks(step_end)):
            if not np.array_equal(rows.sum(axis=1), np.diff(end, prepend=prev)):
                return False
            prev = int(end[-1])
        return True

    def mean_breakdown(self, steps_done: int) -> dict[str, float]:
        """Average ps per step and category over all sequences and completed steps."""
        n = max(1, steps_done * len(self._arrays))
        total = np.zeros(len(self.categories), np.int64)
        for arr in self.per_step:
            for _, chunk in in_chunks(arr[:steps_done]):
                total += chunk.sum(axis=0)
        return {c: float(total[i]) / n for c, i in self.categories.items() if total[i]}


def add(path: dict, category: str, ps: int) -> None:
    if ps > 0:
        path[category] = path.get(category, 0) + ps
