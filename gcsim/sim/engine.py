"""Assembles the chip from a hardware description and replays a trace through it.

One SimPy process per sequence in flight walks its steps and layers: the host port
hands each layer's q/k/v to that layer's controller, which sequences the components
(writer, tiles, integrators, charge-to-pulse, counters, accumulator, links) and returns
the layer's outputs. A step of a sequence starts when its previous step has left the
last layer (decoding is autoregressive).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from .. import physics, progress as feedback
from ..datapath import layer_scalers
from ..budget import check_run
from ..errors import SimError
from ..hardware import Hardware
from .accounting import Timeline
from .accumulator import DigitalAccumulator
from .context import SimContext
from .controller import LayerController
from .counters import OutputCounters
from .ctp import ChargeToPulse
from .host import HostPort
from .integrators import ChargeIntegrators
from .interconnect import build_graph, make_links
from .refresh import summary as refresh_summary
from .source import TraceSource, is_source
from .tiles import GainCellTiles
from .writer import TokenWriter




@dataclass
class ArrayTrace:
    """An in-memory trace: q [T,L,H,d], k, v [T,L,KV,d], the model shape and scalers."""
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    scalers: dict | None = None
    model: dict = field(default_factory=dict)
    attn_out: np.ndarray | None = None

    def __post_init__(self):
        T, L, H, d = self.q.shape
        self.model = self.model or {"layers": L, "heads": H, "kv_heads": self.k.shape[2], "d_head": d}

    @property
    def steps(self) -> int:
        return self.q.shape[0]


def check_fit(hw: Hardware, trace) -> None:
    """The trace's model shape must be the description's; say which field differs."""
    s = hw.shape
    for key in ("layers", "heads", "kv_heads", "d_head"):
        want, got = getattr(s, key), int(trace.model[key])
        if want != got:
            raise SimError(f"trace {getattr(trace, 'path', '<in memory>')} does not fit hardware description "
                           f"{hw.source}: model.{key} is {got} in the trace but shape.{key} is {want}")


@dataclass
class SimResult:
    hw: Hardware
    steps: int
    elapsed_ps: int
    step_end_ps: list          # per sequence: [T] time step t left the last layer
    write_ps: list             # per sequence: [T, L] end of each layer's write (age-0 time)
    read_ps: list              # per sequence: [T, L] start of each layer's read
    layer_start_ps: list       # per sequence: [T, L] when the layer's host work began
    layer_end_ps: list         # per sequence: [T, L] when its outputs reached the host
    activity: dict             # Activity.summary()
    ledger: object             # EnergyLedger
    path: object               # CriticalPath
    outputs: object = None     # [T, L, H, d] of sequence 0, or None
    timeline: Timeline | None = None
    retention: dict = field(default_factory=dict)  # refresh and lost-read counts (refresh.py)

    def step_latency_ps(self, seq: int = 0) -> np.ndarray:
        end = self.step_end_ps[seq]
        return np.diff(np.concatenate([[0], end]))


class Simulator:
    """Replay `trace` on `hw`. values=False is the timing-only mode (counts kept)."""

    def __init__(self, hw: Hardware, trace, *, values: bool = True, steps: int | None = None,
                 outputs=None, timeline: Timeline | None = None, stages_hook=None):
        """trace: a decode trace (replayed) or a source (gcsim/sim/source.py, e.g. a live
        model); outputs: [T, L, H, d] array filled with sequence 0's outputs (trace replay)."""
        source = trace if is_source(trace) else TraceSource(trace, outputs, hw.numerics.dtype)
        check_fit(hw, source)
        self.hw, self.trace, self.source = hw, trace, source
        self.steps = trace.steps if steps is None else min(steps, trace.steps)
        if self.steps <= 0:
            raise SimError(f"nothing to simulate: {self.steps} steps requested")
        check_run(hw, self.steps, values=values)  # memory and int64 time fit (gcsim/budget.py)
        ctx = self.ctx = SimContext(hw, self.steps, values=values, timeline=timeline)
        s, p = hw.shape, hw.periphery
        self.host = HostPort(ctx, source)
        links = make_links(ctx.env, build_graph(hw))
        for link in links.values():
            ctx.activity.add_component(f"link.{link.name}", 1)
        coeffs = physics.law_coefficients(hw.numerics.cell_law)
        n_powers = len(coeffs) - 1  # stored y, y^2, ... for the cell-law polynomial
        scalers = source.scalers
        shared = {}
        self.controllers = []
        for l in range(s.layers):
            group = l // p.counters_shared_by_layers
            if group not in shared:
                tag = f"L{l:02d}" if p.counters_shared_by_layers == 1 else f"P{group:02d}"
                shared[group] = (OutputCounters(ctx, f"{tag}.counters"), DigitalAccumulator(ctx, f"{tag}.accumulator"),
                                 simpy.Resource(ctx.env, 1) if p.counters_shared_by_layers > 1 else None)
            counters, acc, per_bank = shared[group]
            tiles = GainCellTiles(ctx, l, n_powers)
            self.controllers.append(LayerController(
                ctx, l, layer_scalers(scalers, l, s.heads, s.kv_heads), tiles=tiles,
                writer=TokenWriter(ctx, l, tiles), integrators=ChargeIntegrators(ctx, l, coeffs),
                ctp=ChargeToPulse(ctx, l), counters=counters, accumulator=acc, links=links,
                bank=simpy.Resource(ctx.env, 1) if p.sequences > 1 else None, periphery_bank=per_bank,
                stages_hook=stages_hook))
        n = p.sequences
        self.step_end = [np.zeros(self.steps, np.int64) for _ in range(n)]
        self.write_ps = [np.zeros((self.steps, s.layers), np.int64) for _ in range(n)]
        self.read_ps = [np.zeros((self.steps, s.layers), np.int64) for _ in range(n)]
        self.layer_start_ps = [np.zeros((self.steps, s.layers), np.int64) for _ in range(n)]
        self.layer_end_ps = [np.zeros((self.steps, s.layers), np.int64) for _ in range(n)]
        self._bar = None

    def _sequence(self, seq: int):
        ctx, host = self.ctx, self.host
        for t in range(self.steps):
            for l, ctrl in enumerate(self.controllers):
                self.layer_start_ps[seq][t, l] = ctx.env.now
                msg = yield from host.layer_inputs(seq, t, l)
                out = yield from ctrl.run(msg)
                host.receive(out)
                self.layer_end_ps[seq][t, l] = ctx.env.now
                self.write_ps[seq][t, l] = ctrl.tiles.states[seq].write_ps[t % self.hw.shape.window]
                self.read_ps[seq][t, l] = ctrl.last_read_ps
            self.step_end[seq][t] = ctx.env.now
            if seq == 0 and self._bar is not None:
                self._bar.update(1)

    def run(self, progress: bool = False) -> SimResult:
        ctx = self.ctx
        self._bar = feedback.bar(self.steps, "simulate", enabled=progress)
        for seq in range(self.hw.periphery.sequences):
            ctx.env.process(self._sequence(seq))
        ctx.env.run()
        self._bar.close()
        elapsed = int(ctx.env.now)
        for block, mw in self.hw.energy.static_mw.items():
            ctx.energy.add_static(block, mw, elapsed)
        ctx.activity.check(elapsed)
        totals = ctx.path.step_totals(0)
        lat = np.diff(np.concatenate([[0], self.step_end[0]]))
        if self.hw.periphery.sequences == 1 and not np.array_equal(totals, lat):
            raise RuntimeError("critical path does not add up to the step latency")
        return SimResult(self.hw, self.steps, elapsed, self.step_end, self.write_ps, self.read_ps,
                         self.layer_start_ps, self.layer_end_ps,
                         ctx.activity.summary(elapsed), ctx.energy, ctx.path, getattr(self.source, "outputs", None),
                         ctx.activity.timeline, refresh_summary(self))
