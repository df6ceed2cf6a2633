"""The host device of a description, resolved: its preset (models/hosts/NAME.yaml) with the
description's `host:` fields over it, every figure present and in SI-friendly units.

A preset is a small YAML file: `name`, `description` and a `host:` mapping of the same fields
as a description's `host:` section (gcsim/hardware.py `Host`), each with its source in a
comment. Validation is the description loader's: a preset's fields go through the same
checks, and a description whose device cannot be resolved fails to load
(`hardware._check_consistency` calls `resolve`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import safeyaml
from ..errors import HardwareError
from ..hardware import PRECISIONS, PS_PER_NS, Host, _build, resolve_model_path
from ..resources import MODELS_DIR

HOSTS_DIR = MODELS_DIR / "hosts"
FIELDS = tuple(f.name for f in dataclasses.fields(Host) if f.name != "device")


@dataclass(frozen=True)
class Device:
    """A host device with every figure resolved (the roofline's inputs)."""
    name: str
    precision: str
    bytes_per_element: int
    peak_flop_per_s: float      # dense, at `precision`
    memory_byte_per_s: float
    memory_bytes: float         # capacity
    compute_efficiency: float
    memory_efficiency: float
    launch_overhead_ps: int
    busy_power_w: float
    pj_per_flop: float
    pj_per_byte: float
    attention: str              # fused | unfused (the GPU-only baseline's attention kernels)

    @property
    def flop_per_s(self) -> float:
        """What a matrix product reaches: peak x efficiency."""
        return self.peak_flop_per_s * self.compute_efficiency

    @property
    def byte_per_s(self) -> float:
        return self.memory_byte_per_s * self.memory_efficiency


def presets() -> list[str]:
    return sorted(p.stem for p in HOSTS_DIR.glob("*.yaml"))


def _preset_path(name: str) -> Path:
    if "/" in name or name.endswith((".yaml", ".yml")):
        return Path(name)
    path = resolve_model_path(name)   # checks it is a plain name
    return HOSTS_DIR / path.name


def load_preset(name: str, where: str = "host.device") -> Host:
    """The `host:` fields of preset `name` (a name in models/hosts/ or a path), validated."""
    path = _preset_path(name)
    if not path.is_file():
        raise HardwareError(f"field '{where}': no host preset {name!r}; shipped presets: {presets()}")
    try:
        data = safeyaml.load(path.read_bytes())
    except safeyaml.YamlLimitError as exc:
        raise HardwareError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("host"), dict):
        raise HardwareError(f"{path}: not a gcsim host preset (expected a YAML mapping with 'host:')")
    unknown = sorted(set(data) - {"name", "description", "host"})
    if unknown:
        raise HardwareError(f"{path}: unknown field {unknown[0]!r}; expected name, description, host")
    if "device" in data["host"]:
        raise HardwareError(f"{path}: field 'host.device': a preset does not name another preset")
    return _build(Host, data["host"], "host", str(path))


def resolve(host: Host, source: str = "<in memory>") -> Device | None:
    """The device of a description's `host:` section (None when it names none)."""
    if host.device is None:
        given = [f for f in FIELDS if getattr(host, f) is not None]
        if given:
            raise HardwareError(f"{source}: field 'host.{given[0]}': host fields need a device (host.device: a "
                                f"preset such as {presets()[0]}, or a path to one)")
        return None
    try:
        base = load_preset(host.device)
    except HardwareError as exc:
        raise HardwareError(f"{source}: {exc}") from None
    values = {}
    for f in FIELDS:
        mine, theirs = getattr(host, f), getattr(base, f)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            values[f] = {**theirs, **mine}   # one precision's peak changed, the others the preset's
        else:
            values[f] = theirs if mine is None else mine
    missing = [f for f, v in values.items() if v is None]
    if missing:
        raise HardwareError(f"{source}: field 'host.{missing[0]}': not given by the description nor by the "
                            f"preset {host.device!r}")
    bad = sorted(set(values["peak_tflops"]) - set(PRECISIONS))
    if bad:
        raise HardwareError(f"{source}: field 'host.peak_tflops.{bad[0]}': not a precision; expected some of "
                            f"{list(PRECISIONS)}")
    prec = values["precision"]
    if prec not in values["peak_tflops"]:
        raise HardwareError(f"{source}: field 'host.precision': {prec!r} has no peak in host.peak_tflops "
                            f"(preset {host.device!r} gives {sorted(values['peak_tflops'])})")
    return Device(name=Path(host.device).stem, precision=prec, bytes_per_element=PRECISIONS[prec],
                  peak_flop_per_s=values["peak_tflops"][prec] * 1e12,
                  memory_byte_per_s=values["memory_gb_per_s"] * 1e9, memory_bytes=values["memory_gb"] * 1e9,
                  compute_efficiency=values["compute_efficiency"], memory_efficiency=values["memory_efficiency"],
                  launch_overhead_ps=round(values["launch_overhead_ns"] * PS_PER_NS),
                  busy_power_w=values["busy_power_w"], pj_per_flop=values["pj_per_flop"],
                  pj_per_byte=values["pj_per_byte"], attention=values["attention"])


def host_device(hw) -> Device | None:
    """The resolved host device of description `hw` (None: no host model)."""
    return resolve(hw.host, hw.source)
