"""The witness's timing model: a deliberately simple list-scheduling model of a hardware
description, written from its documentation (docs/simulator.md, docs/cost-model.md) and
sharing no code with the simulator (gcsim/sim/) beyond the description loader.

One agenda (a heap) of events in time order, as in any event-list model: each phase of a
layer step ends in an event fixed when the phase begins, and that event claims the hardware
the next phase needs (shared hardware serves one claim at a time, in the order of the
claims) and fixes when it ends. Events due at the same time are taken in the order they were
fixed (first known, first served); a hop that takes no time is taken at once. A claim names
what it waited for (the stall's cause). Where two claims of one instant contend (the order
decides who waits), the model records the tie (`Schedule.ties`): the simulator orders
simultaneous messages by its components' inboxes, which can differ from this rule where one
component serves several layers and sequences at once (docs/validation.md).

The rules (every time in integer picoseconds):

- A sequence decodes step after step; a step runs the layers one after another. Layer l of
  step t begins when layer l - 1's outputs reached the host (layer 0: when the previous step
  ended; the first at 0).
- When a layer step's outputs reach the host, the sequence's next layer step begins before
  the freed layer takes its next waiting step.
- Host (gcsim/witness/host.py: `host_ns_per_layer`, or a host device's roofline at the
  batch): the work before each layer, and with a host device the step's work after the last
  layer (the step ends when it is done), on the engine that is free first (lowest index on a
  tie); the sequence waits for it (`host busy`) and is stalled during it (`host compute`).
  Batching rule `per_sequence`: each sequence's work is a batch of one, claimed when it
  reaches the host; `lockstep`: the work of a layer (or of the step's end) waits until every
  sequence has reached it (`host batch`, from each one's arrival), then is one batch of all,
  and the sequences go on at its end in the order they arrived.
- Links: a route (networkx shortest path by latency, fewest hops between equals) of the
  topology; a hop with no cost (no latency, no bandwidth limit, no capacity) is a wire. A
  hop with a cost serves messages in the order they enter it: a message of b bits entering
  at x starts at the latest of x, the end of the previous message's serialisation and (with
  a capacity of n) the arrival of the message n places ahead of it; it serialises for
  ceil(b x 1000 / gbps) ps and reaches the next hop latency later. The wait is a stall of
  its sender, cause `link.NAME`: of the sequence (inputs) or of the layer's controller, per
  head (outputs). Inputs are H d q_bits + 2 KV d kv_bits bits, outputs H d out_bits.
- Issue: `serial`: a layer serves one layer step at a time, from its write until its
  outputs have left (reached the host over links with a cost; at the end of routing over
  wires); the next waits in arrival order (`layer busy (other sequence)`). With
  `write_during_read` the write is requested on arrival and the read path (read through
  outputs left) is the layer's resource, waited for from the write's end.
- Write: the layer's write DACs, `write` ps; a write finding them held waits (cause
  `refresh` when a refresh holds them, else `writer busy (other sequence)`; under `serial`
  the controller holds the k, v meanwhile: its stall, per head). The slot t mod M of the
  sequence's arrays holds token t from the write's end (its age 0).
- Read (from the write's end under `serial`): the GQA rule's rounds. Bank: a round claims
  the K/V bank for its Q and V phases; with `count_holds_bank` the rounds go one after
  another, each holding the bank through its output count (the last frees the bank at its
  V end: its count reads the integrators), else every round claims the bank at the read's
  start. Split arrays: a round claims the K arrays for its Q phase, then the V arrays for its
  V phase. A round's heads wait on their integrators: for the bank or the K arrays
  (`K/V bank shared (GQA)`), the V arrays (`V arrays busy (GQA pipeline)`).
- Counters: one resource per layer (per periphery bank for `counters_shared_by_layers`),
  claimed when a round's V phase ends and held until its last head is counted (plus the adder
  tree for the last round on a periphery bank). Inside, the sets of `counters_shared_by`
  consecutive heads count the round's heads in head order, each when its set is free. A
  shared unit switching users takes `switch_cycles`: a set before another head than the one
  it counted last, a periphery bank before another layer than the last (busy meanwhile). A
  round waiting for the counters is stalled on its integrators (`periphery shared by
  layers`, `output counters busy (GQA pipeline)` with split arrays, else `output counters
  shared`), and a head counted after the round's start waits for its turn (`output counters
  shared`).
- Adder tree and output scaler when every round has counted: depth ceil(log2 n_sub) (at
  least 1) levels of `adder_tree` / 4 each, rounded up to whole clock cycles (as written
  with `costs.model: table`); then `routing`; then the outputs leave for the host.
- Refresh (periodic rule): due at k x `refresh_interval_ns` per layer (the first ones fixed
  at time 0 after the sequences' first decisions); none once every layer step of the run has
  requested its write at the layer, nothing while nothing is written. From its due time D
  the refresh holds the write DACs (reserved from when they are free: a write requested
  later waits for the refresh's end, `refresh`). It waits for the layer steps that requested
  their write but whose last round has not been granted yet (then it is decided at the end of
  the last one's V phase), else it is decided at D. It starts when the DACs' reservation, the
  arrays and the tiles are free and lasts `refresh_ns_per_subtile` x the sub-tiles holding a
  valid slot of the latest written step (of the fullest sequence). Every written slot of
  every sequence is rewritten: age 0 at its end. The next falls due at (k + 1) x the
  interval, or at the decision if that is later.

Statistics are booked per component and unit as documented in docs/simulator.md (busy,
stalled by cause); ages of stored values come from the model's own slots.
"""
from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass, field
from fractions import Fraction

import networkx as nx
import numpy as np

from ..hardware import PS_PER_NS
from ..streamio import records_array
from .host import Host
from .rules import rules_for

REFRESH_HOLDER = "refresh"
LAYER_BUSY = "layer busy (other sequence)"
BANK_WAIT = "K/V bank shared (GQA)"
V_WAIT = "V arrays busy (GQA pipeline)"
TURN_WAIT = "output counters shared"


def ps(ns) -> int:
    return round(ns * PS_PER_NS)


def adder_tree_ps(hw) -> int:
    """The adder-tree-and-scaler phase: ceil(log2 n_sub) levels (at least 1) of
    adder_tree / 4 (the calibration design's 16 sub-tiles have 4), rounded up to whole
    clock cycles; as written with `costs.model: table` (docs/cost-model.md)."""
    written = ps(hw.timing.phases_ns["adder_tree"])
    if hw.costs.model == "table":
        return written
    n = hw.shape.window // hw.shape.array_size
    depth = max(1, (n - 1).bit_length())
    clock = round(1e6 / hw.timing.clock_mhz)
    return math.ceil(Fraction(depth * written, 4) / clock) * clock


class Link:
    """One directed edge with a cost."""

    def __init__(self, name, latency_ns, gbps, capacity):
        self.name, self.latency_ps, self.gbps, self.capacity = name, ps(latency_ns), gbps, capacity
        self.free_at = 0
        self.arrivals = []   # arrival time at the next hop of every message, in entry order
        self.asked = {}

    def serialise_ps(self, bits: int) -> int:
        if self.gbps <= 0:
            return 0
        return math.ceil(Fraction(bits * PS_PER_NS) / Fraction(self.gbps))


def routes(hw):
    """Per layer: (inbound hops, outbound hops), the hops with a cost only; and every hop of
    every route with its name (for the bits each moves)."""
    ic = hw.interconnect
    g = nx.DiGraph()
    if ic.nodes:
        for name, e in ic.edges.items():
            g.add_edge(e.src, e.dst, name=name, lat=e.latency_ns, gbps=e.gbps, cap=e.capacity, pj=e.pj_per_bit)
        node_of = {l: n for n, v in ic.nodes.items() for l in range(v.first_layer, v.last_layer + 1)}
    else:
        for name, (a, b) in (("host_to_controller", ("host", "chip")), ("bank_to_host", ("chip", "host"))):
            link = ic.links.get(name)
            g.add_edge(a, b, name=name, lat=link.latency_ns if link else 0.0, gbps=link.gbps if link else 0.0,
                       cap=0, pj=None)
        node_of = {l: "chip" for l in range(hw.shape.layers)}
    links = {d["name"]: Link(d["name"], d["lat"], d["gbps"], d["cap"]) for _, _, d in g.edges(data=True)}
    for _, _, d in g.edges(data=True):
        d["w"] = d["lat"] + 1e-6
    out = []
    for l in range(hw.shape.layers):
        pair = []
        for a, b in (("host", node_of[l]), (node_of[l], "host")):
            nodes = nx.shortest_path(g, a, b, weight="w")
            pair.append([g[x][y] for x, y in zip(nodes, nodes[1:])])
        out.append(pair)
    return out, links


@dataclass
class LayerStep:
    seq: int
    step: int
    layer: int
    times: dict = field(default_factory=dict)
    rounds: list = field(default_factory=list)   # per round: {q0, q1, v0, v1, c0, c1}
    open: bool = False
    left: int = 0


class Schedule:
    """What the witness computed (see the module docstring for the rules)."""

    def __init__(self, hw, steps):
        s, n = hw.shape, hw.periphery.sequences
        self.hw, self.steps, self.sequences = hw, steps, n
        z = lambda: [records_array((steps, s.layers)) for _ in range(n)]  # noqa: E731  (on disk when long)
        self.layer_start, self.write_end, self.read_start, self.layer_end = z(), z(), z(), z()
        self.step_end = [np.zeros(steps, np.int64) for _ in range(n)]
        self.refreshes = [[] for _ in range(s.layers)]   # per layer: {decided, start, end, slots}
        self.refresh_ends = [[] for _ in range(s.layers)]   # per layer, in time order
        self.busy_ps: dict[str, int] = {}
        self.stall_ps: dict[str, dict[str, int]] = {}
        self.elapsed_ps = 0
        self.layer_steps = np.zeros((s.layers, 3), np.int64)   # per layer: layer steps, sum n_valid, sum n_active
        self.refresh_counts = {k: np.zeros(s.layers, np.int64) for k in
                               ("refreshes", "busy_ps", "stall_ps", "slots_refreshed", "assumption_violations",
                                "lost_reads", "slot_reads")}
        self.detail: dict | None = None
        self.ties: list = []     # (time, resource, (seq, step, layer) served first, the one that waited)
        self.host_counts = {"host_busy": 0, "host_flop": 0, "host_byte": 0}   # the host's energy actions

    def ages_ps(self, step: int, layer: int, seq: int = 0) -> np.ndarray:
        """[M] age of every slot of sequence `seq`'s arrays at the start of the read of `step`
        in `layer` (a slot never written: the read's time): the read's start minus the slot's
        age-0 time, the end of its token's write or of the latest refresh before the read (a
        refresh rewrites every sequence's arrays)."""
        M = self.hw.shape.window
        read = int(self.read_start[seq][step, layer])
        j = np.arange(M)
        token = step - (step - j) % M
        written = token >= 0
        age0 = np.zeros(M, np.int64)
        age0[written] = self.write_end[seq][token[written], layer]
        ends = self.refresh_ends[layer]
        k = bisect.bisect_right(ends, read)
        if k:
            age0[written] = np.maximum(age0[written], ends[k - 1])
        return read - age0

    def valid(self, step: int) -> np.ndarray:
        M = self.hw.shape.window
        return step - (step - np.arange(M)) % M >= 0


class Model:
    def __init__(self, hw, steps: int, detail: bool = False):
        self.hw, self.T = hw, steps
        self.rules = rules_for(hw)
        s, p, t = hw.shape, hw.periphery, hw.timing
        self.L, self.H, self.KV, self.d, self.M, self.a = s.layers, s.heads, s.kv_heads, s.d_head, s.window, s.array_size
        self.n_seq = p.sequences
        ph = {k: ps(v) for k, v in t.phases_ns.items()}
        self.W, self.Q, self.V, self.C, self.R = ph["write"], ph["q_phase"], ph["v_phase"], ph["output_count"], ph["routing"]
        self.adder = adder_tree_ps(hw)
        self.host = Host(hw)
        self.lockstep = self.rules["batching"].all_at_once
        self.host_waiting = {}      # lockstep: (step, phase) -> [(job, arrived)]
        self.out = Schedule(hw, steps)
        if detail:
            self.out.detail = {}
        gqa = self.rules["gqa"]
        self.rounds = gqa.rounds()
        self.split = gqa.split_arrays
        self.sequential = self.rules["counters"].count_holds_bank and not self.split
        self.serial = not self.rules["issue"].write_during_read
        self.sb, self.by_layers = p.counters_shared_by, p.counters_shared_by_layers
        self.switch = getattr(p, "switch_cycles", 0) * round(1e6 / t.clock_mhz)   # ps to switch users
        self.count_cause = ("periphery shared by layers" if self.by_layers > 1 else
                            "output counters busy (GQA pipeline)" if self.split else TURN_WAIT)
        self.routes, self.links = routes(hw)
        ic = hw.interconnect
        self.bits_in = self.H * self.d * ic.q_bits + 2 * self.KV * self.d * ic.kv_bits
        self.bits_out = self.H * self.d * ic.out_bits
        # shared hardware: free times and, for the write DACs, the last holder
        self.engines = [0] * p.host_engines
        self.host_asked = {}
        self.dacs = [{"free": 0, "last": None, "reserved": None, "from": 0} for _ in range(self.L)]
        self.bank = [{"free": 0} for _ in range(self.L)]
        self.k_arrays = [{"free": 0} for _ in range(self.L)]
        self.v_arrays = [{"free": 0} for _ in range(self.L)]
        self.counters = {}
        self.layer_holder = [None] * self.L     # the layer (serial) or its read path
        self.layer_queue = [[] for _ in range(self.L)]
        self.layer_asked = [{} for _ in range(self.L)]
        self.tiles_until = [[0] * self.n_seq for _ in range(self.L)]
        # the witness's own slots: token held and age-0 time, per layer and sequence
        self.token = np.full((self.L, self.n_seq, self.M), -1, np.int64)
        self.age0 = np.zeros((self.L, self.n_seq, self.M), np.int64)
        self.last_token = np.full((self.L, self.n_seq), -1, np.int64)
        self.writes_requested = [0] * self.L
        self.open_steps = [set() for _ in range(self.L)]
        self.refresh_waiting = [None] * self.L
        ret = hw.numerics.retention
        self.periodic = self.rules["refresh"].periodic
        self.interval = ps(ret.refresh_interval_ns)
        self.per_subtile = ps(ret.refresh_ns_per_subtile)
        self.copies = gqa.copies()
        if ret.mode == "time":
            self.loss_age = ret.tau_ns * PS_PER_NS * math.log(1.0 / ret.loss_fraction)
        elif ret.mode == "per_token" and ret.rate_per_token > 0:
            self.loss_age = math.log(1.0 / ret.loss_fraction) / ret.rate_per_token
        else:
            self.loss_age = None
        self.retention_mode = ret.mode
        self.safe_age = self._safe_age()
        self.agenda, self.n, self.now, self.running = [], 0, 0, False

    # -- helpers -----------------------------------------------------------------------------
    def _safe_age(self):
        """Largest age at which a rewrite re-quantizes to the level written (time mode):
        max deviation x (1 - exp(-age / tau)) < half a DAC level."""
        n = self.hw.numerics
        if n.retention.mode != "time":
            return math.inf
        lo, hi = n.kv_range_v
        half = (hi - lo) / ((n.kv_levels or 2 ** 16) - 1) / 2
        dev = max(abs(lo - 0.45), abs(hi - 0.45))
        return -n.retention.tau_ns * PS_PER_NS * math.log(1.0 - half / dev) if half < dev else math.inf

    def name(self, layer, what):
        return f"L{layer:02d}.{what}"

    def periphery_name(self, layer, what):
        if self.by_layers == 1:
            return self.name(layer, what)
        return f"P{layer // self.by_layers:02d}.{what}"

    def busy(self, comp, ps_, units=1):
        if ps_:
            self.out.busy_ps[comp] = self.out.busy_ps.get(comp, 0) + ps_ * units

    def stall(self, comp, cause, ps_, units=1):
        if ps_ > 0:
            causes = self.out.stall_ps.setdefault(comp, {})
            causes[cause] = causes.get(cause, 0) + ps_ * units

    def at(self, time, fn, *args):
        """`fn(*args)` at `time`: at once if that is now (a hop that takes no time), else in
        the agenda after everything already due at that time."""
        if time == self.now and self.running:
            fn(*args)
            return
        heapq.heappush(self.agenda, (time, self.n, fn, args))
        self.n += 1

    def asked(self, res: dict, name: str, job, waits: bool) -> None:
        """Record a claim of `res` by `job` now; a tie if the previous claim came at the same
        instant from another layer step and this one has to wait."""
        key = (job.seq, job.step, job.layer)
        prev = res.get("asked")
        if waits and prev is not None and prev[0] == self.now and prev[1] != key and len(self.out.ties) < 100:
            self.out.ties.append((self.now, name, prev[1], key))
        res["asked"] = (self.now, key)

    def note(self, job, key, value):
        job.times[key] = value

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> Schedule:
        for seq in range(self.n_seq):
            self.at(0, self.begin, seq, 0, 0)
        if self.periodic:
            self.at(0, self.start_refreshes)
        self.running = True
        while self.agenda:
            self.now, _, fn, args = heapq.heappop(self.agenda)
            fn(*args)
        o = self.out
        o.elapsed_ps = max(int(e[-1]) for e in o.step_end) if self.T else 0
        return o

    # -- host --------------------------------------------------------------------------------
    def begin(self, seq, t, l):
        job = LayerStep(seq, t, l)
        self.out.layer_start[seq][t, l] = self.now
        self.host_work(job, l, self.host_done)

    def host_work(self, job, phase, then):
        """The host's work before layer `phase` (phase L: after the last layer) for `job`'s
        sequence, then `then(job)`."""
        if not self.host.works or (phase == self.L and self.host.device is None):
            self.at(self.now, then, job)
            return
        if not self.lockstep:
            self.host_batch([(job, self.now)], phase, then)
            return
        waiting = self.host_waiting.setdefault((job.step, phase), [])
        waiting.append((job, self.now))
        if len(waiting) == self.n_seq:
            del self.host_waiting[(job.step, phase)]
            self.host_batch(waiting, phase, then)

    def host_batch(self, jobs, phase, then):
        """One batch of the host's work for `jobs` [(job, arrived)], ready now."""
        now, n = self.now, len(jobs)
        work, flops, nbytes = self.host.after_step(n) if phase == self.L else self.host.before_layer(n)
        e = min(range(len(self.engines)), key=lambda i: (self.engines[i], i))
        start = max(now, self.engines[e])
        self.asked(self.host_asked, "host", jobs[-1][0], start > now)
        self.engines[e] = start + work
        self.busy("host", work)
        self.out.host_counts["host_busy"] += work
        self.out.host_counts["host_flop"] += flops
        self.out.host_counts["host_byte"] += nbytes
        for job, arrived in jobs:
            self.stall("sequences", "host batch", now - arrived)
            self.stall("sequences", "host busy", start - now)
            self.stall("sequences", "host compute", work)
            self.at(start + work, then, job)

    def host_done(self, job):
        self.note(job, "inputs_sent", self.now)
        self.send(job, self.routes[job.layer][0], self.now, True, self.arrive_at_controller)

    def send(self, job, hops, at, inbound, then):
        hops = [h for h in hops if h["lat"] > 0 or h["gbps"] > 0 or h["cap"] > 0]
        if not hops:
            self.at(at, then, job)
        else:
            self.at(at, self.enter_link, job, hops, 0, inbound, then)

    def enter_link(self, job, hops, i, inbound, then):
        link = self.links[hops[i]["name"]]
        x = self.now
        start = x
        k = len(link.arrivals)
        if link.capacity and k >= link.capacity:
            start = max(start, link.arrivals[k - link.capacity])
        ser = link.serialise_ps(self.bits_in if inbound else self.bits_out)
        if ser:
            start = max(start, link.free_at)
            link.free_at = start + ser
            self.busy(f"link.{link.name}", ser)
        if inbound:
            self.stall("sequences", f"link.{link.name}", start - x)
        else:
            self.stall(self.name(job.layer, "controller"), f"link.{link.name}", start - x, self.H)
        self.asked(link.asked, f"link.{link.name}", job, start > x)
        arrive = start + ser + link.latency_ps
        link.arrivals.append(arrive)
        if i + 1 < len(hops):
            self.at(arrive, self.enter_link, job, hops, i + 1, inbound, then)
        else:
            self.at(arrive, then, job)

    # -- controller: issue ---------------------------------------------------------------------
    def arrive_at_controller(self, job):
        self.note(job, "inputs_at", self.now)
        if self.serial:
            self.request_layer(job, self.admit)
        else:
            self.write(job)

    def request_layer(self, job, go):
        l = job.layer
        job.times["waits_since"] = self.now
        free = self.layer_holder[l] is None and not self.layer_queue[l]
        self.asked(self.layer_asked[l], self.name(l, "controller"), job, not free)
        if free:
            self.layer_holder[l] = job
            go(job)
        else:
            self.layer_queue[l].append((job, go))

    def release_layer(self, l):
        self.layer_holder[l] = None
        if self.layer_queue[l]:
            job, go = self.layer_queue[l].pop(0)
            self.layer_holder[l] = job
            go(job)

    def admit(self, job):
        self.stall("sequences", LAYER_BUSY, self.now - job.times["waits_since"])
        self.note(job, "admitted", self.now)
        self.write(job)

    # -- token writer --------------------------------------------------------------------------
    def write(self, job):
        """A write request reaches the writer: it claims the DACs, or, while a refresh has them
        reserved, waits for the refresh to claim them first."""
        self.writes_requested[job.layer] += 1
        dacs = self.dacs[job.layer]
        if dacs["reserved"] is not None:
            dacs["reserved"].append((job, self.now))
        else:
            self.claim_dacs(job, self.now)

    def claim_dacs(self, job, a):
        """The write requested at `a` takes the DACs when they are free."""
        seq, t, l = job.seq, job.step, job.layer
        dacs = self.dacs[l]
        start = max(a, dacs["free"])
        self.asked(dacs, self.name(l, "writer"), job, start > a)
        cause = "refresh" if dacs["last"] == REFRESH_HOLDER else "writer busy (other sequence)"
        if start > a:
            self.stall("sequences", cause, start - a)
            if cause == "refresh":
                self.out.refresh_counts["stall_ps"][l] += start - a
            if self.serial:
                self.stall(self.name(l, "controller"), cause, start - a, self.H)
        end = start + self.W
        dacs["free"], dacs["last"] = end, job
        self.busy(self.name(l, "writer"), self.W, self.KV)
        self.tiles_busy(l, seq, [(start, end)])
        self.note(job, "write", (start, end))
        self.out.write_end[seq][t, l] = end
        slot = t % self.M
        self.token[l, seq, slot] = t
        self.age0[l, seq, slot] = end
        self.last_token[l, seq] = t
        job.open = True
        self.open_steps[l].add(id(job))
        if self.serial:     # the read issued with the write starts when the write ends
            self.read(job, end)
        else:
            self.at(end, self.written, job)

    def written(self, job):
        self.note(job, "written", self.now)
        self.request_layer(job, self.read_now)

    def read_now(self, job):
        self.stall("sequences", LAYER_BUSY, self.now - job.times["waits_since"])
        self.read(job, self.now)

    def tiles_busy(self, l, seq, intervals):
        """The tiles of sequence `seq` are busy over the union of `intervals` (KV units)."""
        until = self.tiles_until[l][seq]
        for a, b in sorted(intervals):
            if b > until:
                self.busy(self.name(l, "tiles"), b - max(a, until), self.KV)
                until = b
        self.tiles_until[l][seq] = until

    # -- tiles: the read in rounds ------------------------------------------------------------
    def read(self, job, r):
        seq, t, l = job.seq, job.step, job.layer
        self.note(job, "read_start", r)
        self.out.read_start[seq][t, l] = r
        n_valid = min(t + 1, self.M)
        n_active = -(-n_valid // self.a)
        self.out.layer_steps[l] += (1, n_valid, n_active)
        self.count_lost(l, seq, t, r, n_valid)
        job.left = len(self.rounds)
        job.rounds = [None] * len(self.rounds)
        if self.sequential:
            self.round(job, 0, r)
        else:
            for i in range(len(self.rounds)):
                self.round(job, i, r)

    def round(self, job, i, ready):
        l, heads = job.layer, self.rounds[i]
        last = i == len(self.rounds) - 1
        if self.split:
            k, v = self.k_arrays[l], self.v_arrays[l]
            q0 = max(ready, k["free"])
            q1 = q0 + self.Q
            k["free"] = q1
            v0 = max(q1, v["free"])
            v1 = v0 + self.V
            v["free"] = v1
        else:
            b = self.bank[l]
            q0 = max(ready, b["free"])
            q1 = v0 = q0 + self.Q
            v1 = v0 + self.V
            b["free"] = v1          # with count_holds_bank: extended to the count's end (count())
        n = len(heads)
        integ = self.name(l, "integrators")
        self.stall(integ, BANK_WAIT, q0 - job.times["read_start"], n)
        self.stall(integ, V_WAIT, v0 - q1, n)
        self.busy(self.name(l, "controller"), self.Q, n)            # PWM drivers
        self.busy(integ, self.Q + self.V, n)
        self.busy(self.name(l, "ctp"), self.V, n)
        self.tiles_busy(l, job.seq, [(q0, q1), (v0, v1)])
        job.rounds[i] = {"q0": q0, "q1": q1, "v0": v0, "v1": v1}
        if last:
            job.open = False
            self.open_steps[l].discard(id(job))
            if self.refresh_waiting[l] is not None and not self.open_steps[l]:
                k_due = self.refresh_waiting[l]
                self.refresh_waiting[l] = None
                self.at(v1, self.refresh_decide, l, k_due)
        self.at(q0, self.q_phase, job, i)

    # each phase's end is an event fixed when the phase begins
    def q_phase(self, job, i):
        self.at(job.rounds[i]["q1"], self.q_done, job, i)

    def q_done(self, job, i):
        self.at(job.rounds[i]["v0"], self.v_phase, job, i)

    def v_phase(self, job, i):
        self.at(job.rounds[i]["v1"], self.count, job, i)

    # -- counters, adder tree, routing ------------------------------------------------------------
    def count(self, job, i):
        """The round's V phase is over: it claims the counter bank (a periphery bank shared by
        layers switching from another layer first takes `switch_cycles`), whose sets count
        the round's heads in head order, each when its set is free (a set switching to
        another head than the one it counted last first takes `switch_cycles`)."""
        l, heads = job.layer, self.rounds[i]
        name = self.periphery_name(l, "counters")
        sets = self.H // self.sb
        c = self.counters.setdefault(name, {"free": 0, "layer": -1, "set_free": [0] * sets, "set_user": [-1] * sets})
        v1 = ready = self.now
        if self.by_layers > 1 and c["layer"] not in (-1, l) and self.switch:
            ready = max(v1, c["free"]) + self.switch
            self.busy(name, self.switch, sets)                 # every set of the bank switches
        start = max(ready, c["free"])
        self.asked(c, name, job, start > v1)
        c["layer"] = l
        integ = self.name(l, "integrators")
        self.stall(integ, self.count_cause, start - v1, len(heads))
        end = start
        for h in heads:
            st = h // self.sb
            t0 = max(start, c["set_free"][st])
            if self.switch and c["set_user"][st] not in (-1, h):
                t0 += self.switch
                self.busy(name, self.switch)
            c["set_free"][st], c["set_user"][st] = t0 + self.C, h
            self.busy(name, self.C)
            self.stall(integ, TURN_WAIT, t0 - start)
            end = max(end, t0 + self.C)
        last = i == len(self.rounds) - 1
        c["free"] = end + (self.adder if self.by_layers > 1 and last else 0)
        job.rounds[i].update(c0=start, c1=end)
        if self.sequential and not last:
            self.bank[l]["free"] = max(self.bank[l]["free"], end)   # held through the count
        self.at(end, self.counted, job, i)

    def counted(self, job, i):
        """A round's count is over: the next time-multiplexed round may start; after the last
        round's count, the adder tree."""
        if self.sequential and i + 1 < len(self.rounds):
            self.round(job, i + 1, self.now)
        job.left -= 1
        if job.left == 0:
            start, end = self.now, self.now + self.adder
            self.busy(self.periphery_name(job.layer, "accumulator"), self.adder, self.H)
            self.note(job, "sum", (start, end))
            self.at(end, self.summed, job)

    def summed(self, job):
        routed = self.now + self.R
        self.busy(self.name(job.layer, "controller"), self.R, self.H)
        self.note(job, "routed", routed)
        self.send(job, self.routes[job.layer][1], routed, False, self.outputs_arrive)

    def outputs_arrive(self, job):
        seq, t, l = job.seq, job.step, job.layer
        now = self.now
        self.note(job, "outputs_at", now)
        self.out.layer_end[seq][t, l] = now
        if self.out.detail is not None:
            self.out.detail[seq, t, l] = {**job.times, "rounds": job.rounds}
        if l + 1 < self.L:
            self.at(now, self.begin, seq, t, l + 1)
        else:
            self.host_work(job, self.L, self.step_done)
        self.release_layer(l)

    def step_done(self, job):
        seq, t = job.seq, job.step
        self.out.step_end[seq][t] = self.now
        if t + 1 < self.T:
            self.begin(seq, t + 1, 0)

    # -- retention ------------------------------------------------------------------------------
    def count_lost(self, l, seq, t, r, n_valid):
        rc = self.out.refresh_counts
        rc["slot_reads"][l] += n_valid
        if self.loss_age is None:
            return
        tok = self.token[l, seq]
        valid = (tok >= 0) & (tok > t - self.M) & (tok <= t)
        if self.retention_mode == "time":
            age = r - self.age0[l, seq]
        else:
            age = t - tok
        rc["lost_reads"][l] += int((age[valid] > self.loss_age).sum())

    def start_refreshes(self):
        """At time 0, after the sequences' first decisions: the first refreshes fall due."""
        for l in range(self.L):
            self.at(self.interval, self.refresh_due, l, 1)

    def refresh_due(self, l, k):
        if self.writes_requested[l] >= self.T * self.n_seq:
            return       # every layer step of the run has reached this layer: no more refreshes
        if not self.open_steps[l] and not (self.token[l] >= 0).any():
            self.at(max((k + 1) * self.interval, self.now), self.refresh_due, l, k + 1)   # nothing written
            return
        dacs = self.dacs[l]            # reserved from when they are free: later writes wait
        dacs["from"], dacs["reserved"] = max(self.now, dacs["free"]), []
        if self.open_steps[l]:
            self.refresh_waiting[l] = k
        else:
            self.refresh_decide(l, k)

    def refresh_decide(self, l, k):
        x = self.now
        written = self.token[l] >= 0                  # [seq, M]
        fullest = 0
        for seq in range(self.n_seq):
            last = int(self.last_token[l, seq])
            if last >= 0:
                fullest = max(fullest, -(-min(last + 1, self.M) // self.a))
        dur = fullest * self.per_subtile
        dacs = self.dacs[l]
        if dur:
            arrays = [self.k_arrays[l]["free"], self.v_arrays[l]["free"]] if self.split else [self.bank[l]["free"]]
            start = max([x, dacs["from"]] + arrays + self.tiles_until[l])
            end = start + dur
            dacs["free"], dacs["last"] = end, REFRESH_HOLDER
            for res in (self.k_arrays[l], self.v_arrays[l], self.bank[l]):
                res["free"] = max(res["free"], end)
            self.tiles_until[l] = [end] * self.n_seq
            rc = self.out.refresh_counts
            for seq in range(self.n_seq):
                w = written[seq]
                if w.any() and start - int(self.age0[l, seq][w].min()) > self.safe_age:
                    rc["assumption_violations"][l] += 1
            slots = int(written.sum())
            self.age0[l][written] = end
            self.busy(self.name(l, "writer"), dur, self.KV)
            self.busy(self.name(l, "tiles"), dur, self.KV * self.n_seq)
            rc["refreshes"][l] += 1
            rc["busy_ps"][l] += dur
            rc["slots_refreshed"][l] += slots
            self.out.refreshes[l].append({"decided": x, "start": start, "end": end, "slots": slots})
            self.out.refresh_ends[l].append(end)
        waiting, dacs["reserved"] = dacs["reserved"] or [], None
        for job, arrived in waiting:    # the writes that came meanwhile, in the order they came
            self.claim_dacs(job, arrived)
        self.at(max((k + 1) * self.interval, x), self.refresh_due, l, k + 1)


def schedule(hw, steps: int, detail: bool = False) -> Schedule:
    """The witness's schedule of `steps` steps of every sequence on `hw` (raises
    rules.Unavailable for a policy without a witness rule). detail=True also keeps every
    layer step's phase times (`Schedule.detail[seq, step, layer]`)."""
    return Model(hw, steps, detail).run()
