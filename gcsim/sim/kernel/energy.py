"""The one place that counts actions for energy (Accelergy style: energy = count x table).

Components book their own actions (`book(component, action, count, layer, step)`); the
reports read the ledger. Bookings are Python-int additions: per (component, action) a
count per layer, and per step a count per action, flushed to a numpy row when the step
changes (several sequences interleave steps; a flush then only costs a row addition).
"""
from __future__ import annotations

import numpy as np


class EnergyLedger:
    """Action counts per (component, action), per layer and per step; energy = count x table."""

    def __init__(self, actions_pj: dict[str, float], link_pj_per_bit: float, layers: int, steps: int):
        self.table = dict(actions_pj)
        self.table["link"] = link_pj_per_bit
        self.actions = list(self.table)
        self.layers = layers
        self._counts: dict[tuple[str, str], list] = {}
        self._col = {a: i for i, a in enumerate(self.actions)}
        self._pj = [self.table[a] for a in self.actions]
        self._step_counts = np.zeros((steps, len(self.actions)), np.int64)
        self._cur_step = 0
        self._cur = [0] * len(self.actions)
        self.static_pj: dict[str, float] = {}

    def book(self, component: str, action: str, count: int, layer: int, step: int) -> None:
        key = (component, action)
        per_layer = self._counts.get(key)
        if per_layer is None:
            per_layer = self._counts[key] = [0] * self.layers
        per_layer[layer] += count
        if step != self._cur_step:
            self._flush()
            self._cur_step = step
        self._cur[self._col[action]] += count

    def add_action(self, action: str) -> None:
        """A further action (e.g. an edge's own energy per bit), with its entry in `table`."""
        self._flush()
        self.actions.append(action)
        self._col[action] = len(self.actions) - 1
        self._pj.append(self.table[action])
        self._step_counts = np.concatenate([self._step_counts, np.zeros((len(self._step_counts), 1), np.int64)], axis=1)
        self._cur.append(0)

    def _flush(self) -> None:
        if any(self._cur):
            self._step_counts[self._cur_step] += self._cur
            self._cur = [0] * len(self.actions)

    @property
    def counts(self) -> dict[tuple[str, str], np.ndarray]:
        return {k: np.array(v, np.int64) for k, v in self._counts.items()}

    @property
    def step_action_pj(self) -> np.ndarray:
        """Energy [T, actions] (pJ) by step and action, all sequences and layers."""
        self._flush()
        return self._step_counts * np.array(self._pj)

    def step_pj(self) -> np.ndarray:
        """Dynamic energy of each step [T] (summed over sequences and layers)."""
        return self.step_action_pj.sum(axis=1)

    def step_item_pj(self, items: dict[str, list]) -> dict[str, np.ndarray]:
        """Per step [T], the energy of each named group of actions (the paper's items)."""
        pj = self.step_action_pj
        return {name: pj[:, [self._col[a] for a in acts]].sum(axis=1) for name, acts in items.items()}

    def add_static(self, block: str, power_mw: float, elapsed_ps: int) -> None:
        self.static_pj[block] = power_mw * elapsed_ps * 1e-3  # mW x ps = 1e-3 pJ

    def by_action(self) -> dict[str, dict]:
        out = {}
        for (comp, action), arr in sorted(self.counts.items()):
            out[f"{comp}.{action}"] = {"component": comp, "action": action, "count": int(arr.sum()),
                                       "pj_each": self.table[action], "energy_pj": float(arr.sum() * self.table[action]),
                                       "per_layer_pj": (arr * self.table[action]).tolist()}
        return out

    def total_pj(self) -> float:
        dynamic = sum(float(arr.sum()) * self.table[a] for (_, a), arr in self.counts.items())
        return dynamic + sum(self.static_pj.values())

    def per_layer_pj(self) -> np.ndarray:
        out = np.zeros(self.layers)
        for (_, a), arr in self.counts.items():
            out += arr * self.table[a]
        return out

    def action_pj(self, action: str) -> float:
        return sum(float(arr.sum()) * self.table[a] for (_, a), arr in self.counts.items() if a == action)
