"""Assembles the chip's components from a hardware description and replays a source
(a trace, or a live model: gcsim/sim/source.py) through them.

Components (gcsim/sim/blocks/, one file each) exchange timed messages
(gcsim/sim/messages.py); shared hardware is a resource they claim
(gcsim/sim/kernel/resource.py), so every wait comes out of contention and is explained
by who held what. Policies (gcsim/sim/policies/) are chosen by name in the description.

SimPy processes: one per component instance: per layer its controller, writer, tiles,
integrators, charge-to-pulse, counters and accumulator (one instance, and one process, for
a counter bank shared by layers), the refresh of each layer (when periodic), the host's
decode loop per sequence in flight, and each link of the interconnect with a cost (an ideal
link is a plain wire: blocks/interconnect.py). Each waits on its inbox for a message, does its
phase, books its own time and sends the result on: one SimPy event per message hop
(gcsim/sim/messages.py lists them). Event budget of a layer step of multi-head attention
without contention: inputs, write request (with its read), store (and the read), grant,
Q pulses, S, phi, A, count done, summed, outputs: 11 (a GQA round adds grant to count done,
6, and a RoundDone when the next round waits for the count; the overlap_write issue policy
adds a WriteDone and a ReadRequest; a link with a cost 1 per message crossing it, and 1 for
the note telling a controller its outputs arrived). A step of a sequence starts
when its previous step has left the last layer (decoding is autoregressive).
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field

import numpy as np
import simpy

from .. import costs, physics, progress as feedback
from ..datapath import layer_scalers
from ..budget import check_run
from ..errors import SimError
from .. import streamio
from ..streamio import records_array, release_pages
from ..hardware import Hardware
from ..kernels import notice as kernel_notice
from .blocks.accumulator import DigitalAccumulator
from .blocks.controller import LayerController
from .blocks.counters import OutputCounters
from .blocks.ctp import ChargeToPulse
from .blocks.host import HostPort
from .blocks.integrators import ChargeIntegrators
from .blocks.interconnect import Network
from .blocks.tiles import GainCellTiles
from .blocks.writer import TokenWriter
from .kernel import AccountingError, Activity, CriticalPath, EnergyLedger, Timeline
from .kernel.environment import Environment
from .policies import make
from .policies.refresh import summary as refresh_summary
from .source import TraceSource, is_source


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
        for name in ("q", "k", "v"):  # integer arrays would be silently truncated by the DACs' math
            try:
                arr = np.asarray(getattr(self, name))
            except (ValueError, TypeError) as exc:
                raise SimError(f"ArrayTrace.{name}: not an array ({exc})") from None
            if arr.ndim != 4 or arr.dtype.kind != "f":
                raise SimError(f"ArrayTrace.{name}: expected a 4-d float array [T, L, heads, d], found "
                               f"{arr.ndim}-d {arr.dtype}")
            setattr(self, name, arr)
        T, L, H, d = self.q.shape
        if T < 1:
            raise SimError("ArrayTrace: no steps (q has 0 rows)")
        if self.k.shape != self.v.shape or self.k.shape[:2] != (T, L) or self.k.shape[3] != d \
                or H % self.k.shape[2]:
            raise SimError(f"ArrayTrace: q {list(self.q.shape)} [T, L, heads, d], k {list(self.k.shape)} and v "
                           f"{list(self.v.shape)} [T, L, kv_heads, d] do not fit together (same T, L, d; k and v "
                           f"alike; kv_heads dividing heads)")
        shape = {"layers": L, "heads": H, "kv_heads": self.k.shape[2], "d_head": d}
        if self.model and (not isinstance(self.model, dict)
                           or any(self.model.get(key) != val for key, val in shape.items())):
            raise SimError(f"ArrayTrace.model: expected a mapping that agrees with the arrays {shape}, found "
                           f"{self.model!r:.200}")
        self.model = self.model or shape
        if self.scalers is not None:
            from ..traces.format import check_scalers
            if not isinstance(self.scalers, dict):
                raise SimError(f"ArrayTrace.scalers: expected a mapping of scaler arrays, found {type(self.scalers).__name__}")
            self.scalers = check_scalers({k: np.asarray(v).tolist() for k, v in self.scalers.items()},
                                         self.model, "ArrayTrace")
        if self.attn_out is not None and np.shape(self.attn_out) != self.q.shape:
            raise SimError(f"ArrayTrace.attn_out: expected the shape of q {list(self.q.shape)}, found "
                           f"{list(np.shape(self.attn_out))}")

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
    retention: dict = field(default_factory=dict)  # refresh and lost-read counts (policies/refresh.py)
    resources: dict = field(default_factory=dict)  # name -> its ServedLog (check=True only)
    served: list | None = None  # serving: per request its times (gcsim/sim/blocks/host.py)

    def step_latency_ps(self, seq: int = 0) -> np.ndarray:
        end = self.step_end_ps[seq]
        return np.diff(np.concatenate([[0], end]))


class Record:
    """Per sequence [T, L] times of every layer step, and step ends [T]: records_arrays
    (on disk for long runs, gcsim.streamio), so that they do not grow the process."""

    def __init__(self, n, steps, layers):
        z = lambda: [records_array((steps, layers), np.int64) for _ in range(n)]  # noqa: E731
        self.layer_start, self.layer_end, self.write, self.read = z(), z(), z(), z()
        self.step_end = [records_array((steps,), np.int64) for _ in range(n)]

    def trim(self, rows: list[int]) -> None:
        """Keep the first rows[seq] steps of each sequence (serving: the decode steps it served)."""
        for arrays in (self.layer_start, self.layer_end, self.write, self.read, self.step_end):
            arrays[:] = [a[:n] for a, n in zip(arrays, rows)]

    def release(self) -> None:
        for arrays in (self.layer_start, self.layer_end, self.write, self.read, self.step_end):
            for arr in arrays:
                release_pages(arr)




class Simulator:
    """Replay `trace` (or a source) on `hw`. values=False is the timing-only mode (counts
    kept); check=True also keeps every resource's served intervals (for validation)."""

    def __init__(self, hw: Hardware, trace, *, values: bool = True, steps: int | None = None,
                 outputs=None, timeline: Timeline | None = None, stages_hook=None, check: bool = False,
                 device: str = "cpu"):
        """device: where the tiles' bank reads run ('cpu', 'cuda', ...: gcsim/kernels/device.py)."""
        source = trace if is_source(trace) else TraceSource(trace, outputs, hw.numerics.dtype)
        check_fit(hw, source)
        self.hw, self.trace, self.source = hw, trace, source
        self.serving = getattr(source, "requests", None) is not None   # requests over time (gcsim/serving/)
        if self.serving and values:
            raise SimError("a serving run is timing-only (requests carry lengths, not values): values=False")
        self.steps = source.steps if steps is None or self.serving else min(steps, source.steps)
        if self.steps <= 0:
            raise SimError(f"nothing to simulate: {self.steps} steps requested")
        check_run(hw, self.steps, values=values)  # memory and int64 time fit (gcsim/budget.py)
        self.values, self.check, self.stages_hook, self.device = values, check, stages_hook, device
        s, p = hw.shape, hw.periphery
        self.env = Environment()
        self.activity = Activity(timeline)
        # energy per action scaled from the calibration design to this one (gcsim/costs.py)
        self.energy = EnergyLedger(costs.derive(hw).actions_pj, hw.energy.link_pj_per_bit, s.layers, self.steps)
        rows = source.record_steps if self.serving else self.steps   # per sequence: its decode steps
        self.path = CriticalPath(p.sequences, rows)
        self.components = {}
        self.processes = []   # (component, simpy.Process): one per component instance (per sequence: host)
        self.policies = {kind: make(kind, choice, hw) for kind, choice in
                         (("gqa", p.gqa_mapping), ("counters", p.counters), ("issue", p.issue),
                          ("refresh", hw.numerics.retention.refresh), ("batching", p.batching),
                          ("admission", p.admission))}
        self.record = Record(p.sequences, rows, s.layers)
        self.host = HostPort(self, source)
        self.network = Network(self)
        n_powers = len(physics.law_coefficients(hw.numerics.cell_law)) - 1  # stored y, y^2, ... (cell law)
        shared = {}
        self.controllers, self.tiles = [], []
        for l in range(s.layers):
            group = l // p.counters_shared_by_layers
            if group not in shared:
                tag = f"L{l:02d}" if p.counters_shared_by_layers == 1 else f"P{group:02d}"
                counters = OutputCounters(self, f"{tag}.counters", p.counters_shared_by_layers > 1)
                shared[group] = (counters, DigitalAccumulator(self, f"{tag}.accumulator"))
            counters, acc = shared[group]
            ctrl = LayerController(self, l, layer_scalers(source.scalers, l, s.heads, s.kv_heads))
            writer = TokenWriter(self, l)
            tiles = GainCellTiles(self, l, n_powers)
            integ, ctp = ChargeIntegrators(self, l), ChargeToPulse(self, l)
            # wiring: each port to its peer
            ctrl.writer, ctrl.tiles = writer, tiles
            writer.tiles, writer.controller = tiles, ctrl
            tiles.writer, tiles.integrators = writer, integ
            integ.ctp, integ.counters = ctp, counters
            ctp.tiles, ctp.v_arrays = tiles, tiles.v_arrays
            counters.serve(l, tiles, integ, acc)
            acc.serve(l, ctrl)
            wires = [(self.host, "inputs", ctrl), (ctrl, "write", writer), (writer, "store", tiles),
                     (tiles, "k_currents", integ), (integ, "charges", ctp), (ctp, "phi", tiles),
                     (tiles, "v_currents", integ), (integ, "count", counters), (counters, "latched", integ),
                     (counters, "counted", acc), (acc, "summed", ctrl), (ctrl, "outputs", self.host)]
            if ctrl.write_during_read:   # the read is a request of its own (else the store carries it)
                wires += [(writer, "written", ctrl), (ctrl, "read", tiles)]
            for a, port, b in wires:
                a.connect(f"{port}:{b.name}", b)
            if tiles.wants_round_done:
                counters.connect(f"round_done:{tiles.name}", tiles)
            refresh = tiles.refresh = self.policies["refresh"].attach(self, tiles, writer)
            if refresh is not None:
                for a, port, b in ((refresh, "refresh", tiles), (tiles, "reserve", writer), (writer, "reserved", tiles),
                                   (tiles, "rewrite", writer), (tiles, "refreshed", refresh)):
                    a.connect(f"{port}:{b.name}", b)
            self.controllers.append(ctrl)
            self.tiles.append(tiles)
        self._bar = None

    def start(self, component, generator):
        """Start `component`'s SimPy process."""
        proc = self.env.process(generator)
        self.processes.append((component, proc))
        return proc

    def rings(self):
        """(layer, sequence, RingBuffer) of every layer's tiles, e.g. to pre-fill a window."""
        for l, tiles in enumerate(self.tiles):
            for seq, ring in enumerate(tiles.rings):
                yield l, seq, ring

    def step_done(self, t: int) -> None:
        if not (t + 1) % streamio.RELEASE_STEPS:
            self.release_records()
        if self._bar is not None:
            self._bar.update(1)

    def release_records(self) -> None:
        """The per-step records written so far go to disk (where they are disk-backed) and
        leave the process's resident memory; the critical paths are stored."""
        self.record.release()
        self.energy.release()
        self.path.release()
        for tiles in self.tiles:
            release_pages(tiles.read_charge_ua_tmax)   # data-dependent read energy only

    def run(self, progress: bool = False) -> SimResult:
        env, rec = self.env, self.record
        kernels = self.values and self.device == "cpu"
        if kernels:
            kernel_notice.announce(progress)    # before the bar, which then starts with compiled kernels
        self._bar = feedback.bar(self.steps, "simulate", enabled=progress)
        done = simpy.AllOf(env, self.host.processes)
        # the run allocates many small short-lived objects (messages, paths); keep the objects
        # already alive (numba, numpy, the trace) out of the garbage collector's full passes
        gc.freeze()
        try:
            env.run_until(done)
        finally:
            gc.unfreeze()
        self._bar.close()
        if kernels:
            kernel_notice.finished()
        elapsed = int(env.now)
        for block, mw in self.hw.energy.static_mw.items():
            self.energy.add_static(block, mw, elapsed)
        self.activity.check(elapsed)
        if self.serving:   # each bank recorded the decode steps it served
            rec.trim(self.host.rows)
            self.path.trim(self.host.rows)
        for seq in range(self.hw.periphery.sequences):
            if not self.path.adds_up(seq, rec.step_end[seq]):
                raise AccountingError(f"critical path of sequence {seq} does not add up to its step latency")
        self.release_records()
        resources = {}
        if self.check:
            for t in self.tiles:
                for b in t.banks:
                    resources[b.name] = b.served
            for c in self.components.values():
                for attr in ("dacs", "res"):
                    r = getattr(c, attr, None)
                    if r is not None and r.served is not None:
                        resources[r.name] = r.served
            for ch in self.network.channels.values():
                if ch.resource is not None:
                    resources[ch.stat_name] = ch.resource.served
        return SimResult(self.hw, self.steps, elapsed, rec.step_end, rec.write, rec.read,
                         rec.layer_start, rec.layer_end, self.activity.summary(elapsed), self.energy, self.path,
                         getattr(self.source, "outputs", None), self.activity.timeline, refresh_summary(self),
                         resources, getattr(self.host, "served", None))
