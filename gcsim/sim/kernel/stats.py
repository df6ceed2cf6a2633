"""Statistics of components: busy / stalled(cause) / idle time per unit, self-checking.

Every component books intervals of simulated time (integer ps) for each of its units:
busy (doing its action) or stalled (holding work it cannot advance, with a named cause).
Idle is what remains of the elapsed time. Intervals of one unit may never overlap, so
busy + stalled <= elapsed holds by construction; `check()` verifies every invariant and a
violation raises `AccountingError` (a bug in a component, never a user mistake).

Counters live in numpy arrays per component (one slot per unit of a bank), so the
summary-level profile costs a few array additions per booking, not Python objects per
event. The optional timeline keeps one tuple per booking.
"""
from __future__ import annotations

import numpy as np


class AccountingError(RuntimeError):
    """An accounting invariant was violated: the simulator has a bug."""


class Bank:
    """Whole-bank bookings of one component, in Python ints (the common case: no array work)."""
    __slots__ = ("busy", "end", "unit_end")

    def __init__(self):
        self.busy = self.end = self.unit_end = 0   # busy ps; end of the last booking; latest end over units


class Activity:
    """Busy / stalled(cause) intervals of every unit of every component."""

    def __init__(self, timeline: "Timeline | None" = None):
        self.units: dict[str, int] = {}
        self.busy_ps: dict[str, np.ndarray] = {}
        self.stall_ps: dict[str, dict[str, np.ndarray]] = {}
        self.last_end_ps: dict[str, np.ndarray] = {}
        self.banks: dict[str, Bank] = {}
        self.timeline = timeline

    def add_component(self, name: str, n_units: int = 1) -> None:
        self.units[name] = n_units
        self.busy_ps[name] = np.zeros(n_units, np.int64)
        self.stall_ps[name] = {}
        self.last_end_ps[name] = np.zeros(n_units, np.int64)
        self.banks[name] = Bank()

    def _book(self, name, start, end, units, step, layer, kind, cause):
        if end < start:
            raise AccountingError(f"{name}: interval ends before it starts ({start} > {end} ps)")
        if end == start:
            return
        bank = self.banks[name]
        bank_end = bank.end
        last = self.last_end_ps[name]
        if units is None:
            latest = max(bank_end, bank.unit_end)
        else:
            latest = max(bank_end, int(last[units].max()))
        if latest > start:
            raise AccountingError(f"{name}: {kind} interval [{start}, {end}) ps overlaps earlier activity "
                                  f"ending at {latest} ps (step {step}, layer {layer})")
        if units is None:
            bank.end = end
        else:
            last[units] = end
            if end > bank.unit_end:
                bank.unit_end = end
        if kind == "busy":
            if units is None:
                bank.busy += end - start
            else:
                self.busy_ps[name][units] += end - start
        else:
            arr = self.stall_ps[name].get(cause)
            if arr is None:
                arr = self.stall_ps[name][cause] = np.zeros(self.units[name], np.int64)
            arr[slice(None) if units is None else units] += end - start
        if self.timeline is not None:
            self.timeline.add(name, units, start, end, kind, cause, step, layer)

    def busy(self, name, start, end, *, units=None, step=-1, layer=-1, action=""):
        self._book(name, start, end, units, step, layer, "busy", action)

    def stall(self, name, start, end, cause, *, units=None, step=-1, layer=-1):
        self._book(name, start, end, units, step, layer, "stall", cause)

    def summary(self, elapsed_ps: int) -> dict:
        """Per component: busy, stalled by cause and idle (ps), per bank and per unit."""
        out = {}
        for name, n in self.units.items():
            busy = self.busy_ps[name] + self.banks[name].busy
            stalls = {c: a for c, a in sorted(self.stall_ps[name].items())}
            stalled = sum(stalls.values()) if stalls else np.zeros(n, np.int64)
            idle = elapsed_ps - busy - stalled
            out[name] = {
                "units": n,
                "busy_ps": int(busy.sum()), "stalled_ps": int(stalled.sum()), "idle_ps": int(idle.sum()),
                "stall_causes_ps": {c: int(a.sum()) for c, a in stalls.items()},
                "utilisation": float(busy.sum() / (elapsed_ps * n)) if elapsed_ps else 0.0,
                "per_unit": {"busy_ps": busy.tolist(), "stalled_ps": stalled.tolist(), "idle_ps": idle.tolist()},
            }
        return out

    def check(self, elapsed_ps: int) -> None:
        """Every unit: busy, stalled, idle >= 0 and busy + stalled + idle == elapsed."""
        for name, comp in self.summary(elapsed_ps).items():
            pu = comp["per_unit"]
            for i, (b, s, idle) in enumerate(zip(pu["busy_ps"], pu["stalled_ps"], pu["idle_ps"])):
                if min(b, s, idle) < 0 or b + s + idle != elapsed_ps:
                    raise AccountingError(f"{name} unit {i}: busy {b} + stalled {s} + idle {idle} ps "
                                          f"does not make the elapsed {elapsed_ps} ps with all >= 0")
            for cause, v in comp["stall_causes_ps"].items():
                if v < 0:
                    raise AccountingError(f"{name}: negative stall time for {cause}")
            if comp["busy_ps"] + comp["stalled_ps"] + comp["idle_ps"] != elapsed_ps * comp["units"]:
                raise AccountingError(f"{name}: bank totals do not add up to units x elapsed")
            if np.any(self.last_end_ps[name] > elapsed_ps) or self.banks[name].end > elapsed_ps:
                raise AccountingError(f"{name}: activity booked past the end of the run")


class Timeline:
    """Optional record of every booked interval, filtered by step range, layer and component."""

    def __init__(self, steps: tuple[int, int] | None = None, layers: set[int] | None = None,
                 components: set[str] | None = None):
        self.steps, self.layers, self.components = steps, layers, components
        self.events: list[tuple] = []

    def add(self, name, units, start, end, kind, cause, step, layer):
        if self.steps is not None and step >= 0 and not (self.steps[0] <= step < self.steps[1]):
            return
        if self.layers is not None and layer >= 0 and layer not in self.layers:
            return
        if self.components is not None and not any(name.startswith(c) for c in self.components):
            return
        self.keep((name, units, start, end, kind, cause, step, layer))

    def keep(self, event: tuple) -> None:
        """An interval that passed the filters: kept in memory here (gcsim.profiling's
        StreamedTimeline writes it to disk instead)."""
        self.events.append(event)
