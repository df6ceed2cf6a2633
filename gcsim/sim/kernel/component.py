"""Component: a block of the chip with a name in a hierarchy (`L03.tiles`), its slice of the
description as parameters, named ports, its own SimPy process, its own statistics (busy /
stalled(cause) / idle per unit, `kernel/stats.py`) and its own energy actions
(`kernel/energy.py`).

Every component instance runs one SimPy process (`receive_loop`): it waits on its `Inbox` for the
next message, handles it (books its own busy / stalled time, claims shared resources,
computes its values) and sends the result on. `send(at_ps, handler, msg)` delivers `msg` to
the port `handler` of the receiving component at time at_ps: one SimPy event, the
receiver's inbox triggered at the delivery time with the message as its value. A sender
that knows when its work ends sends at that time (its work time and a wire's latency are
one scheduled event, not a timeout followed by a delivery). Nobody books another's time:
what a receiver must know to book its own (when a wait began, when a phase starts) travels
in the message.

Subclasses list `PARAMS` (description fields they read), `PORTS` (name: what travels),
`STATS` (what their busy / stalled time means) and `ACTIONS` (energy actions they book);
the architecture document is generated from these.
"""
from __future__ import annotations

from heapq import heappop, heappush

from simpy.events import NORMAL, URGENT, Event


class Inbox:
    """Where a component's process waits: one bare SimPy `Event`, triggered at the delivery
    time of the next message with (port handler, message) as its value.

    A message sent for the present moment (a wire with no delay inside a layer) is
    scheduled URGENT: a chain of such hops completes before anything else due at that time,
    as the work of one instant. Messages sent while the event is already scheduled wait in
    (time, priority, order sent) order and are delivered one event each when the process
    comes back; a message due before the scheduled one takes the waiting process over to a
    fresh event (the old one fires with no one waiting on it)."""
    __slots__ = ("env", "event", "at", "prio", "at_n", "pending", "n")

    def __init__(self, env):
        self.env = env
        self.event = _fresh(env)
        self.at = None      # time of the scheduled event (None: nothing scheduled)
        self.prio = self.at_n = 0   # its priority and send order
        self.pending = []   # heap of (time, priority, order, (handler, msg)) sent while it was scheduled
        self.n = 0

    def put(self, at: int, item) -> None:
        env = self.env
        now = env._now
        if at <= now:
            at, prio = now, URGENT
        else:
            prio = NORMAL
        self.n += 1
        if self.at is None:
            ev = self.event
            ev._value = item
            self.at, self.prio, self.at_n = at, prio, self.n
            heappush(env._queue, (at, prio, next(env._eid), ev))
        elif at < self.at or (at == self.at and prio < self.prio):
            old = self.event
            heappush(self.pending, (self.at, self.prio, self.at_n, old._value))
            new = self.event = _fresh(env)
            new.callbacks, old.callbacks = old.callbacks, []
            new._value = item
            self.at, self.prio, self.at_n = at, prio, self.n
            heappush(env._queue, (at, prio, next(env._eid), new))
        else:
            heappush(self.pending, (at, prio, self.n, item))

    def woke(self) -> None:
        """The scheduled event has been processed: it may be triggered again."""
        self.event.callbacks = []
        self.at = None

    def rearm(self) -> None:
        """After a message is handled: schedule the next pending one, if any."""
        if self.at is None and self.pending:
            at, prio, n, item = heappop(self.pending)
            ev = self.event
            ev._value = item
            self.at, self.prio, self.at_n = at, prio, n
            env = self.env
            heappush(env._queue, (at, prio, next(env._eid), ev))


def _fresh(env) -> Event:
    ev = Event(env)
    ev._ok = True   # an inbox event only ever succeeds
    return ev


class Component:
    PARAMS: tuple = ()
    PORTS: dict = {}
    STATS: str = ""
    ACTIONS: tuple = ()
    PROCESS = True      # False: a bank of statistics units without a process of its own

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
        if self.PROCESS:
            self.inbox = Inbox(sim.env)
            sim.start(self, self.receive_loop())

    # -- the process ---------------------------------------------------------------------------
    def receive_loop(self):
        """Wait for a message, handle it at its port, repeat (one SimPy event per message)."""
        inbox = self.inbox
        while True:
            handler, msg = yield inbox.event
            inbox.event.callbacks = []   # inbox.woke(), inlined: this loop runs once per message
            inbox.at = None
            handler(msg)
            if inbox.pending and inbox.at is None:
                inbox.rearm()

    # -- messages ----------------------------------------------------------------------------
    def send(self, at_ps: int, handler, msg) -> None:
        """Deliver `msg` to `handler` (a port method of the receiving component) at at_ps."""
        inbox = handler.__self__.inbox
        env = self.env
        if inbox.at is None:   # Inbox.put, inlined for its common case (the receiver waits)
            now = env._now
            if at_ps <= now:
                at_ps, prio = now, URGENT
            else:
                prio = NORMAL
            inbox.n += 1
            ev = inbox.event
            ev._value = (handler, msg)
            inbox.at, inbox.prio, inbox.at_n = at_ps, prio, inbox.n
            heappush(env._queue, (at_ps, prio, next(env._eid), ev))
        else:
            inbox.put(at_ps, (handler, msg))

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
