"""Host batching (`periphery.batching`): how the host's work for the sequences in flight is
grouped (gcsim/sim/blocks/host.py; the work's cost: gcsim/system/work.py).

- `per_sequence` (the default): each sequence's layer is the host's work of its own, a batch
  of one, on the first free host engine (`periphery.host_engines`); sequences pipeline
  through the layers independently.
- `lockstep`: the host computes each layer (and the step's LM head) for every sequence in
  flight at once, as a GPU serving stack does (iteration-level batching): a sequence
  reaching a layer waits for the others (`host batch`), then one batch of n reads the
  weights once. A sequence joins at the next step's first layer and leaves after its last
  step.

A policy's `compute(host, seq, step, phase, path)` is a SimPy process step (a generator)
run by the sequence's decode loop: it waits as the policy says, books the host's busy time,
the sequence's stalls and the energy, and returns the sequence's critical path.
"""
from __future__ import annotations

from simpy.events import NORMAL, Event

from . import Policy, register
from ..kernel.path import add

HOST_BUSY, HOST_COMPUTE, HOST_BATCH = "host busy", "host compute", "host batch"


def _serve(host, seqs, ready, n, step, phase):
    """Claim the first free engine for a batch of n ready at `ready`: (start, end)."""
    ps, actions = host.work.at(phase, n)
    engine = min(host.engines, key=lambda e: e.free_at)
    start, _ = engine.claim(ready, ps, seqs, {})
    end = start + ps
    host.busy(start, end, units=host.engines.index(engine), step=step, layer=min(phase, host.L - 1),
              action="compute" if phase < host.L else "step compute")
    host.book(actions, phase, step)
    return start, end, ps


@register("batching", "per_sequence")
class PerSequence(Policy):
    def start(self, seqs) -> None:
        """Nothing to group: each sequence goes its own way."""

    def leave(self, host, seq) -> None:
        """Nobody waits for a finished sequence."""

    def compute(self, host, seq, step, phase, path):
        now = host.env._now
        start, end, ps = _serve(host, seq, now, 1, step, phase)
        layer = min(phase, host.L - 1)
        if start > now:
            host.sequences.stall(now, start, HOST_BUSY, units=seq, step=step, layer=layer)
            add(path, "stall:" + HOST_BUSY, start - now)
        host.sequences.stall(start, end, HOST_COMPUTE, units=seq, step=step, layer=layer)
        add(path, HOST_COMPUTE, ps)
        yield host.env.timeout(end - now)
        return path


@register("batching", "lockstep")
class Lockstep(Policy):
    def __init__(self, hw, **params):
        super().__init__(hw, **params)
        self.members: set = set()        # sequences batched together in the current step
        self.waiting: dict = {}          # phase -> [(seq, step, arrived, path)]
        self.event: dict = {}            # phase -> the Event its waiting sequences wait on

    def start(self, seqs) -> None:
        """The sequences in flight at time 0 (they make the first batch together)."""
        self.members = set(seqs)

    def leave(self, host, seq) -> None:
        """`seq` has finished: the batches no longer wait for it."""
        self.members.discard(seq)
        for phase in list(self.waiting):
            self._maybe_fire(host, phase)

    def compute(self, host, seq, step, phase, path):
        env = host.env
        self.waiting.setdefault(phase, []).append((seq, step, env._now, path))
        ev = self.event.get(phase)
        if ev is None:
            ev = self.event[phase] = Event(env)
        self._maybe_fire(host, phase)
        paths = yield ev
        return paths[seq]

    def _maybe_fire(self, host, phase):
        waiting = self.waiting.get(phase)
        if not waiting:
            return
        arrived = {w[0] for w in waiting}
        if phase == 0:
            # a step's first layer: the batch is every sequence here once all of the last
            # step's members have come (a newcomer waits for them: it joins at a step's start)
            if not self.members <= arrived:
                return
            self.members = arrived
        elif arrived != self.members:
            return
        env = host.env
        now = env._now
        start, end, ps = _serve(host, tuple(sorted(arrived)), now, len(waiting), waiting[0][1], phase)
        layer = min(phase, host.L - 1)
        stall = host.sequences.stall
        paths = {}
        for seq, step, t0, path in waiting:
            if now > t0:   # waited for the other sequences of the batch
                stall(t0, now, HOST_BATCH, units=seq, step=step, layer=layer)
                add(path, "stall:" + HOST_BATCH, now - t0)
            if start > now:
                stall(now, start, HOST_BUSY, units=seq, step=step, layer=layer)
                add(path, "stall:" + HOST_BUSY, start - now)
            stall(start, end, HOST_COMPUTE, units=seq, step=step, layer=layer)
            add(path, HOST_COMPUTE, ps)
            paths[seq] = path
        ev = self.event.pop(phase)
        del self.waiting[phase]
        ev._ok, ev._value = True, paths   # succeeds at the batch's end (as kernel/component.py's Inbox does)
        env.schedule(ev, NORMAL, end - now)
