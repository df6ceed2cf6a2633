"""Checks made before a simulation allocates or runs: its memory and its simulated time fit.

Memory: the arrays that grow with the description (the K/V state of every layer and
sequence) are estimated from the fields that size them, and a run that cannot fit in the
memory available is refused with the estimate instead of failing (or swapping) after
minutes. The per-step records (times, energy counts, critical path: `record_bytes`) grow
with the trace but are on disk from streamio.SCRATCH_MIN_BYTES on, only a few thousand rows
of them resident: they count as memory for that part, as disk for the rest (a full TMPDIR
is refused when they are allocated, streamio.scratch_array). Time: simulated time is integer picoseconds
in int64; an upper bound of the run's length must stay below 2**62 ps (53 days), so no
integer can overflow whatever the step count.
"""
from __future__ import annotations

import os

from .errors import SimError
from .hardware import PS_PER_NS, Hardware
from .system.work import HostWork

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
    resident, _ = record_bytes(hw, steps)
    out["per-step records (resident part)"] = (
        resident, "periphery.sequences x shape.layers x min(trace steps, the rows resident: streamio.RELEASE_STEPS "
                  "+ 2 x streamio.CHUNK_ROWS)")
    return out


def record_row_bytes(hw) -> list[int]:
    """Bytes per step of each per-step record array a run allocates: per sequence the layer
    start, layer end, write end and read start [T, L] and the step end [T] (engine.Record)
    and the critical path [T, 16 categories] (kernel/path.py, widened if a run meets more);
    the energy ledger's counts and direct pJ [T, actions] and layer-step sums [T, 3, L]
    (kernel/energy.py); with costs.array_read: charge, each layer's read charges [T, 2]."""
    from . import costs
    s, n = hw.shape, hw.periphery.sequences
    actions = len(costs.derive(hw).actions_pj) + 1   # + "link"
    # + "link:NAME" for each topology edge with its own energy per bit (the links form has none)
    actions += sum(1 for e in hw.interconnect.edges.values() if e.pj_per_bit is not None)
    rows = [s.layers * 8] * (4 * n) + [8] * n + [16 * 8] * n + [actions * 8] * 2 + [3 * s.layers * 8]
    if costs.charge_pj(hw):
        rows += [2 * 8] * s.layers
    return rows


def record_bytes(hw, steps: int) -> tuple[int, int]:
    """(resident, on disk) bytes of the per-step records of a run of `steps` steps: an array
    below streamio.SCRATCH_MIN_BYTES is in memory; one from it on is on disk, of which the rows
    written since the engine last released them (RELEASE_STEPS) and a chunk read back (and
    its copy: 2 x CHUNK_ROWS) are resident at most."""
    from . import streamio
    resident = disk = 0
    for row in record_row_bytes(hw):
        if row * steps < streamio.SCRATCH_MIN_BYTES:
            resident += row * steps
        else:
            disk += row * steps
            resident += row * min(steps, streamio.RELEASE_STEPS + 2 * streamio.CHUNK_ROWS)
    return resident, disk


def check_memory(parts: dict, source: str, disk: int = 0) -> None:
    """Refuse when the estimated arrays do not fit in the memory available; `disk`: the bytes
    the run keeps on disk instead (said in the message, not counted)."""
    need = sum(b for b, _ in parts.values())
    have = available_memory_bytes()
    if have is None or need <= have:
        return
    what, (biggest, fields) = max(parts.items(), key=lambda kv: kv[1][0])
    raise SimError(f"{source}: the run needs about {_bytes(need)} of memory and {_bytes(have)} is available; "
                   f"the largest part, {what}, is {fields} = {_bytes(biggest)}"
                   + (f" (and {_bytes(disk)} of per-step records on disk in TMPDIR)" if disk else ""))


def step_bound_ps(hw: Hardware) -> int:
    """An upper bound of one decode step's simulated time for all sequences, in ps: every
    wait serialised (sequences, shared counters, GQA rounds, links, refresh, host), and a
    shared unit's switch before every count (a set's and the bank's)."""
    s, p, t = hw.shape, hw.periphery, hw.timing
    ret = hw.numerics.retention
    phases_ps = sum(t.phase_ps(name) for name in t.PHASES) + 2 * p.switch_cycles * t.clock_period_ps
    rounds = s.group_size * p.counters_shared_by
    ic = hw.interconnect
    bits = s.heads * s.d_head * max(ic.q_bits, ic.out_bits) + 2 * s.kv_heads * s.d_head * ic.kv_bits
    link_ps = 0
    for link in ic.links.values():
        link_ps += round(link.latency_ns * PS_PER_NS)
        if link.gbps > 0:
            link_ps += -(-(bits * PS_PER_NS) // max(link.gbps, 1e-3)) + 1
    refresh_ps = s.n_sub_tiles * round(ret.refresh_ns_per_subtile * PS_PER_NS) if ret.refresh == "periodic" else 0
    work = HostWork(hw)   # the host's roofline at one sequence per batch: the longest per sequence
    host_ps = work.at(0, 1)[0]
    per_layer = phases_ps * rounds + link_ps + refresh_ps + host_ps
    return int(per_layer * s.layers * p.sequences * p.counters_shared_by_layers + work.at(s.layers, 1)[0] * p.sequences)


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
    check_memory({**simulator_memory(hw, steps, values=values), **(extra or {})}, hw.source,
                 disk=record_bytes(hw, steps)[1])
