"""The witness's energy count: action counts from the shape of the run (steps, sequences,
layers), the description and the witness's schedule (refreshes, elapsed time), priced by the
cost model's laws as docs/cost-model.md states them. It shares no code with the simulator's
ledger or with gcsim/costs.py.

Counts per layer step of layer l, for H query heads, KV K/V heads, d = d_head, the read's
n_valid written slots of the window and n_active sub-tiles holding one (docs/simulator.md,
"Energy"):

  Lxx.tiles        k_column_read, v_row_read   H x n_valid each
  Lxx.controller   q_pwm_drive                 H x d x n_active
                   control                     H
  counters         output_conversion           H x d x n_active
  accumulator      adder_tree_add              H x d x (n_active - 1)
                   output_scaler               H x d
  Lxx.writer       kv_write_dac                2 x KV x d x copies (GQA rule)
  link.NAME        link (link:NAME with the edge's own pJ/bit)
                                               the message's bits, on every hop of the route
                                               (inputs H d q_bits + 2 KV d kv_bits, outputs
                                               H d out_bits)

and per refresh of layer l that rewrote s slots (summed over the sequences' arrays),
Lxx.refresh: k_column_read and v_row_read KV x copies x s, kv_write_dac 2 x d x KV x copies x s.
With a host device, `host`: host_busy (its busy ps, at busy_power_w pJ each), host_flop and
host_byte (the counts of its batches, gcsim/witness/host.py).
The counters and the accumulator are `Pgg.` for a periphery bank shared by layers. A step t
of a sequence (no slot written before the run) reads n_valid = min(t + 1, M) slots in
n_active = ceil(n_valid / array_size) sub-tiles. Static power: mW x elapsed.

Energy per action (`costs.model: scaled`, the laws of docs/cost-model.md at the calibration
design M = 1024 in 16 sub-tiles of 64 x 64, d 64, 16 / 8 / 32 levels): K/V reads x d / 64;
PWM drive x (q_levels - 1) / 15; write DAC x (kv_levels - 1) / 7; output conversion x
log2(out_levels) / 5; adder x (log2(out_levels) + depth) / 9 with depth = ceil(log2 n_sub)
(at least 1); quantization off (null levels) costs like the calibration point;
`costs.model: table`: as written. With `costs.array_read: charge` a K/V read's energy depends
on the data: its count is compared, its energy is not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .timing import routes

CHARGE_ACTIONS = ("k_column_read", "v_row_read")


def action_pj(hw) -> dict[str, float]:
    """Energy per action of `hw` (pJ), by the cost model's laws."""
    table = dict(hw.energy.actions_pj)
    if hw.costs.model == "table":
        return table
    s, n = hw.shape, hw.numerics
    out_levels = n.out_levels or 32
    depth = max(1, (s.window // s.array_size - 1).bit_length())
    factor = {
        "k_column_read": s.d_head / 64,
        "v_row_read": s.d_head / 64,
        "q_pwm_drive": ((n.q_levels or 16) - 1) / 15,
        "kv_write_dac": ((n.kv_levels or 8) - 1) / 7,
        "output_conversion": math.log2(out_levels) / 5,
        "adder_tree_add": (math.log2(out_levels) + depth) / 9,
    }
    return {k: v * factor.get(k, 1.0) for k, v in table.items()}


@dataclass
class EnergyCount:
    counts: dict          # (component, action) -> count
    pj_each: dict         # action -> pJ per count (None: data-dependent)
    static_pj: dict       # block -> pJ

    def energy_pj(self, key) -> float | None:
        each = self.pj_each[key[1]]
        return None if each is None else self.counts[key] * each

    def total_pj(self) -> float | None:
        if any(self.pj_each[a] is None for _, a in self.counts if self.counts[_, a]):
            return None
        return sum(self.energy_pj(k) for k in self.counts) + sum(self.static_pj.values())


def count(hw, sched) -> EnergyCount:
    """The action counts of the run the witness scheduled (`sched`: a timing.Schedule)."""
    from .rules import rules_for
    s, p, ic = hw.shape, hw.periphery, hw.interconnect
    H, KV, d = s.heads, s.kv_heads, s.d_head
    copies = rules_for(hw)["gqa"].copies()
    counts: dict = {}

    def add(comp, action, n):
        counts[(comp, action)] = counts.get((comp, action), 0) + int(n)

    def shared(l, what):
        return f"L{l:02d}.{what}" if p.counters_shared_by_layers == 1 else \
            f"P{l // p.counters_shared_by_layers:02d}.{what}"

    pj = action_pj(hw)
    pj["link"] = hw.energy.link_pj_per_bit
    bits_in = H * d * ic.q_bits + 2 * KV * d * ic.kv_bits
    bits_out = H * d * ic.out_bits
    layer_routes, _ = routes(hw)
    for l in range(s.layers):
        steps, n_valid, n_active = (int(x) for x in sched.layer_steps[l])
        add(f"L{l:02d}.tiles", "k_column_read", H * n_valid)
        add(f"L{l:02d}.tiles", "v_row_read", H * n_valid)
        add(f"L{l:02d}.controller", "q_pwm_drive", H * d * n_active)
        add(f"L{l:02d}.controller", "control", H * steps)
        add(shared(l, "counters"), "output_conversion", H * d * n_active)
        add(shared(l, "accumulator"), "adder_tree_add", H * d * (n_active - steps))
        add(shared(l, "accumulator"), "output_scaler", H * d * steps)
        add(f"L{l:02d}.writer", "kv_write_dac", 2 * KV * d * copies * steps)
        slots = int(sched.refresh_counts["slots_refreshed"][l])
        if slots:
            add(f"L{l:02d}.refresh", "k_column_read", KV * copies * slots)
            add(f"L{l:02d}.refresh", "v_row_read", KV * copies * slots)
            add(f"L{l:02d}.refresh", "kv_write_dac", 2 * d * KV * copies * slots)
        for hops, bits in zip(layer_routes[l], (bits_in, bits_out)):
            for hop in hops:
                action = "link" if hop["pj"] is None else f"link:{hop['name']}"
                if hop["pj"] is not None:
                    pj[action] = hop["pj"]
                add(f"link.{hop['name']}", action, bits * steps)
    from .host import Host   # the host's energy actions, with a host device (docs/system.md)
    dev = Host(hw).device
    if dev is not None:
        for action, each in (("host_busy", dev.busy_power_w), ("host_flop", dev.pj_per_flop),
                             ("host_byte", dev.pj_per_byte)):
            if sched.host_counts[action]:
                add("host", action, sched.host_counts[action])
            pj[action] = each
    if hw.costs.array_read == "charge":
        for a in CHARGE_ACTIONS:
            pj[a] = None
    static = {block: mw * sched.elapsed_ps * 1e-3 for block, mw in hw.energy.static_mw.items()}
    return EnergyCount(counts, pj, static)
