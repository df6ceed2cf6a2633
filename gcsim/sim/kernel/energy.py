"""The one place that counts actions for energy (Accelergy style: energy = count x table).

Components book their own actions. Most are paid once per layer step with a count that
depends only on how many slots the read found valid and how many sub-tiles hold one: a
component *declares* those once (`declare(component, action, layer, const, per_valid,
per_active)`), and the tiles report each layer step's two numbers (`layer_step`), so a
layer step costs three integer additions whatever the number of actions. Anything else
(refresh, links) is booked as it happens (`book`). Counts per step are kept per layer in
Python ints for the current step and flushed to numpy rows when the step changes; the rows
are `streamio.records_array`s (on disk for long runs, read back in chunks), so the ledger does
not grow the process with the trace.
An action whose energy depends on the data (`costs.array_read: charge`) has 0 pJ in the
table and its energy booked in pJ as it happens (`book_pj`), beside its counts.
"""
from __future__ import annotations

import numpy as np

from ...streamio import in_chunks, records_array, release_pages, widened


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
        self.steps = steps
        self._step_counts = records_array((steps, len(self.actions)), np.int64)
        self._cur_step = 0
        self._cur = [0] * len(self.actions)
        self.static_pj: dict[str, float] = {}
        self._formulas: list[tuple] = []                       # (component, action, layer, c, a, b)
        self._ls = records_array((steps, 3, layers), np.int64)  # per step: layer steps, sum n_valid, sum n_active
        self._ls_step = 0
        self._ls_cur = [[0] * layers for _ in range(3)]
        self._ls_dirty = False
        self._direct: dict[tuple[str, str], np.ndarray] = {}  # pJ booked directly, per layer
        self._step_direct = records_array((steps, len(self.actions)), np.float64)

    def declare(self, component: str, action: str, layer: int, const: int = 0, per_valid: int = 0,
                per_active: int = 0) -> None:
        """`component` pays `action` const + per_valid x n_valid + per_active x n_active times
        per layer step of `layer`."""
        self._formulas.append((component, action, layer, const, per_valid, per_active))

    def layer_step(self, layer: int, step: int, n_valid: int, n_active: int) -> None:
        if step != self._ls_step:
            self._ls_flush()
            self._ls_step = step
        cur = self._ls_cur
        cur[0][layer] += 1
        cur[1][layer] += n_valid
        cur[2][layer] += n_active
        self._ls_dirty = True

    def _ls_flush(self) -> None:
        if self._ls_dirty:
            self._ls[self._ls_step] += self._ls_cur
            self._ls_cur = [[0] * self.layers for _ in range(3)]
            self._ls_dirty = False

    def _declared(self):
        """Per (component, action): counts per layer [L], and per step [T] (all layers)."""
        self._ls_flush()
        per_layer = {}
        tot = np.zeros((3, self.layers), np.int64)
        for _, chunk in in_chunks(self._ls):
            tot += chunk.sum(axis=0)
        for comp, action, l, c, a, b in self._formulas:
            key = (comp, action)
            if key not in per_layer:
                per_layer[key] = np.zeros(self.layers, np.int64)
            per_layer[key][l] += c * tot[0, l] + a * tot[1, l] + b * tot[2, l]
        return per_layer

    def _declared_steps(self, ls):
        """Per (component, action): counts per step of the rows `ls` [n, 3, L] (all layers)."""
        per_step = {}
        for comp, action, l, c, a, b in self._formulas:
            key = (comp, action)
            if key not in per_step:
                per_step[key] = np.zeros(len(ls), np.int64)
            per_step[key] += c * ls[:, 0, l] + a * ls[:, 1, l] + b * ls[:, 2, l]
        return per_step

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

    def book_pj(self, component: str, action: str, pj: float, layer: int, step: int) -> None:
        """`component` spent `pj` on `action` (data-dependent energy, beside its counts)."""
        per_layer = self._direct.get((component, action))
        if per_layer is None:
            per_layer = self._direct[(component, action)] = np.zeros(self.layers)
        per_layer[layer] += pj
        self._step_direct[step, self._col[action]] += pj

    def _energy(self, key, counts) -> np.ndarray:
        """Per layer energy (pJ) of (component, action) with `counts` per layer."""
        e = counts * self.table[key[1]]
        return e + self._direct[key] if key in self._direct else e

    def add_action(self, action: str) -> None:
        """A further action (e.g. an edge's own energy per bit), with its entry in `table`."""
        self._flush()
        self.actions.append(action)
        self._col[action] = len(self.actions) - 1
        self._pj.append(self.table[action])
        self._step_counts = widened(self._step_counts, len(self.actions))
        self._step_direct = widened(self._step_direct, len(self.actions))
        self._cur.append(0)

    def release(self) -> None:
        """Drop the per-step rows' resident pages (on disk for long runs: gcsim.streamio)."""
        for arr in (self._step_counts, self._step_direct, self._ls):
            release_pages(arr)

    def _flush(self) -> None:
        if any(self._cur):
            self._step_counts[self._cur_step] += self._cur
            self._cur = [0] * len(self.actions)

    @property
    def counts(self) -> dict[tuple[str, str], np.ndarray]:
        out = {k: np.array(v, np.int64) for k, v in self._counts.items()}
        for k, v in self._declared().items():
            out[k] = out[k] + v if k in out else v
        return out

    def step_action_chunks(self):
        """(t0, energy [n, actions] pJ of steps t0..t0+n-1), by step and action, all sequences
        and layers; chunk by chunk, so that a long run's rows are never all in memory."""
        self._flush()
        self._ls_flush()
        pj = np.array(self._pj)
        for (t0, counts), (_, ls), (_, direct) in zip(in_chunks(self._step_counts), in_chunks(self._ls),
                                                      in_chunks(self._step_direct)):
            for (_, action), per_step in self._declared_steps(ls).items():
                counts[:, self._col[action]] += per_step
            yield t0, counts * pj + direct

    @property
    def step_action_pj(self) -> np.ndarray:
        """Energy [T, actions] (pJ) by step and action, all sequences and layers."""
        return np.concatenate([pj for _, pj in self.step_action_chunks()]) if self.steps else \
            np.zeros((0, len(self.actions)))

    def step_pj(self) -> np.ndarray:
        """Dynamic energy of each step [T] (summed over sequences and layers)."""
        out = np.zeros(self.steps)
        for t0, pj in self.step_action_chunks():
            out[t0:t0 + len(pj)] = pj.sum(axis=1)
        return out

    def columns(self, actions: list[str]) -> list[int]:
        """The columns of `actions` in step_action_chunks' rows."""
        return [self._col[a] for a in actions]

    def step_item_pj(self, items: dict[str, list]) -> dict[str, np.ndarray]:
        """Per step [T], the energy of each named group of actions (the paper's items)."""
        cols = {name: self.columns(acts) for name, acts in items.items()}
        out = {name: np.zeros(self.steps) for name in items}
        for t0, pj in self.step_action_chunks():
            for name, c in cols.items():
                out[name][t0:t0 + len(pj)] = pj[:, c].sum(axis=1)
        return out

    def add_static(self, block: str, power_mw: float, elapsed_ps: int) -> None:
        self.static_pj[block] = power_mw * elapsed_ps * 1e-3  # mW x ps = 1e-3 pJ

    def by_action(self) -> dict[str, dict]:
        out = {}
        for (comp, action), arr in sorted(self.counts.items()):
            e = self._energy((comp, action), arr)
            count = int(arr.sum())
            each = float(e.sum()) / count if (comp, action) in self._direct and count else self.table[action]
            out[f"{comp}.{action}"] = {"component": comp, "action": action, "count": count,
                                       "pj_each": each, "energy_pj": float(e.sum()), "per_layer_pj": e.tolist()}
        return out

    def total_pj(self) -> float:
        dynamic = sum(float(self._energy(k, arr).sum()) for k, arr in self.counts.items())
        return dynamic + sum(self.static_pj.values())

    def per_layer_pj(self) -> np.ndarray:
        out = np.zeros(self.layers)
        for k, arr in self.counts.items():
            out += self._energy(k, arr)
        return out

    def action_pj(self, action: str) -> float:
        return sum(float(self._energy(k, arr).sum()) for k, arr in self.counts.items() if k[1] == action)
