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


class CriticalPath:
    """Per step and sequence: where its latency went, by category (phase, wait cause, host, link)."""

    def __init__(self, n_seq: int, steps: int):
        self.categories: dict[str, int] = {}
        self.steps = steps
        self._rows = [[None] * steps for _ in range(n_seq)]
        self._arrays = None

    def record(self, seq: int, step: int, path: dict) -> None:
        """The finished path of step `step` of sequence `seq`."""
        for c in path:
            if c not in self.categories:
                self.categories[c] = len(self.categories)
        self._rows[seq][step] = path
        self._arrays = None

    @property
    def per_step(self) -> list[np.ndarray]:
        """Per sequence [T, categories] ps."""
        if self._arrays is None:
            cols = self.categories
            self._arrays = []
            for rows in self._rows:
                arr = np.zeros((self.steps, len(cols)), np.int64)
                for t, path in enumerate(rows):
                    if path:
                        for c, ps in path.items():
                            arr[t, cols[c]] = ps
                self._arrays.append(arr)
        return self._arrays

    def step_totals(self, seq: int) -> np.ndarray:
        return self.per_step[seq].sum(axis=1)

    def mean_breakdown(self, steps_done: int) -> dict[str, float]:
        """Average ps per step and category over all sequences and completed steps."""
        n = max(1, steps_done * len(self._rows))
        total = sum(arr[:steps_done].sum(axis=0) for arr in self.per_step)
        return {c: float(total[i]) / n for c, i in self.categories.items() if total[i]}


def add(path: dict, category: str, ps: int) -> None:
    if ps > 0:
        path[category] = path.get(category, 0) + ps
