"""Where the host port's inputs come from, and where the chip's outputs go.

A *source* is any object with:

- `steps` (int) and `model` (dict: layers, heads, kv_heads, d_head), checked against the
  hardware description; `scalers` (dict of per-head scaler arrays, or None);
- `layer_inputs(seq, step, layer) -> (q [H, d], k [KV, d], v [KV, d])`: the host's
  projections for one layer of one step of one sequence (any float arrays);
- `receive(seq, step, layer, out)`: the chip's attention output [H, d] of that layer
  (None in timing-only runs).

The simulator calls them in causal order per sequence: `receive(seq, t, l, ...)` comes
before `layer_inputs(seq, t, l + 1)`, and layer L - 1 of step t before layer 0 of step
t + 1, so a live model can compute the next layer from the chip's output. `TraceSource`
replays a recorded trace; a live language model (gcsim.llm) is another implementation.
"""
from __future__ import annotations

import numpy as np

from ..streamio import release_pages


class TraceSource:
    """Replay of a decode trace (q [T, L, H, d], k, v [T, L, KV, d]); outputs of sequence 0
    are written into `outputs` ([T, L, H, d] array-like) when given."""

    def __init__(self, trace, outputs=None, dtype=np.float32):
        self.trace, self.outputs, self.dtype = trace, outputs, np.dtype(dtype)
        self.steps = trace.steps
        self.model = trace.model
        self.scalers = getattr(trace, "scalers", None)
        self.path = getattr(trace, "path", "<in memory>")
        self._cached = -1
        self._arrays = None

    def layer_inputs(self, seq: int, step: int, layer: int):
        if self._cached != step:  # read each step once from the (lazy) trace, all layers
            arrays = (self.trace.q, self.trace.k, self.trace.v)
            self._arrays = tuple(np.array(a[step], dtype=self.dtype) for a in arrays)
            self._cached = step
            if step % 64 == 63:  # drop the trace pages read so far: RSS stays flat (streamio.py)
                for a in arrays:
                    release_pages(a)
        q, k, v = self._arrays
        return q[layer], k[layer], v[layer]

    def receive(self, seq: int, step: int, layer: int, out) -> None:
        if self.outputs is not None and out is not None and seq == 0:
            self.outputs[step, layer] = out


def is_source(obj) -> bool:
    return callable(getattr(obj, "layer_inputs", None)) and callable(getattr(obj, "receive", None))
