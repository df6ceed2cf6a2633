"""Typed messages exchanged by the simulator's components.

Each names what it carries, for which (sequence, step, layer), and when it was sent
(integer ps). Arrays are those of a whole bank (all heads of a layer); in timing-only
runs they are None and only the counts travel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LayerInputs:
    """Host -> layer controller: one layer's q [H,d], k and v [KV,d] for one step."""
    seq: int
    step: int
    layer: int
    q: np.ndarray | None
    k: np.ndarray | None
    v: np.ndarray | None
    sent_ps: int


@dataclass
class WriteRequest:
    """Controller -> token writer: DAC'ed k and v (stored deviations, V) for a slot."""
    seq: int
    step: int
    layer: int
    slot: int
    k_dev: np.ndarray | None
    v_dev: np.ndarray | None
    sent_ps: int


@dataclass
class ReadRequest:
    """Controller -> tiles: the query pulses [KV,G,d] and the read time (retention ages)."""
    seq: int
    step: int
    layer: int
    q_pulse: np.ndarray | None
    read_ps: int


@dataclass
class SubTileCodes:
    """Output counters -> accumulator: quantized per-sub-tile outputs [H, n_sub, d]."""
    seq: int
    step: int
    layer: int
    codes: np.ndarray | None
    sent_ps: int


@dataclass
class LayerOutputs:
    """Accumulator -> host: the layer's attention outputs [H, d]."""
    seq: int
    step: int
    layer: int
    out: np.ndarray | None
    sent_ps: int
