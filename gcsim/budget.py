"""Checks made before a simulation allocates or runs: its memory and its simulated time fit.

Memory: the arrays that grow with the description (the K/V state of every layer and
sequence) and with the trace length (per-step times) are estimated from the fields that
size them, and a run that cannot fit in the memory available is refused with the estimate
instead of failing (or swapping) after minutes. Time: simulated time is integer picoseconds
in int64; an upper bound of the run's length must stay below 2**62 ps (53 days), so no
integer can overflow whatever the step count.
"""
from __future__ import annotations

import os

from .errors import SimError
from .hardware import PS_PER_NS, Hardware

INT64_SAFE_PS = 1 << 62


def available_memory_bytes() -> int | None:
    """MemAvailable on Linux, else the physical memory; None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def simulator_memory(hw: Hardware, steps: int, *, values: bool = True, itemsize: int | None = None) -> dict:
    """{what: (bytes, the fields that size it)} of the simulator's large arrays."""
    from . import physics
    from .kernels import bitline
    from .kernels.store import codes_exact
    s, p = hw.shape, hw.periphery
    itemsize = itemsize or (8 if hw.numerics.dtype == "float64" else 4)
    if codes_exact(hw) and bitline.AVAILABLE:  # the compact store: one DAC code per cell (x2 margin)
        per_cell = 2
    else:  # the powers y, y^2, ... of the cell law
        per_cell = (len(physics.law_coefficients(hw.numerics.cell_law)) - 1) * itemsize
    out = {}
    if values:
        out["K/V state"] = (p.sequences * s.layers * 2 * per_cell * s.kv_heads * s.window * s.d_head,
                            "periphery.sequences x shape.layers x shape.kv_heads x shape.window x shape.d_head")
    out["per-step times"] = (p.sequences * 5 * steps * s.layers * 8 + steps * 16 * 8,
                             "periphery.sequences x shape.layers x trace steps")
    return out


def check_memory(parts: dict, source: str) -> None:
    """Refuse when the estimated arrays do not fit in the memory available."""
    need = sum(b for b, _ in parts.values())
    have = available_memory_bytes()
    if have is None or need <= have:
        return
    what, (biggest, fields) = max(parts.items(), key=lambda kv: kv[1][0])
    raise SimError(f"{source}: the run needs about {_bytes(need)} of memory and {_bytes(have)} is available; "
                   f"the largest part, {what}, is {fields} = {_bytes(biggest)}")


def step_bound_ps(hw: Hardware) -> int:
    """An upper bound of one decode step's simulated time for all sequences, in ps: every
    wait serialised (sequences, shared counters, GQA rounds, links, refresh, host)."""
    s, p, t = hw.shape, hw.periphery, hw.timing
    ret = hw.numerics.retention
    phases_ps = sum(t.phase_ps(name) for name in t.PHASES)
    rounds = s.group_size * p.counters_shared_by
    ic = hw.interconnect
    bits = s.heads * s.d_head * max(ic.q_bits, ic.out_bits) + 2 * s.kv_heads * s.d_head * ic.kv_bits
    link_ps = 0
    for link in ic.links.values():
        link_ps += round(link.latency_ns * PS_PER_NS)
        if link.gbps > 0:
            link_ps += -(-(bits * PS_PER_NS) // max(link.gbps, 1e-3)) + 1
    refresh_ps = s.n_sub_tiles * round(ret.refresh_ns_per_subtile * PS_PER_NS) if ret.refresh == "periodic" else 0
    host_ps = round(t.host_ns_per_layer * PS_PER_NS)
    per_layer = phases_ps * rounds + link_ps + refresh_ps + host_ps
    return int(per_layer * s.layers * p.sequences * p.counters_shared_by_layers)


def check_time(hw: Hardware, steps: int, source: str) -> None:
    """Integer picoseconds cannot overflow: the run's time bound stays below 2**62 ps."""
    bound = step_bound_ps(hw) * steps
    nominal = hw.timing.nominal_token_period_ps * steps
    if max(bound, nominal) >= INT64_SAFE_PS:
        which = ("timing.nominal_token_period_ns x trace steps" if nominal >= bound else
                 "the step time (timing.phases_ns, timing.host_ns_per_layer, interconnect links, refresh, "
                 "sharing) x shape.layers x periphery.sequences x trace steps")
        raise SimError(f"{source}: simulated time could reach {max(bound, nominal) / 1e12:.3g} s over {steps} steps, "
                       f"past what integer picoseconds hold (2^62 ps = {INT64_SAFE_PS / 1e12 / 86400:.0f} days); "
                       f"reduce {which}")


def check_run(hw: Hardware, steps: int, *, values: bool = True, extra: dict | None = None) -> None:
    """Both checks, for a run of `steps` steps; `extra` adds a command's own arrays."""
    check_time(hw, steps, hw.source)
    check_memory({**simulator_memory(hw, steps, values=values), **(extra or {})}, hw.source)
