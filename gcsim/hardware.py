"""Hardware descriptions: YAML files in models/ loaded into typed, immutable objects.

`load_hardware("paper-gpt2")` finds models/paper-gpt2.yaml (or takes a path) and
validates it: unknown keys, missing keys, wrong types and out-of-range values raise
`HardwareError` naming the file and the field. `hw.derive(...)` returns a changed
copy, validated again, e.g. `hw.derive(numerics={"q_levels": None})`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import HardwareError  # noqa: F401  (also importable from here)
from .resources import MODELS_DIR

PS_PER_NS = 1000


def _positive(v):
    return v > 0


def _nonneg(v):
    return v >= 0


def _fraction(v):
    return 0 < v < 1


def _levels(v):
    return v is None or v >= 2


CHECK_TEXT = {"_positive": "> 0", "_nonneg": ">= 0", "_levels": "null (off) or >= 2", "_fraction": "0 < x < 1"}


@dataclass(frozen=True)
class Shape:
    layers: int = field(metadata={"check": _positive})
    heads: int = field(metadata={"check": _positive})
    kv_heads: int = field(metadata={"check": _positive})
    d_head: int = field(metadata={"check": _positive})
    window: int = field(metadata={"check": _positive})
    array_size: int = field(metadata={"check": _positive})

    @property
    def n_sub_tiles(self) -> int:
        return self.window // self.array_size

    @property
    def group_size(self) -> int:
        """Query heads per K/V head (1 = plain multi-head attention)."""
        return self.heads // self.kv_heads


@dataclass(frozen=True)
class Retention:
    mode: str = field(default="time", metadata={"choices": ("time", "per_token", "off")})
    tau_ns: float = field(default=5.0e6, metadata={"check": _positive})
    rate_per_token: float = field(default=1.6e-4, metadata={"check": _nonneg})
    # refresh policy (gcsim/sim/refresh.py): none | periodic rewrite of every valid slot
    refresh: str = field(default="none", metadata={"choices": ("none", "periodic")})
    refresh_interval_ns: float = field(default=0.0, metadata={"check": _nonneg})
    refresh_ns_per_subtile: float = field(default=0.0, metadata={"check": _nonneg})
    loss_fraction: float = field(default=0.5, metadata={"check": _fraction})


@dataclass(frozen=True)
class Numerics:
    cell_law: str = field(default="cubic", metadata={"choices": ("linear", "cubic")})
    q_levels: typing.Optional[int] = field(default=16, metadata={"check": _levels})
    q_range: tuple[float, float] = (0.0, 1.0)
    kv_levels: typing.Optional[int] = field(default=8, metadata={"check": _levels})
    kv_range_v: tuple[float, float] = (0.0, 0.9)
    out_levels: typing.Optional[int] = field(default=32, metadata={"check": _levels})
    s_sat: float = field(default=80.0, metadata={"check": _positive})
    out_sat: float = field(default=40.0, metadata={"check": _positive})
    retention: Retention = field(default_factory=Retention)
    dtype: str = field(default="float32", metadata={"choices": ("float32", "float64")})


@dataclass(frozen=True)
class Timing:
    clock_mhz: float = field(default=1000.0, metadata={"check": _positive})
    t_max_ns: float = field(default=15.0, metadata={"check": _positive})
    nominal_token_period_ns: float = field(default=800.0, metadata={"check": _positive})
    phases_ns: dict[str, float] = field(default_factory=dict)
    host_ns_per_layer: float = field(default=0.0, metadata={"check": _nonneg})

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
    latency_ns: float = field(default=0.0, metadata={"check": _nonneg})
    gbps: float = field(default=0.0, metadata={"check": _nonneg})


@dataclass(frozen=True)
class Interconnect:
    q_bits: int = field(default=4, metadata={"check": _positive})
    kv_bits: int = field(default=3, metadata={"check": _positive})
    out_bits: int = field(default=16, metadata={"check": _positive})
    links: dict[str, Link] = field(default_factory=dict)

    LINKS = ("host_to_controller", "bank_to_host")


@dataclass(frozen=True)
class Energy:
    actions_pj: dict[str, float] = field(default_factory=dict)
    link_pj_per_bit: float = field(default=0.0, metadata={"check": _nonneg})
    static_mw: dict[str, float] = field(default_factory=dict)
    items: dict[str, list] = field(default_factory=dict)

    ACTIONS = ("k_column_read", "v_row_read", "output_conversion", "adder_tree_add",
               "output_scaler", "control", "q_pwm_drive", "kv_write_dac")


@dataclass(frozen=True)
class Area:
    head_mm2: float = field(default=0.5, metadata={"check": _nonneg})
    gain_cell_um2: float = field(default=1.0, metadata={"check": _nonneg})


@dataclass(frozen=True)
class Periphery:
    gqa_mapping: str = field(default="time_multiplexed",
                             metadata={"choices": ("time_multiplexed", "pipelined", "replicated")})
    counters_shared_by: int = field(default=1, metadata={"check": _positive})
    counters_shared_by_layers: int = field(default=1, metadata={"check": _positive})
    sequences: int = field(default=1, metadata={"check": _positive})
    host_engines: int = field(default=1, metadata={"check": _positive})


@dataclass(frozen=True)
class Hardware:
    name: str
    shape: Shape
    description: str = ""
    numerics: Numerics = field(default_factory=Numerics)
    timing: Timing = field(default_factory=Timing)
    energy: Energy = field(default_factory=Energy)
    interconnect: Interconnect = field(default_factory=Interconnect)
    area: Area = field(default_factory=Area)
    periphery: Periphery = field(default_factory=Periphery)
    source: str = "<in memory>"

    def derive(self, **changes) -> "Hardware":
        """A validated copy with nested fields changed, e.g.
        `hw.derive(shape={"window": 256}, numerics={"retention": {"mode": "off"}})`."""
        data = _merge(to_dict(self), changes)
        data.pop("source", None)
        return from_dict(data, source=f"{self.source} (derived)")

    @property
    def decay_tau_ps(self) -> float | None:
        ret = self.numerics.retention
        return ret.tau_ns * PS_PER_NS if ret.mode == "time" else None


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, val in changes.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict) and key not in ("phases_ns", "actions_pj", "static_mw", "items", "links"):
            out[key] = _merge(out[key], val)
        elif isinstance(val, dict) and isinstance(out.get(key), dict):
            merged = dict(out[key])
            merged.update(val)
            out[key] = merged
        else:
            out[key] = val
    return out


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value, tp, where: str, source: str):
    """Check `value` against annotation `tp`, converting YAML lists to tuples."""
    def fail(expected):
        raise HardwareError(f"{source}: field '{where}': expected {expected}, found "
                            f"{type(value).__name__} {value!r}")

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], where, source)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail("a mapping")
        return _build(tp, value, where, source)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            fail(f"a list of {len(args)} numbers")
        out = tuple(_convert(v, a, f"{where}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
        if out[0] >= out[1]:
            raise HardwareError(f"{source}: field '{where}': expected lo < hi, found {list(out)}")
        return out
    if origin is dict:
        if not isinstance(value, dict):
            fail("a mapping")
        _, vt = typing.get_args(tp)
        return {str(k): _convert(v, vt, f"{where}.{k}", source) for k, v in value.items()}
    if origin is list or tp is list:
        if not isinstance(value, list):
            fail("a list")
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
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value
    if tp is str:
        if isinstance(value, bool):  # YAML 1.1 reads off/on/no/yes as booleans
            value = "on" if value else "off"
        if not isinstance(value, str):
            fail("a string")
        return value
    raise HardwareError(f"{source}: field '{where}': unsupported type {_type_name(tp)}")


def _build(cls, data: dict, prefix: str, source: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise HardwareError(f"{source}: unknown field '{where}'; expected one of "
                            f"{sorted(f for f in fields if f != 'source')}")
    kwargs = {}
    for name, f in fields.items():
        where = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise HardwareError(f"{source}: missing required field '{where}'")
            continue
        value = _convert(data[name], hints[name], where, source)
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise HardwareError(f"{source}: field '{where}': value {value!r} is out of range "
                                f"(expected {CHECK_TEXT.get(check.__name__, check.__name__)})")
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise HardwareError(f"{source}: field '{where}': expected one of {list(choices)}, found {value!r}")
        kwargs[name] = value
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
    extra = [k for k in hw.interconnect.links if k not in Interconnect.LINKS]
    if extra:
        raise HardwareError(f"{source}: field 'interconnect.links': unknown links {extra}; "
                            f"expected some of {list(Interconnect.LINKS)}")
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


def from_dict(data: dict, source: str = "<in memory>") -> Hardware:
    if not isinstance(data, dict):
        raise HardwareError(f"{source}: expected a mapping at the top level, found {type(data).__name__}")
    hw = _build(Hardware, {k: v for k, v in data.items() if k != "source"}, "", source)
    hw = dataclasses.replace(hw, source=source)
    _check_consistency(hw, source)
    return hw


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """A path as given, or models/<name>.yaml for a bare name."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return MODELS_DIR / f"{name_or_path}.yaml"


def load_hardware(name_or_path: str | os.PathLike = "paper-gpt2") -> Hardware:
    """Load and validate a hardware description by name (models/NAME.yaml) or path."""
    path = resolve_model_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))
        raise HardwareError(f"{path}: hardware description not found; shipped models: {known}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise HardwareError(f"{path}: not valid YAML: {exc}") from None
    return from_dict(data, source=str(path))
