"""The SimPy environment the simulator runs in: SimPy's own, with `step` inlined into the
run loop.

A GPT-2 step of a timing-only run is ~130 events, so the method call per event that
`Environment.run` makes to `step` is a share worth saving: a bare hop between two component
processes costs ~490 ns of CPU time with SimPy's loop and ~460 ns with this one
(benchmarks/bench_hop.py, the two alternated in one process). `run_until` does what `run(until=event)` does (pop the next event, set
the clock, call its callbacks, raise a failed event's exception that nobody handled) in one
loop. Events, processes and the queue are SimPy's. (A leaner `Process._resume` was tried
too and gained nothing measurable.)
"""
from __future__ import annotations

from heapq import heappop

import simpy
from simpy.core import StopSimulation


class Environment(simpy.Environment):
    def run_until(self, until: simpy.Event):
        """As `run(until=until)`: process events until `until` has been processed."""
        if until.callbacks is None:
            return until.value
        until.callbacks.append(StopSimulation.callback)
        queue = self._queue
        try:
            while True:
                try:
                    self._now, _, _, event = heappop(queue)
                except IndexError:
                    raise RuntimeError(f'No scheduled events left but "until" event was not triggered: '
                                       f'{until}') from None
                callbacks, event.callbacks = event.callbacks, None
                for callback in callbacks:
                    callback(event)
                if not event._ok and not hasattr(event, "_defused"):
                    exc = type(event._value)(*event._value.args)   # as simpy's step: a copy, the cause kept
                    exc.__cause__ = event._value
                    raise exc
        except StopSimulation as stop:
            return stop.args[0]
