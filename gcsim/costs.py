"""The cost model: time, energy per action and area that follow the described design.

A description's phase times and energy table are given at the calibration point, the
paper's design (Leroux et al. 2025; docs/paper-model.md): M = 1024 tokens in 16 sub-tiles of
64 x 64 gain cells, d_head = 64, a 16-level PWM query DAC, 8-level K/V write DACs and 32-level
output counters. `models/paper-gpt2.yaml` is that design, so its costs are the table as
written and `gcsim paper` lands on the paper's figures by construction (calibrated, not
predicted). For any other design this module scales each term by the law below
(docs/cost-model.md explains them term by term):

- adder tree (latency): a tree over n_sub sub-tiles has depth ceil(log2 n_sub) (at least one
  level: the output scaler); each level takes the calibration time / 4 levels, and the phase
  is rounded up to whole clock cycles. 16 sub-tiles: 4 levels x 2.5 ns = 10 ns.
- adder tree (energy per add): proportional to the width of the operands, the counter's bits
  plus the level: out_bits + depth, against 5 + 4 at the calibration point.
- DACs: the PWM query driver and the K/V write DAC spend energy per unit step (a PWM pulse is
  up to levels - 1 unit times; a unary write DAC has levels - 1 unit elements): energy per
  drive proportional to levels - 1 (15 and 7 at the calibration point).
- output conversion (signed CTP + counter): proportional to the counter's bits,
  log2(out_levels) (5 at the calibration point).
- array reads: energy per active cell; a K column or V row read drives d_head cells
  (64 at the calibration point).
- area per K/V bank: its gain cells (2 arrays x window x d_head x gain_cell_um2) plus
  periphery per sub-tile (drivers, integrators, charge-to-pulse, counters; proportional to
  array_size) plus periphery per query head (control, adder tree, output scaler). The
  paper's 0.5 mm2 per head at M = 1024 calibrates the periphery: 0.5 mm2 minus the cells
  (0.131 mm2), of which HEAD_SHARE is per head and the rest is split over the 16 sub-tiles.
  Sharing saves what is shared: the output counters (COUNTER_SHARE of a sub-tile's
  periphery) exist once per set of counters, min(banks, heads / counters_shared_by) sets per
  layer, and once per counters_shared_by_layers layers; the adder tree and output scaler
  (ACCUMULATOR_SHARE of a head's periphery) once per counters_shared_by_layers layers.
- static power: `energy.static_mw` per block, unchanged (none at the calibration point).

`costs.model: table` in a description turns the scaling off: the phase times and the energy
table are used as written (Accelergy style, for a table estimated elsewhere). The area is
the same in both.

`costs.array_read: charge` (optional, functional runs only) charges each K and V array read
for the charge its cells actually integrate instead of a fixed energy per active column or
row: E = kappa x Q, Q = sum over the cells that conduct of |I| x pulse width (uA x T_max;
gcsim.physics.read_abs_charges: the cell law at the stored, decayed value, the query pulse
on a K row, the phi pulse on a V row), i.e. supply voltage x charge up to the constant
kappa. kappa is calibrated so that the description's k_column_read / v_row_read is the
energy of a read of the calibration trace's mean charge:
  kappa_K = k_column_read / CAL_K_COLUMN_UA_TMAX,  kappa_V = v_row_read / CAL_V_ROW_UA_TMAX,
so on the calibration trace the paper's 1120 pJ (phi(Q.K^T)) and 700 pJ (phi(S).V, of which
448 pJ V rows) hold per head and token at full window. The calibration constants are
measured by `gcsim.calibration.calibration_charges()` (the numbers below; tests/test_charge_energy.py
re-measures them). The K item includes the integrator and charge-to-pulse: all of it is
taken in proportion to the charge (the paper gives no split). The table entries are used as
written (not scaled by d_head: the charge already counts the cells). Timing-only runs have
no values, so the simulator refuses `charge` there (SimError), rather than falling back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# The calibration point: the paper's design (docs/paper-model.md, section "design").
REF_SUB_TILES = 16
REF_ARRAY = 64
REF_D_HEAD = 64
REF_WINDOW = 1024
REF_Q_LEVELS = 16
REF_KV_LEVELS = 8
REF_OUT_LEVELS = 32
HEAD_SHARE = 0.2  # [our default] share of the per-head periphery area that does not scale with sub-tiles
# [our default] the parts that sharing saves (the paper gives no split): the output conversion
# (signed charge-to-pulse + counter per V column) is one of the four per-column circuits of a
# sub-tile's periphery (PWM row drivers, K-column integrators and charge-to-pulse, V-column
# integrators, output conversion); the adder tree and output scaler are two of the three of a
# head's (control, adder tree, output scaler)
COUNTER_SHARE = 0.25
ACCUMULATOR_SHARE = 2 / 3

# The calibration trace of `costs.array_read: charge`: what `gcsim paper --functional` replays,
# i.e. `gcsim trace synth` of paper-gpt2 shape (12 layers x 12 heads, d_head 64), 1100 steps,
# seed 0, on models/paper-gpt2.yaml (float32). Mean integrated |I| x pulse width per K column
# read and per V row read (uA x T_max) over its full-window steps (t >= 1023), measured by
# gcsim.calibration.calibration_charges(). A read of these charges costs k_column_read / v_row_read. (Re-measured
# after the DAC front end chose its levels in float64, gcsim/datapath.py: -5e-6 and -1.7e-5.)
CALIBRATION_TRACE = {"model": "paper-gpt2", "steps": 1100, "seed": 0}
CAL_K_COLUMN_UA_TMAX = 31.67504667960329
CAL_V_ROW_UA_TMAX = 12.447636468614341


def tree_depth(n: int) -> int:
    """Levels of a binary adder tree over n inputs (at least 1: the output scaler)."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def _bits(levels: int | None, ref_levels: int) -> float:
    """Bits of a quantizer with `levels` levels; quantization off costs like the calibration point."""
    return math.log2(levels if levels else ref_levels)


def _steps(levels: int | None, ref_levels: int) -> float:
    return (levels if levels else ref_levels) - 1


@dataclass(frozen=True)
class Costs:
    adder_tree_ps: int             # the adder-tree-and-scaler phase, whole clock cycles
    actions_pj: dict[str, float]   # energy per action, scaled to the design
    scale: dict[str, float]        # the factor applied to each action (1 at the calibration point)
    area: dict[str, float]         # mm2 and cell counts, see area()
    charge_pj: dict[str, float] | None = None  # array_read charge: pJ per uA x T_max (kappa) per action


def adder_tree_ps(hw) -> int:
    """Adder tree and output scaler: depth x (calibration time / calibration depth), rounded up
    to whole clock cycles."""
    if hw.costs.model == "table":
        return hw.timing.phase_ps("adder_tree")
    clock = hw.timing.clock_period_ps
    per_level_ps = hw.timing.phase_ps("adder_tree") / tree_depth(REF_SUB_TILES)
    return math.ceil(round(tree_depth(hw.shape.n_sub_tiles) * per_level_ps) / clock) * clock


def action_scale(hw) -> dict[str, float]:
    """Factor on each action's calibration energy (the laws of the module docstring)."""
    s, n = hw.shape, hw.numerics
    out_bits = _bits(n.out_levels, REF_OUT_LEVELS)
    ref_out_bits = math.log2(REF_OUT_LEVELS)
    cells = s.d_head / REF_D_HEAD
    return {
        "k_column_read": cells,
        "v_row_read": cells,
        "output_conversion": out_bits / ref_out_bits,
        "adder_tree_add": (out_bits + tree_depth(s.n_sub_tiles)) / (ref_out_bits + tree_depth(REF_SUB_TILES)),
        "output_scaler": 1.0,
        "control": 1.0,
        "q_pwm_drive": _steps(n.q_levels, REF_Q_LEVELS) / (REF_Q_LEVELS - 1),
        "kv_write_dac": _steps(n.kv_levels, REF_KV_LEVELS) / (REF_KV_LEVELS - 1),
    }


def area(hw) -> dict[str, float]:
    """Area of the design (mm2): gain cells + periphery per sub-tile + periphery per head."""
    s, p, a = hw.shape, hw.periphery, hw.area
    ref_cells_mm2 = 2 * REF_WINDOW * REF_D_HEAD * a.gain_cell_um2 * 1e-6
    periphery_ref = max(a.head_mm2 - ref_cells_mm2, 0.0)
    per_head_mm2 = HEAD_SHARE * periphery_ref
    per_sub_tile_mm2 = (1 - HEAD_SHARE) * periphery_ref / REF_SUB_TILES * s.array_size / REF_ARRAY
    copies = s.group_size if p.gqa_mapping == "replicated" else 1
    banks = s.kv_heads * copies * s.layers                 # K/V banks of one sequence
    cells = 2 * banks * s.window * s.d_head * p.sequences  # each sequence holds its own K and V
    cells_mm2 = cells * a.gain_cell_um2 * 1e-6
    # the periphery is shared by the sequences; the output counters by the heads of a set (a
    # bank's own counters already serve its query heads in turn) and, with the adder trees and
    # output scalers, by the layers of a periphery bank
    counter_sets = min(s.kv_heads * copies, s.heads // p.counters_shared_by) * s.layers // p.counters_shared_by_layers
    counters_mm2 = counter_sets * s.n_sub_tiles * COUNTER_SHARE * per_sub_tile_mm2
    sub_tiles_mm2 = banks * s.n_sub_tiles * (1 - COUNTER_SHARE) * per_sub_tile_mm2 + counters_mm2
    accumulators_mm2 = s.heads * s.layers // p.counters_shared_by_layers * ACCUMULATOR_SHARE * per_head_mm2
    heads_mm2 = s.heads * s.layers * (1 - ACCUMULATOR_SHARE) * per_head_mm2 + accumulators_mm2
    return {"gain_cells": cells, "gain_cells_mm2": cells_mm2, "sub_tile_periphery_mm2": sub_tiles_mm2,
            "head_periphery_mm2": heads_mm2, "total_mm2": cells_mm2 + sub_tiles_mm2 + heads_mm2,
            "per_sub_tile_periphery_mm2": per_sub_tile_mm2, "per_head_periphery_mm2": per_head_mm2,
            "counter_sets": counter_sets, "counters_mm2": counters_mm2, "accumulators_mm2": accumulators_mm2}


def charge_pj(hw) -> dict[str, float] | None:
    """kappa (pJ per uA x T_max) of the K and V array reads with `costs.array_read: charge`."""
    if hw.costs.array_read != "charge":
        return None
    a = hw.energy.actions_pj
    return {"k_column_read": a["k_column_read"] / CAL_K_COLUMN_UA_TMAX,
            "v_row_read": a["v_row_read"] / CAL_V_ROW_UA_TMAX}


def derive(hw) -> Costs:
    """The costs of `hw`; with `costs.model: table` the description's numbers as written.
    With `costs.array_read: charge` the K/V read actions cost 0 per count: the tiles book
    kappa x charge for each read instead."""
    if hw.costs.model == "table":
        scale = {k: 1.0 for k in hw.energy.actions_pj}
    else:
        scale = action_scale(hw)
    actions = {k: v * scale.get(k, 1.0) for k, v in hw.energy.actions_pj.items()}
    kappa = charge_pj(hw)
    if kappa:
        actions.update({k: 0.0 for k in kappa})
    return Costs(adder_tree_ps(hw), actions, scale, area(hw), kappa)
