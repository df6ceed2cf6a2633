"""Component: a block of the chip with a name in a hierarchy (`L03.tiles`), its slice of the
description as parameters, named ports, its own statistics (busy / stalled(cause) / idle per
unit, `kernel/stats.py`) and its own energy actions (`kernel/energy.py`).

Components exchange timed messages (`gcsim/sim/messages.py`). `Component.send(at_ps,
handler, msg)` delivers `msg` to a port handler of another component at time at_ps: one
SimPy event when at_ps lies in the future, a direct call when it is now (a wire with no
delay inside a bank). A component books only its own time and energy.

Subclasses list `PARAMS` (description fields they read), `PORTS` (name: what travels),
`STATS` (what their busy / stalled time means) and `ACTIONS` (energy actions they book);
the architecture document is generated from these.
"""
from __future__ import annotations

from heapq import heappush

from simpy.events import NORMAL, Event


class _Delivery:
    """A message on its way: the SimPy queue entry that hands it to `handler` at its time.
    Lighter than a simpy Event (no environment, no value checks); env.step needs only
    `callbacks` and `_ok`."""
    __slots__ = ("callbacks", "_ok", "handler", "msg")

    def __init__(self, handler, msg):
        self.callbacks = [_dispatch]
        self._ok = True
        self.handler, self.msg = handler, msg


def _dispatch(ev):
    ev.handler(ev.msg)


class Component:
    PARAMS: tuple = ()
    PORTS: dict = {}
    STATS: str = ""
    ACTIONS: tuple = ()

    def __init__(self, sim, name: str, units: int = 1):
        self.sim, self.env, self.name = sim, sim.env, name
        self.units = units
        self.activity = sim.activity
        self.ledger = sim.energy
        sim.activity.add_component(name, units)
        sim.components[name] = self
        self.peers: dict[str, "Component"] = {}   # port name -> connected component (for the graph)
        self._bank = sim.activity.banks[name]
        self._fast = sim.activity.timeline is None

    # -- messages ----------------------------------------------------------------------------
    def send(self, at_ps: int, handler, msg) -> None:
        env = self.env
        if at_ps <= env._now:
            handler(msg)
            return
        heappush(env._queue, (at_ps, NORMAL, next(env._eid), _Delivery(handler, msg)))

    def connect(self, port: str, peer: "Component") -> None:
        self.peers[port] = peer

    # -- own statistics and energy -----------------------------------------------------------
    def busy(self, start, end, units=None, step=-1, layer=-1, action=""):
        b = self._bank
        if units is None and self._fast and b.end <= start <= end and b.unit_end <= start:
            b.end = end   # the common case: whole bank, no timeline (same checks as Activity._book)
            b.busy += end - start
            return
        self.activity._book(self.name, start, end, units, step, layer, "busy", action)

    def stall(self, start, end, cause, units=None, step=-1, layer=-1):
        self.activity._book(self.name, start, end, units, step, layer, "stall", cause)

    def energy(self, action: str, count: int, layer: int, step: int) -> None:
        self.ledger.book(self.name, action, count, layer, step)


def wake_at(env, event: Event, at_ps: int, value=None) -> None:
    """Trigger `event` (a waiting process's) at time at_ps: one scheduled event."""
    event._ok = True
    event._value = value
    env.schedule(event, NORMAL, max(0, at_ps - env._now))
