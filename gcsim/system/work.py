"""What the host port computes in a run: the time and the energy actions of the host's work
before each layer's attention, and once per step after the last layer, for a batch of n
sequences (gcsim/sim/blocks/host.py uses it; docs/system.md).

- No host device (`host.device` null): `timing.host_ns_per_layer` per layer, no step work and
  no energy (the paper's accelerator-only figures; 0 in the shipped descriptions).
- A host device: the roofline of the layer's kernels (roofline.layer_ops) and of the step's
  (embedding, final norm, LM head, sampling) at batch n; `timing.host_ns_per_layer`, when
  above 0, overrides the layer's time (its energy is then busy power x that time plus the
  kernels' FLOP and byte energy).

Energy actions (booked by the host in the run's ledger): `host_busy` counted in ps at
busy_power_w pJ each (W x ps = pJ), `host_flop` at pj_per_flop, `host_byte` at pj_per_byte.
"""
from __future__ import annotations

from ..errors import SimError
from ..hardware import PS_PER_NS
from .device import host_device
from .roofline import host_layer, host_prefill, host_step

ACTIONS = ("host_busy", "host_flop", "host_byte")


class HostWork:
    def __init__(self, hw):
        self.hw = hw
        self.device = host_device(hw)
        self.fixed_ps = round(hw.timing.host_ns_per_layer * PS_PER_NS)
        self._cache: dict = {}
        # any host work at all (else the host port skips it: the paper's accelerator-only runs)
        self.any = self.device is not None or self.fixed_ps > 0

    def actions_pj(self) -> dict[str, float]:
        """pJ per count of each host action (empty without a device)."""
        d = self.device
        return {} if d is None else {"host_busy": d.busy_power_w, "host_flop": d.pj_per_flop,
                                     "host_byte": d.pj_per_byte}

    def at(self, phase: int, n: int) -> tuple[int, dict]:
        """(ps, {action: count}) of phase `phase` (a layer 0..L-1: the work before its
        attention; L: the step's work after the last layer) for a batch of n sequences."""
        key = (phase == self.hw.shape.layers, n)
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = self._compute(*key)
        return got

    def prefill(self, tokens: int) -> tuple[int, dict]:
        """(ps, {action: count}) of a prompt's prefill of `tokens` (serving: needs a device)."""
        if self.device is None:
            raise SimError(f"{self.hw.source}: serving needs a host device (host.device) to cost the prefill")
        got = self._cache.get(("prefill", tokens))
        if got is None:
            c = host_prefill(self.hw, self.device, tokens)
            got = self._cache[("prefill", tokens)] = (c.time_ps, {"host_busy": c.time_ps, "host_flop": c.flops,
                                                                  "host_byte": c.bytes})
        return got

    def _compute(self, is_step: bool, n: int) -> tuple[int, dict]:
        if self.device is None:
            return (0, {}) if is_step else (self.fixed_ps, {})
        c = (host_step if is_step else host_layer)(self.hw, self.device, n)
        ps = c.time_ps if is_step or not self.fixed_ps else self.fixed_ps
        return ps, {"host_busy": ps, "host_flop": c.flops, "host_byte": c.bytes}
