"""Stop on the first non-finite value a datapath stage produces, and say where and why.

A NaN or Inf in a stage is never a result: it comes from a description or scalers whose
numbers overflow the arithmetic (e.g. a huge output scaler a_out, or S_sat below what
float32 can hold). The error names the stage, the step, layer and head, and the fields
that drive that stage, so the user knows what to change.
"""
from __future__ import annotations

import numpy as np

from .errors import NumericsError
from .kernels import periphery

# stage name -> (head axis indexes "head" or "kv_head", what drives the stage's values)
STAGES = {
    "q DAC": ("head", "numerics.q_range, numerics.q_levels, trace scalers a_q / b_q"),
    "k DAC": ("kv_head", "numerics.kv_range_v, numerics.kv_levels, trace scalers a_k / b_k"),
    "v DAC": ("kv_head", "numerics.kv_range_v, numerics.kv_levels, trace scalers a_v / b_v"),
    "S (K-array charge)": ("head", "numerics.cell_law, numerics.q_range, numerics.kv_range_v, "
                                   "numerics.retention"),
    "phi (charge-to-pulse)": ("head", "numerics.s_sat, numerics.dtype"),
    "sub-tile output codes": ("head", "numerics.out_sat, numerics.out_levels, numerics.dtype"),
    "output (adder tree and output scaler)": ("head", "trace scalers a_out / b_out, numerics.dtype"),
}


def all_finite(*arrays) -> bool:
    """True if no array holds a NaN or Inf. A contiguous float32/float64 numpy array goes
    through one compiled pass where numba is present (the simulator checks S and the outputs
    of every layer step: np.isfinite(a).all() is two passes and a temporary)."""
    for a in arrays:
        if a is None:
            continue
        if periphery.applies(a):
            if not periphery.compiled()["all_finite"](a.reshape(-1)):
                return False
        elif not bool(np.isfinite(a).all()):
            return False
    return True



def raise_first_non_finite(stages: dict, *, layer: int, step: int | None = None, where: str = "") -> None:
    """stages: {stage name (a key of STAGES): array or None}, in datapath order, each with
    the head axis first, or the step axis then the head axis when `step` is None.
    Raises NumericsError for the first stage holding a NaN or Inf; returns if none does."""
    for name, arr in stages.items():
        if arr is None:
            continue
        bad = ~np.isfinite(np.asarray(arr))
        if not bad.any():
            continue
        idx = np.unravel_index(int(np.argmax(bad)), bad.shape)
        t, h = (idx[0], idx[1]) if step is None else (step, idx[0])
        kind, fields = STAGES[name]
        value = np.asarray(arr)[idx]
        raise NumericsError(f"{where + ': ' if where else ''}stage '{name}' produced {value} at step {t}, "
                            f"layer {layer}, {kind} {h}; check the fields that drive it: {fields}")
