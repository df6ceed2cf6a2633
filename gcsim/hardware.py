"""Hardware descriptions: YAML files in models/ loaded into typed, immutable objects.

`load_hardware("paper-gpt2")` finds models/paper-gpt2.yaml (or takes a path) and
validates it: unknown keys, missing keys, wrong types and out-of-range values raise
`HardwareError` naming the file and the field. `hw.derive(...)` returns a changed
copy, validated again, e.g. `hw.derive(numerics={"q_levels": None})`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from . import safeyaml
from .errors import HardwareError  # noqa: F401  (also importable from here)
from .resources import MODELS_DIR
from .safefile import read_bytes

PS_PER_NS = 1000


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field (bounds inclusive unless open), with its unit."""
    lo: float
    hi: float
    unit: str = ""
    lo_open: bool = False
    hi_open: bool = False
    whole_ps: bool = False  # a time in ns that must be a whole number of picoseconds

    def __contains__(self, v) -> bool:
        return (v > self.lo if self.lo_open else v >= self.lo) and (v < self.hi if self.hi_open else v <= self.hi)

    def text(self) -> str:
        def fmt(x):
            return str(int(x)) if float(x).is_integer() and abs(x) < 1e9 else f"{x:g}"
        text = f"{fmt(self.lo)} {'<' if self.lo_open else '<='} x {'<' if self.hi_open else '<='} {fmt(self.hi)}"
        return text + (f" {self.unit}" if self.unit else "") + (", whole ps" if self.whole_ps else "")


def num(lo, hi, unit="", *, lo_open=False, hi_open=False, whole_ps=False, doc="", **kw):
    """A numeric field with its allowed range, unit and meaning (for `gcsim describe --fields`)."""
    return field(metadata={"range": Range(lo, hi, unit, lo_open, hi_open, whole_ps), "doc": doc}, **kw)


def choice(options, doc="", **kw):
    return field(metadata={"choices": tuple(options), "doc": doc}, **kw)


def levels(doc, **kw):
    return field(metadata={"range": Range(2, 1 << 16, "levels"), "doc": doc + "; null = quantization off"}, **kw)


def table(value_range: Range, doc="", **kw):
    """A mapping of names to numbers, each in `value_range`."""
    return field(metadata={"value_range": value_range, "doc": doc}, **kw)


def policy(kind, default, doc="", **kw):
    """A plug-in choice (gcsim/sim/policies/): NAME or {impl: NAME, ...params}."""
    return field(default_factory=lambda: Policy(default), metadata={"policy": kind, "doc": doc}, **kw)


@dataclass(frozen=True, eq=False)
class Policy:
    """A plug-in choice (gcsim/sim/policies/): `NAME` or `{impl: NAME, ...params}` in YAML.
    Compares equal to its name, so `periphery.gqa_mapping == "pipelined"` reads as before."""
    impl: str
    params: dict = field(default_factory=dict)

    def __eq__(self, other):
        if isinstance(other, str):
            return self.impl == other
        return isinstance(other, Policy) and (self.impl, self.params) == (other.impl, other.params)

    def __hash__(self):
        return hash(self.impl)

    def __str__(self):
        return self.impl


COUNT = 1 << 16  # a generous upper bound for counts of layers, heads, sharing factors
NS_MAX = 1e12    # 1000 s in ns: longer than any run; keeps times in int64 picoseconds


@dataclass(frozen=True)
class Shape:
    """Model shape and array geometry."""

    layers: int = num(1, COUNT, "layers", doc="transformer layers")
    heads: int = num(1, COUNT, "heads", doc="query heads per layer")
    kv_heads: int = num(1, COUNT, "heads", doc="K/V heads per layer (divides heads; GQA when fewer)")
    d_head: int = num(1, 1 << 14, "elements", doc="head dimension (at most array_size)")
    window: int = num(1, 1 << 24, "tokens", doc="M: tokens kept per head (ring buffer), a multiple of array_size")
    array_size: int = num(1, 1 << 14, "cells", doc="sub-tile arrays are array_size x array_size gain cells")
    # The rest of the network, for the host's roofline (gcsim/system/, docs/system.md); null:
    # not given (a description without a host device needs none of them).
    d_model: typing.Optional[int] = num(1, 1 << 20, "elements", doc="residual-stream width (host roofline)",
                                        default=None)
    d_ff: typing.Optional[int] = num(1, 1 << 22, "elements", doc="MLP hidden width (host roofline)", default=None)
    vocab: typing.Optional[int] = num(1, 1 << 24, "tokens", doc="vocabulary size: the LM head's width (host roofline)",
                                      default=None)
    mlp: str = choice(("plain", "gated"), "MLP form: plain (up, activation, down: GPT-2) | gated (gate and up, "
                      "SiLU x up, down: Llama, SmolLM2)", default="gated")

    @property
    def n_sub_tiles(self) -> int:
        return self.window // self.array_size

    @property
    def group_size(self) -> int:
        """Query heads per K/V head (1 = plain multi-head attention)."""
        return self.heads // self.kv_heads


@dataclass(frozen=True)
class Retention:
    """Retention of the stored K/V and its refresh."""

    mode: str = choice(("time", "per_token", "off"), "age in simulated time | per token (paper's code) | no decay",
                       default="time")
    tau_ns: float = num(1e-3, 1e18, "ns", lo_open=False, doc="retention time constant (mode time)", default=5.0e6)
    rate_per_token: float = num(0, 1e3, "1/token", doc="decay rate per token (mode per_token)", default=1.6e-4)
    # refresh policy (gcsim/sim/refresh.py): none | periodic rewrite of every valid slot
    refresh: Policy = policy("refresh", "none", "refresh policy: none | periodic (gcsim/sim/policies/refresh.py)")
    refresh_interval_ns: float = num(0, NS_MAX, "ns", whole_ps=True, doc="time between periodic refreshes",
                                     default=0.0)
    refresh_ns_per_subtile: float = num(0, NS_MAX, "ns", whole_ps=True, doc="time to read and rewrite one sub-tile",
                                        default=0.0)
    loss_fraction: float = num(0, 1, "", lo_open=True, hi_open=True, doc="a slot read with decay below this counts as lost",
                               default=0.5)


@dataclass(frozen=True)
class Noise:
    """Device non-idealities (gcsim/noise.py): seeded, all off (0) by default.

    Every draw is a pure function of (seed, position), so the reference model and the
    simulator draw the same values."""

    seed: int = num(0, 999_999_999, "", doc="seed of every draw (stateless counter-based generator)", default=0)
    read_sigma_rel: float = num(0, 1, "relative", doc="read noise: sigma of each bit-line charge read (S of a K "
                                "column, A of a V column), relative to the charge; new each read", default=0.0)
    write_sigma_v: float = num(0, 1, "V", doc="write noise: sigma added to each stored k', v' after the write DAC; "
                               "new each write", default=0.0)
    cell_sigma_rel: float = num(0, 1, "relative", doc="fixed-pattern cell-to-cell spread: each cell's current "
                                "is f(y) x (1 + sigma z), z fixed per cell", default=0.0)
    tau_sigma_ln: float = num(0, 5, "ln", doc="retention spread: sigma of ln(tau) per cell (log-normal, median "
                              "the retention's tau or 1/rate), fixed per cell", default=0.0)

    @property
    def active(self) -> bool:
        return self.read_sigma_rel > 0 or self.write_sigma_v > 0 or self.per_cell

    @property
    def per_cell(self) -> bool:
        """Fixed-pattern per-cell draws: the bank read needs the per-cell form of physics."""
        return self.cell_sigma_rel > 0 or self.tau_sigma_ln > 0


@dataclass(frozen=True)
class Numerics:
    """DACs, counters, cell law, saturation, retention."""

    cell_law: str = choice(("linear", "cubic"), "gain-cell current law", default="cubic")
    q_levels: typing.Optional[int] = levels("PWM DAC levels of q", default=16)
    q_range: tuple[float, float] = num(0, 1, "fraction of T_max", doc="PWM DAC range [lo, hi]", default=(0.0, 1.0))
    kv_levels: typing.Optional[int] = levels("write DAC levels of k and v", default=8)
    kv_range_v: tuple[float, float] = num(-5, 5, "V", doc="write DAC voltage range [lo, hi]", default=(0.0, 0.9))
    out_levels: typing.Optional[int] = levels("output counter levels over [-1, 1]", default=32)
    s_sat: float = num(1e-6, 1e9, "uA x T_max", doc="HardSigmoid saturation S_sat", default=80.0)
    out_sat: float = num(1e-6, 1e9, "uA x T_max", doc="output conversion full scale", default=40.0)
    retention: Retention = field(default_factory=Retention)
    noise: Noise = field(default_factory=Noise)
    dtype: str = choice(("float32", "float64"), "simulator arithmetic (validation reruns in float64)",
                        default="float32")


@dataclass(frozen=True)
class Timing:
    """Clock and phase times."""

    clock_mhz: float = num(1e-3, 1e6, "MHz", doc="digital clock; its period is rounded to whole ps", default=1000.0)
    t_max_ns: float = num(0, 1e6, "ns", lo_open=True, doc="longest PWM pulse T_max", default=15.0)
    nominal_token_period_ns: float = num(0, NS_MAX, "ns", lo_open=True, whole_ps=True,
                                         doc="token period the reference model assumes", default=800.0)
    phases_ns: dict[str, float] = table(Range(0, 1e9, "ns", whole_ps=True),
                                        "time of each phase of a layer step (whole clock cycles): "
                                        "write, q_phase, v_phase, output_count, adder_tree, routing",
                                        default_factory=dict)
    host_ns_per_layer: float = num(0, NS_MAX, "ns", whole_ps=True, doc="host projections/MLP per layer",
                                   default=0.0)

    PHASES = ("write", "q_phase", "v_phase", "output_count", "adder_tree", "routing")

    @property
    def clock_period_ps(self) -> int:
        return round(1e6 / self.clock_mhz)

    def phase_ps(self, name: str) -> int:
        return round(self.phases_ns[name] * PS_PER_NS)

    @property
    def nominal_token_period_ps(self) -> int:
        return round(self.nominal_token_period_ns * PS_PER_NS)

    @property
    def layer_ns(self) -> float:
        return float(sum(self.phases_ns.values()))


@dataclass(frozen=True)
class Link:
    """One link of the interconnect."""

    latency_ns: float = num(0, NS_MAX, "ns", whole_ps=True, doc="latency of a transfer", default=0.0)
    gbps: float = num(0, 1e9, "Gbit/s", doc="bandwidth; 0 = unlimited (at least 1e-3 otherwise)", default=0.0)


@dataclass(frozen=True)
class Edge:
    """One directed link of the interconnect topology (gcsim/sim/blocks/interconnect.py)."""

    src: str = field(metadata={"doc": "'host' or a node"})
    dst: str = field(metadata={"doc": "'host' or a node"})
    latency_ns: float = num(0, NS_MAX, "ns", whole_ps=True, doc="latency of a transfer", default=0.0)
    gbps: float = num(0, 1e9, "Gbit/s", doc="bandwidth; 0 = unlimited", default=0.0)
    pj_per_bit: typing.Optional[float] = num(0, 1e6, "pJ/bit", doc="energy per bit; null = energy.link_pj_per_bit",
                                             default=None)
    capacity: int = num(0, COUNT, "messages", doc="messages in flight at once (back-pressure); 0 = unlimited",
                        default=0)


@dataclass(frozen=True)
class Node:
    """A place in the topology holding layers (a chip, a group of head banks)."""

    first_layer: int = num(0, COUNT, "layer", doc="first layer placed on the node")
    last_layer: int = num(0, COUNT, "layer", doc="last layer placed on the node")


@dataclass(frozen=True)
class Interconnect:
    """Bits per element and the links."""

    q_bits: int = num(1, 64, "bits", doc="bits per q element on the host-to-controller link", default=4)
    kv_bits: int = num(1, 64, "bits", doc="bits per k/v element on the host-to-controller link", default=3)
    out_bits: int = num(1, 64, "bits", doc="bits per output element on the bank-to-host link", default=16)
    links: dict[str, Link] = field(default_factory=dict, metadata={
        "doc": "host_to_controller, bank_to_host: {latency_ns, gbps}"})
    nodes: dict[str, Node] = field(default_factory=dict, metadata={
        "doc": "topology: nodes holding layers (with edges; instead of links)"})
    edges: dict[str, Edge] = field(default_factory=dict, metadata={
        "doc": "topology: named directed edges {src, dst, latency_ns, gbps, pj_per_bit}"})

    LINKS = ("host_to_controller", "bank_to_host")


@dataclass(frozen=True)
class Energy:
    """Energy per action and static power."""

    actions_pj: dict[str, float] = table(Range(0, 1e9, "pJ"), "energy per action: " + ", ".join(
        ("k_column_read", "v_row_read", "output_conversion", "adder_tree_add", "output_scaler", "control",
         "q_pwm_drive", "kv_write_dac")), default_factory=dict)
    link_pj_per_bit: float = num(0, 1e6, "pJ/bit", doc="energy per routed bit", default=0.0)
    static_mw: dict[str, float] = table(Range(0, 1e9, "mW"), "static power per block", default_factory=dict)
    items: dict[str, list] = field(default_factory=dict, metadata={
        "doc": "paper item -> the actions (and 'link') it sums, for the side-by-side report"})

    ACTIONS = ("k_column_read", "v_row_read", "output_conversion", "adder_tree_add",
               "output_scaler", "control", "q_pwm_drive", "kv_write_dac")


@dataclass(frozen=True)
class Area:
    """Area figures."""

    head_mm2: float = num(0, 1e6, "mm2", doc="area per head including control", default=0.5)
    gain_cell_um2: float = num(0, 1e6, "um2", doc="area of one gain cell", default=1.0)


@dataclass(frozen=True)
class Periphery:
    """Sharing of periphery, GQA mapping, sequences in flight."""

    gqa_mapping: Policy = policy("gqa", "time_multiplexed", "how query heads sharing a K/V bank read it")
    counters: Policy = policy("counters", "turns", "output counters: turns | double_buffered")
    issue: Policy = policy("issue", "serial", "when another sequence's layer step may start: serial | overlap_write")
    counters_shared_by: int = num(1, COUNT, "heads", doc="heads of a layer sharing one set of output counters",
                                  default=1)
    counters_shared_by_layers: int = num(1, COUNT, "layers", doc="layers sharing one periphery bank", default=1)
    switch_cycles: int = num(0, COUNT, "cycles", doc="clock cycles a shared unit takes to switch to another user: "
                             "an output counter set before another head's turn, a periphery bank shared by layers "
                             "before another layer's count", default=0)
    sequences: int = num(1, COUNT, "sequences", doc="independent sequences in flight", default=1)
    host_engines: int = num(1, COUNT, "engines", doc="host engines computing projections/MLP", default=1)
    batching: Policy = policy("batching", "per_sequence", "how the host groups the sequences' work: per_sequence "
                              "| lockstep (one batch of every sequence in flight per layer; docs/system.md)")
    admission: Policy = policy("admission", "fcfs", "serving: which waiting request takes a free K/V bank: fcfs "
                               "| shortest_first (gcsim/sim/policies/admission.py)")


PRECISIONS = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}  # bytes per element


@dataclass(frozen=True)
class Host:
    """The host device computing the projections, MLP and LM head (gcsim/system/, docs/system.md).

    `device` names a preset (models/hosts/NAME.yaml) or a path to one; every other field, when
    given, overrides the preset's. null device (the default): no host model, the host takes
    `timing.host_ns_per_layer` and no energy, as in the paper's accelerator-only figures."""

    device: typing.Optional[str] = field(default=None, metadata={
        "doc": "host preset: a name in models/hosts/ (rtx4090, h100-sxm, jetson-nano, apple-m2-max) or a "
               "path; null = no host model. Every other host field: null = the preset's"})
    precision: typing.Optional[str] = choice(tuple(PRECISIONS), "weights, activations and K/V cache on the "
                                             "host: sets bytes per element and which peak applies", default=None)
    peak_tflops: typing.Optional[dict[str, float]] = table(Range(0, 1e6, "TFLOP/s", lo_open=True),
                                                           "peak dense FLOP/s per precision (datasheet)",
                                                           default=None)
    memory_gb_per_s: typing.Optional[float] = num(0, 1e6, "GB/s", lo_open=True, doc="peak memory bandwidth "
                                                  "(datasheet)", default=None)
    memory_gb: typing.Optional[float] = num(0, 1e6, "GB", lo_open=True, doc="memory capacity: the weights and "
                                            "the GPU-only baseline's K/V cache must fit (checked where reported)",
                                            default=None)
    compute_efficiency: typing.Optional[float] = num(0, 1, "", lo_open=True, doc="fraction of peak FLOP/s a "
                                                     "matrix product reaches", default=None)
    memory_efficiency: typing.Optional[float] = num(0, 1, "", lo_open=True, doc="fraction of peak bandwidth a "
                                                    "streaming read reaches", default=None)
    launch_overhead_ns: typing.Optional[float] = num(0, 1e9, "ns", whole_ps=True, doc="added to every kernel "
                                                     "(launch and dispatch; calibrate to a measurement)",
                                                     default=None)
    busy_power_w: typing.Optional[float] = num(0, 1e6, "W", doc="power drawn while a kernel runs, above idle "
                                               "(dynamic, as the paper measured its GPUs)", default=None)
    pj_per_flop: typing.Optional[float] = num(0, 1e6, "pJ", doc="energy per FLOP, added to busy power",
                                              default=None)
    pj_per_byte: typing.Optional[float] = num(0, 1e6, "pJ", doc="energy per byte of memory traffic, added to "
                                              "busy power", default=None)
    attention: typing.Optional[str] = choice(("fused", "unfused"), "GPU-only baseline's attention: fused (one "
                                             "kernel reads K and V) | unfused (Q.K^T, softmax, .V: three kernels, "
                                             "scores through memory)", default=None)


@dataclass(frozen=True)
class CostModel:
    """How the phase times and the energy table apply to this design (gcsim/costs.py)."""

    model: str = choice(("scaled", "table"),
                        "scaled: the table and the adder-tree time are the calibration design's (the paper's) "
                        "and are scaled to this design; table: used as written", default="scaled")
    array_read: str = choice(("per_cell", "charge"),
                             "K/V array read energy. per_cell: energy.actions_pj k_column_read / v_row_read per "
                             "active column / row; charge: in proportion to the |I| x pulse width the read's "
                             "cells integrate (supply x charge), calibrated on the paper's trace "
                             "(gcsim/costs.py); needs a functional run", default="per_cell")


@dataclass(frozen=True)
class Hardware:
    name: str = field(metadata={"doc": "the description's name"})
    shape: Shape = field(metadata={"doc": "model shape and array geometry"})
    description: str = field(default="", metadata={"doc": "free text"})
    numerics: Numerics = field(default_factory=Numerics)
    timing: Timing = field(default_factory=Timing)
    energy: Energy = field(default_factory=Energy)
    interconnect: Interconnect = field(default_factory=Interconnect)
    area: Area = field(default_factory=Area)
    periphery: Periphery = field(default_factory=Periphery)
    costs: CostModel = field(default_factory=CostModel)
    host: Host = field(default_factory=Host)
    source: str = "<in memory>"

    def derive(self, **changes) -> "Hardware":
        """A validated copy with nested fields changed, e.g.
        `hw.derive(shape={"window": 256}, numerics={"retention": {"mode": "off"}})`."""
        return derived(self, changes)

    @property
    def decay_tau_ps(self) -> float | None:
        ret = self.numerics.retention
        return ret.tau_ns * PS_PER_NS if ret.mode == "time" else None


def derived(hw: Hardware, changes: dict, plain: dict | None = None) -> Hardware:
    """hw.derive(**changes); `plain` is to_dict(hw) when the caller has it (a sweep derives
    thousands of points from one description)."""
    data = _merge(to_dict(hw) if plain is None else plain, changes)
    data.pop("source", None)
    source = hw.source if hw.source.endswith("(derived)") else f"{hw.source} (derived)"
    return from_dict(data, source=source)


def to_dict(obj) -> dict:
    """Plain data; a policy is its name, or {impl: NAME, ...params} when it has parameters."""
    def plain(x):
        if isinstance(x, dict):
            if set(x) == {"impl", "params"} and isinstance(x["impl"], str):
                return {"impl": x["impl"], **x["params"]} if x["params"] else x["impl"]
            return {k: plain(v) for k, v in x.items()}
        return x
    return plain(_asdict(obj))


def _asdict(x):
    """dataclasses.asdict for a description (dataclasses, dicts, lists, tuples of plain values)
    without its deep copy of every leaf: five times faster, which a 10,000-point sweep notices."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {name: _asdict(getattr(x, name)) for name in _field_names(type(x))}
    if isinstance(x, dict):
        return {_asdict(k): _asdict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_asdict(v) for v in x)
    if isinstance(x, (str, int, float, bool, type(None))):
        return x
    import copy
    return copy.deepcopy(x)


@functools.cache
def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _merge(base: dict, changes: dict) -> dict:
    """`changes` over `base`: mappings merge key by key at every level, anything else replaces."""
    out = dict(base)
    for key, val in changes.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict) and "impl" in out[key] and \
                val.get("impl", out[key]["impl"]) != out[key]["impl"]:
            out[key] = val  # another policy: its own parameters only
        elif isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], val)
        else:
            out[key] = val
    return out


FIELD_PART = re.compile(r"[A-Za-z0-9_-]+")


def parse_overrides(items: list[str]) -> dict:
    """['a.b=1', ...] (the --set option) -> {'a': {'b': 1}}, values parsed by the safe YAML
    loader. A field set twice, or set both whole and inside, is an error."""
    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        parts = key.split(".")
        if not sep or not all(FIELD_PART.fullmatch(part) for part in parts):
            raise HardwareError(f"--set: expected FIELD=VALUE with FIELD a dotted field name (e.g. "
                                f"numerics.q_levels=null), found {_shown(item)}")
        try:
            value = safeyaml.load(text)
        except safeyaml.YamlLimitError as exc:
            raise HardwareError(f"--set {key}: the value is {exc}") from None
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise HardwareError(f"--set {key}: '{'.'.join(parts[:i + 1])}' is already set to a value by an "
                                    "earlier --set")
        if parts[-1] in node:
            raise HardwareError(f"--set {key}: set twice (or together with one of its fields)")
        node[parts[-1]] = value
    return out


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _shown(value) -> str:
    """A value for an error message, shortened: a description may hold long text."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_range(value, rng: Range | None, where: str, source: str):
    if rng is None or value is None:
        return
    if value not in rng:
        raise HardwareError(f"{source}: field '{where}': value {value!r} is out of range (allowed {rng.text()})")
    if rng.whole_ps:
        ps = value * PS_PER_NS
        if abs(ps - round(ps)) > 1e-6 * max(1.0, abs(ps)):
            raise HardwareError(f"{source}: field '{where}': {value!r} ns is not a whole number of picoseconds "
                                f"(simulated time is integer ps; nearest {round(ps) / PS_PER_NS:g} ns)")


def _convert(value, tp, where: str, source: str, meta=None):
    """Check `value` against annotation `tp` and the field's metadata (range, choices),
    converting YAML lists to tuples."""
    meta = meta or {}

    def fail(expected):
        raise HardwareError(f"{source}: field '{where}': expected {expected}, found "
                            f"{type(value).__name__} {_shown(value)}")

    if tp is Policy:
        if isinstance(value, str):
            value = Policy(value)
        elif isinstance(value, dict) and isinstance(value.get("impl"), str):
            params = dict(value.get("params") or {})
            params.update({k: v for k, v in value.items() if k not in ("impl", "params")})
            value = Policy(value["impl"], params)
        else:
            fail("a policy name or a mapping {impl: NAME, ...parameters}")
        from .sim.policies import check_policy  # the registry of plug-in classes
        err = check_policy(meta["policy"], value)
        if err:
            raise HardwareError(f"{source}: field '{where}': {err}")
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], where, source, meta)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail("a mapping")
        return _build(tp, value, where, source)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            fail(f"a list of {len(args)} numbers")
        out = tuple(_convert(v, a, f"{where}[{i}]", source, meta) for i, (v, a) in enumerate(zip(value, args)))
        if out[0] >= out[1]:
            raise HardwareError(f"{source}: field '{where}': expected lo < hi, found {list(out)}")
        return out
    if origin is dict:
        if not isinstance(value, dict):
            fail("a mapping")
        _, vt = typing.get_args(tp)
        vmeta = {"range": meta.get("value_range")}
        return {str(k): _convert(v, vt, f"{where}.{k}", source, vmeta) for k, v in value.items()}
    if origin is list or tp is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            fail("a list of names")
        return list(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 5.0e6 (no sign in the exponent) as a string
            try:
                value = float(value)
            except ValueError:
                fail("a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number")
        if not math.isfinite(value):
            fail("a finite number")
        value = float(value)
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
    elif tp is str:
        if isinstance(value, bool):  # YAML 1.1 reads off/on/no/yes as booleans
            value = "on" if value else "off"
        if not isinstance(value, str):
            fail("a string")
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise HardwareError(f"{source}: field '{where}': expected one of {list(choices)}, found {_shown(value)}")
        return value
    else:
        raise HardwareError(f"{source}: field '{where}': unsupported type {_type_name(tp)}")
    _check_range(value, meta.get("range"), where, source)
    return value


@functools.cache
def _schema(cls) -> tuple[dict, dict]:
    """A description class's resolved annotations and fields, once per class: resolving the
    annotations (strings here) was most of the time of a sweep's planning, 10,000 points."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}


def _build(cls, data: dict, prefix: str, source: str):
    hints, fields = _schema(cls)
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise HardwareError(f"{source}: unknown field '{_shown(where)[1:-1]}'; expected one of {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        where = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise HardwareError(f"{source}: missing required field '{where}'")
            continue
        kwargs[name] = _convert(data[name], hints[name], where, source, f.metadata)
    return cls(**kwargs)


def _check_consistency(hw: Hardware, source: str) -> None:
    s = hw.shape
    if s.heads % s.kv_heads:
        raise HardwareError(f"{source}: field 'shape.kv_heads': {s.kv_heads} does not divide heads = {s.heads}")
    if s.window % s.array_size:
        raise HardwareError(f"{source}: field 'shape.window': {s.window} is not a multiple of array_size = {s.array_size}")
    if s.d_head > s.array_size:
        raise HardwareError(f"{source}: field 'shape.d_head': {s.d_head} exceeds array_size = {s.array_size} "
                            "(a head dimension is one array row/column)")
    missing = [p for p in Timing.PHASES if p not in hw.timing.phases_ns]
    extra = [p for p in hw.timing.phases_ns if p not in Timing.PHASES]
    if missing or extra:
        raise HardwareError(f"{source}: field 'timing.phases_ns': expected exactly {list(Timing.PHASES)}, "
                            f"missing {missing}, unknown {extra}")
    for p, v in hw.timing.phases_ns.items():
        if v < 0:
            raise HardwareError(f"{source}: field 'timing.phases_ns.{p}': value {v} is negative")
    missing = [a for a in Energy.ACTIONS if a not in hw.energy.actions_pj]
    extra = [a for a in hw.energy.actions_pj if a not in Energy.ACTIONS]
    if missing or extra:
        raise HardwareError(f"{source}: field 'energy.actions_pj': expected exactly {list(Energy.ACTIONS)}, "
                            f"missing {missing}, unknown {extra}")
    for a, v in hw.energy.actions_pj.items():
        if v < 0:
            raise HardwareError(f"{source}: field 'energy.actions_pj.{a}': value {v} is negative")
    known = set(Energy.ACTIONS) | {"link"}
    for item, acts in hw.energy.items.items():
        bad = [a for a in acts if a not in known]
        if bad:
            raise HardwareError(f"{source}: field 'energy.items.{item}': unknown actions {bad}")
    _check_topology(hw, source)
    _check_host(hw, source)
    extra = [k for k in hw.interconnect.links if k not in Interconnect.LINKS]
    if extra:
        raise HardwareError(f"{source}: field 'interconnect.links': unknown links {extra}; "
                            f"expected some of {list(Interconnect.LINKS)}")
    for name, link in hw.interconnect.links.items():
        if 0 < link.gbps < 1e-3:
            raise HardwareError(f"{source}: field 'interconnect.links.{name}.gbps': value {link.gbps!r} is out of "
                                "range (allowed 0 for unlimited, or 1e-3 <= x <= 1e9 Gbit/s)")
    if hw.timing.layer_ns <= 0:
        raise HardwareError(f"{source}: field 'timing.phases_ns': the phases add up to 0 ns; a layer step takes time")
    step_ps = hw.timing.clock_period_ps
    for p in Timing.PHASES:
        if hw.timing.phase_ps(p) % step_ps:
            raise HardwareError(f"{source}: field 'timing.phases_ns.{p}': {hw.timing.phases_ns[p]} ns is not a "
                                f"whole number of clock cycles ({step_ps} ps)")
    if hw.shape.layers % hw.periphery.counters_shared_by_layers:
        raise HardwareError(f"{source}: field 'periphery.counters_shared_by_layers': "
                            f"{hw.periphery.counters_shared_by_layers} does not divide layers = {hw.shape.layers}")
    ret = hw.numerics.retention
    if ret.refresh == "periodic":  # refresh (gcsim/sim/refresh.py) restores ages: needs time-based retention
        if ret.mode != "time" or ret.refresh_interval_ns <= s.n_sub_tiles * ret.refresh_ns_per_subtile:
            raise HardwareError(f"{source}: field 'numerics.retention.refresh': periodic refresh needs mode 'time' "
                                f"and refresh_interval_ns > n_sub_tiles x refresh_ns_per_subtile "
                                f"({s.n_sub_tiles} x {ret.refresh_ns_per_subtile} ns)")
    p = hw.periphery
    if p.gqa_mapping == "pipelined" and (p.counters_shared_by > 1 or p.counters_shared_by_layers > 1):
        raise HardwareError(f"{source}: field 'periphery.gqa_mapping': 'pipelined' needs unshared output "
                            f"counters (counters_shared_by and counters_shared_by_layers = 1)")
    if hw.shape.heads % hw.periphery.counters_shared_by:
        raise HardwareError(f"{source}: field 'periphery.counters_shared_by': {hw.periphery.counters_shared_by} "
                            f"does not divide heads = {hw.shape.heads}")


def _check_host(hw: Hardware, source: str) -> None:
    """A host device resolves (its preset exists, every figure given) and the network's
    non-attention shape it needs is there."""
    from .system.device import resolve   # the presets (models/hosts/)
    if resolve(hw.host, source) is None:
        return
    for key in ("d_model", "d_ff", "vocab"):
        if getattr(hw.shape, key) is None:
            raise HardwareError(f"{source}: field 'shape.{key}': a host device (host.device = "
                                f"{hw.host.device!r}) needs the network's shape: give shape.{key}")


def _check_topology(hw: Hardware, source: str) -> None:
    ic, L = hw.interconnect, hw.shape.layers
    if not ic.nodes and not ic.edges:
        return
    if any(link.latency_ns or link.gbps for link in ic.links.values()):  # zero links (an extended base's) are unused
        raise HardwareError(f"{source}: field 'interconnect.links': a topology (nodes and edges) replaces the links; "
                            f"give link latencies and bandwidths on the edges (links must be absent or all zero)")
    if not ic.nodes or not ic.edges:
        raise HardwareError(f"{source}: field 'interconnect.nodes': a topology needs both nodes and edges")
    if "host" in ic.nodes:
        raise HardwareError(f"{source}: field 'interconnect.nodes.host': 'host' is the host port, not a node")
    placed = []
    for name, node in ic.nodes.items():
        a, b = node.first_layer, node.last_layer
        if not a <= b < L:
            raise HardwareError(f"{source}: field 'interconnect.nodes.{name}': expected first_layer <= last_layer "
                                f"< {L}, found {a} and {b}")
        placed += range(a, b + 1)
    if sorted(placed) != list(range(L)):
        raise HardwareError(f"{source}: field 'interconnect.nodes': every layer 0..{L - 1} must be on exactly one "
                            f"node, found {sorted(placed)}")
    for name, e in ic.edges.items():
        for end in ("src", "dst"):
            if getattr(e, end) != "host" and getattr(e, end) not in ic.nodes:
                raise HardwareError(f"{source}: field 'interconnect.edges.{name}.{end}': unknown node "
                                    f"{_shown(getattr(e, end))}; expected 'host' or one of {sorted(ic.nodes)}")
        if 0 < e.gbps < 1e-3:
            raise HardwareError(f"{source}: field 'interconnect.edges.{name}.gbps': value {e.gbps!r} is out of "
                                "range (allowed 0 for unlimited, or 1e-3 <= x <= 1e9 Gbit/s)")


TOP_LEVEL = tuple(f.name for f in dataclasses.fields(Hardware) if f.name != "source")
MAX_EXTENDS = 8  # a chain of bases longer than this is a mistake (or a cycle)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def from_dict(data: dict, source: str = "<in memory>") -> Hardware:
    if not isinstance(data, dict):
        raise HardwareError(f"{source}: expected a mapping at the top level, found {type(data).__name__}")
    hw = _build(Hardware, {k: v for k, v in data.items() if k != "source"}, "", source)
    hw = dataclasses.replace(hw, source=source)
    _check_consistency(hw, source)
    return hw


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """A path for a Path object or text that looks like one (a separator or a .yaml/.yml
    suffix); otherwise a model name, which resolves only inside the models folder."""
    if isinstance(name_or_path, os.PathLike):
        return Path(name_or_path)
    if not isinstance(name_or_path, str):
        raise HardwareError(f"a hardware description is a model name or a path, found "
                            f"{type(name_or_path).__name__} {_shown(name_or_path)}")
    text = name_or_path
    if "/" in text or os.sep in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    if not NAME_PATTERN.fullmatch(text) or text in (".", ".."):
        raise HardwareError(f"{_shown(text)} is not a model name (letters, digits, '.', '_', '-'); "
                            f"shipped models: {shipped_models()}")
    return MODELS_DIR / f"{text}.yaml"


def shipped_models() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def _read_description(path: Path) -> dict:
    """The YAML mapping of one description file, through the safe loader."""
    if not os.path.lexists(path):
        raise HardwareError(f"{path}: hardware description not found; shipped models: {shipped_models()}")
    raw = read_bytes(path, "hardware description", safeyaml.MAX_BYTES, HardwareError)
    try:
        data = safeyaml.load(raw)
    except safeyaml.YamlLimitError as exc:
        raise HardwareError(f"{path}: {exc}") from None
    # Messages quote a description's keys and values: make sure this is one before quoting
    # anything (the path may name any file, e.g. -m /etc/shadow).
    if not isinstance(data, dict) or not any(k in data for k in (*TOP_LEVEL, "extends")):
        raise HardwareError(f"{path}: not a gcsim hardware description (expected a YAML mapping with "
                            f"'name' and 'shape', or 'extends')")
    return data


def resolve_description(name_or_path: str | os.PathLike, _chain: tuple = ()) -> tuple[dict, str]:
    """The description's data with its `extends:` chain applied (the base first, then this
    file's fields over it; mappings merge key by key), and its source for messages."""
    path = resolve_model_path(name_or_path)
    data = _read_description(path)
    if path.resolve() in _chain:
        raise HardwareError(f"{path}: field 'extends': the chain of bases loops back to this file")
    if len(_chain) >= MAX_EXTENDS:
        raise HardwareError(f"{path}: field 'extends': more than {MAX_EXTENDS} bases in a chain")
    base = data.pop("extends", None)
    if base is None:
        return data, str(path)
    if not isinstance(base, str):
        raise HardwareError(f"{path}: field 'extends': expected a model name or a path, found "
                            f"{type(base).__name__} {_shown(base)}")
    if "/" in base or base.endswith((".yaml", ".yml")):
        base = path.parent / base  # a path relative to the extending file
    base_data, base_source = resolve_description(base, _chain + (path.resolve(),))
    return _merge(base_data, data), f"{path} (extends {base_source})"


def load_hardware(name_or_path: str | os.PathLike = "paper-gpt2") -> Hardware:
    """Load and validate a hardware description by name (models/NAME.yaml) or path; a
    description may name a base with `extends:` and override some of its fields."""
    data, source = resolve_description(name_or_path)
    return from_dict(data, source=source)
