"""The SimPy environment and process the simulator runs: SimPy's own, with the two
functions every event goes through restated for its common case.

A GPT-2 step of a timing-only run is ~130 events of ~1.5 µs each, so SimPy's generic paths
are a measurable share: `Environment.run` calls `step` once per event, and
`Process._resume` loops and branches for failed and already-processed events. `run_until`
does what `run(until=event)` does (pop the next event, set the clock, call its callbacks,
raise a failed event's exception that nobody handled) in one loop; `Process._resume` sends
a successful event's value into the generator and registers for the next event, and hands
every other case (a failed event, an event already processed, the generator's end or
exception) to SimPy's own code or the same steps as SimPy's. Events, processes and the queue
are SimPy's.
"""
from __future__ import annotations

from heapq import heappop

import simpy
from simpy.core import StopSimulation


class Process(simpy.Process):
    def _resume(self, event) -> None:
        if not event._ok:
            return super()._resume(event)   # the generator must handle (or raise) the failure
        env = self.env
        env._active_proc = self
        try:
            nxt = self._generator.send(event._value)
        except StopIteration as stop:   # the process has ended: as simpy.Process._resume
            self._ok, self._value = True, (stop.args[0] if stop.args else None)
            env.schedule(self)
            self._target = env._active_proc = None
            return
        except BaseException as exc:    # the process has failed: as simpy.Process._resume
            exc.__traceback__ = exc.__traceback__.tb_next
            self._ok, self._value = False, exc
            env.schedule(self)
            self._target = env._active_proc = None
            return
        callbacks = nxt.callbacks
        if callbacks is not None:   # a pending event: resume when it is processed
            callbacks.append(self._resume)
            self._target = nxt
            env._active_proc = None
        else:                       # an event already processed: SimPy's loop sends its value on
            super()._resume(nxt)


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
