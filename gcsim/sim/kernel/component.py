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

from simpy.events import NORMAL, Event


def _dispatch(ev):
    handler, msg = ev._value
    handler(msg)


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

    # -- messages ----------------------------------------------------------------------------
    def send(self, at_ps: int, handler, msg) -> None:
        env = self.env
        delay = at_ps - env._now
        if delay <= 0:
            handler(msg)
            return
        ev = Event(env)
        ev._ok = True
        ev._value = (handler, msg)
        ev.callbacks.append(_dispatch)
        env.schedule(ev, NORMAL, delay)

    def connect(self, port: str, peer: "Component") -> None:
        self.peers[port] = peer

    # -- own statistics and energy -----------------------------------------------------------
    def busy(self, start, end, units=None, step=-1, layer=-1, action=""):
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
