"""Typed messages exchanged by the simulator's components.

Each names what it carries, for which (sequence, step, layer), and when it was sent
(integer ps). Arrays are those of a whole bank (all heads of a layer); in timing-only
runs they are None and only the counts travel. Inside a layer step the controller hands
arrays to the array-side components by direct call (they work in lockstep within its
phases), so only the hops between units that run at different times are messages.
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
class LayerOutputs:
    """Accumulator -> host: the layer's attention outputs [H, d]."""
    seq: int
    step: int
    layer: int
    out: np.ndarray | None
    sent_ps: int
