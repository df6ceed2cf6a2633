"""What every component of one simulation shares: the SimPy environment, the hardware
description, the accounting (activity, energy, per-step critical path) and switches."""
from __future__ import annotations

import numpy as np
import simpy

from ..hardware import Hardware
from .accounting import Activity, EnergyLedger, Timeline


class CriticalPath:
    """Per step: where its latency went, by category (phase, wait cause, host, link).

    The simulator moves one step of one sequence through one process, so every delay on
    that process is on the step's critical path; the categories add up to its latency.
    """

    def __init__(self, n_seq: int, steps: int):
        self.categories: dict[str, int] = {}
        self.per_step = [np.zeros((steps, 0), np.int64) for _ in range(n_seq)]
        self.steps = steps

    def add(self, seq: int, step: int, category: str, dt_ps: int) -> None:
        if dt_ps <= 0:
            return
        col = self.categories.get(category)
        if col is None:
            col = self.categories[category] = len(self.categories)
            for i, arr in enumerate(self.per_step):
                self.per_step[i] = np.concatenate([arr, np.zeros((self.steps, 1), np.int64)], axis=1)
        self.per_step[seq][step, col] += dt_ps

    def step_totals(self, seq: int) -> np.ndarray:
        return self.per_step[seq].sum(axis=1)

    def mean_breakdown(self, steps_done: int) -> dict[str, float]:
        """Average ps per step and category over all sequences and completed steps."""
        n = max(1, steps_done * len(self.per_step))
        total = sum(arr[:steps_done].sum(axis=0) for arr in self.per_step)
        return {c: float(total[i]) / n for c, i in self.categories.items()}


class SimContext:
    def __init__(self, hw: Hardware, steps: int, *, values: bool, timeline: Timeline | None = None):
        self.env = simpy.Environment()
        self.hw = hw
        self.values = values
        self.dtype = np.dtype(hw.numerics.dtype)
        self.activity = Activity(timeline)
        self.energy = EnergyLedger(hw.energy.actions_pj, hw.energy.link_pj_per_bit, hw.shape.layers, steps)
        self.path = CriticalPath(hw.periphery.sequences, steps)

    def delay(self, seq: int, step: int, category: str, dt_ps: int):
        """A timeout on the step's critical path, booked under `category`."""
        self.path.add(seq, step, category, dt_ps)
        return self.env.timeout(dt_ps)

    def acquire(self, resource: simpy.Resource, seq: int, step: int, cause: str, stall_on: list):
        """Request `resource`; the wait is booked as a stall with `cause` on each
        (component, units) in stall_on and on the critical path. Returns the request."""
        t0 = self.env.now
        req = resource.request()
        yield req
        waited = self.env.now - t0
        if waited:
            self.path.add(seq, step, f"stall:{cause}", waited)
            for name, units, layer in stall_on:
                self.activity.stall(name, t0, self.env.now, cause, units=units, step=step, layer=layer)
        return req
