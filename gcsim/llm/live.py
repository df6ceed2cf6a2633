"""The simulated chip in a live model's loop: a host source (gcsim/sim/source.py) that
computes each layer's projections and MLP from the chip's earlier outputs.

Per step t and chip layer j the simulator asks `layer_inputs(0, t, j)`: the source runs the
model from where it stands (the token's embedding at layer 0, then any layers kept in
software) up to the model layer mapped to chip layer j and returns its q, k, v; the chip's
output comes back through `receive(0, t, j, out)` and the source finishes that layer (output
projection, MLP). After the last layer it takes the logits: teacher-forced, the next token
is the given one; generating, it is the argmax (greedy), so every later step depends on the
chip's outputs. Layers not on the chip use the software attention over a host-side cache.
"""
from __future__ import annotations

import numpy as np

from ..hardware import Hardware
from ..reference import DecodeState
from ..sim import Simulator


class LiveSource:
    """Source driving `model` (a gcsim.llm.loop model) with the chip on `chip_layers`.

    ids: the tokens fed at the first steps (the prompt, or the whole text teacher-forced);
    n_new: tokens to generate greedily after ids (0 = teacher-forced only). Steps =
    len(ids) + n_new - 1 when generating (the last generated token is not fed back),
    len(ids) otherwise. `logits` [steps, vocab] and `tokens` fill as the run goes.
    """

    def __init__(self, model, ids, *, hw_soft: Hardware, chip_layers=None, scalers=None, n_new: int = 0):
        self.lm = model
        self.tokens = [int(i) for i in ids]
        if not self.tokens:
            raise ValueError("need at least one token to feed the model")
        self.n_prompt, self.n_new = len(self.tokens), int(n_new)
        self.steps = self.n_prompt + self.n_new - 1 if self.n_new > 0 else self.n_prompt
        self.chip_layers = list(range(model.layers)) if chip_layers is None else sorted(chip_layers)
        self.model = {"layers": len(self.chip_layers), "heads": model.heads,
                      "kv_heads": model.kv_heads, "d_head": model.d_head}
        self.scalers = None if scalers is None else {k: np.asarray(v)[self.chip_layers] for k, v in scalers.items()}
        self.logits = np.zeros((self.steps, model.vocab_size), np.float32)
        self._x = None
        self._layer = 0  # next model layer to run in this step
        # layers kept in software: the model's own attention (softmax or the chip's numeric
        # model it was trained with) in the reference model's step form, one state per layer
        self._hw_soft = hw_soft
        law = getattr(model, "attention", "softmax")
        self._soft = {l: DecodeState(hw_soft, variant=law, scalers=None if law == "softmax" else model.scalers, layer=l)
                      for l in range(model.layers) if l not in self.chip_layers}

    # the source interface of gcsim.sim.source --------------------------------------------------
    @property
    def generated(self) -> list[int]:
        return self.tokens[self.n_prompt:]

    def layer_inputs(self, seq: int, step: int, layer: int):
        target = self.chip_layers[layer]
        if layer == 0:
            self._x = self.lm.embed(np.array([self.tokens[step]]), np.array([step]))
            self._layer = 0
        self._software_until(step, target)
        q, k, v = self.lm.project(target, self._x, np.array([step]))
        return q[0], k[0], v[0]

    def receive(self, seq: int, step: int, layer: int, out) -> None:
        if out is None:
            raise ValueError("the chip in the loop needs the functional mode (values), not timing-only")
        target = self.chip_layers[layer]
        self._x = self.lm.finish_layer(target, self._x, np.asarray(out, np.float32)[None])
        self._layer = target + 1
        if layer == len(self.chip_layers) - 1:
            self._software_until(step, self.lm.layers)
            self.logits[step] = self.lm.logits(self._x)[0]
            if step >= self.n_prompt - 1 and len(self.tokens) < self.n_prompt + self.n_new:
                self.tokens.append(int(np.argmax(self.logits[step])))

    # layers kept in software -----------------------------------------------------------------
    def _software_until(self, step: int, stop: int) -> None:
        m = self.lm
        while self._layer < stop:
            l = self._layer
            q, k, v = (np.asarray(a, np.float64)[0] for a in m.project(l, self._x, np.array([step])))
            state, t_ps = self._soft[l], step * self._hw_soft.timing.nominal_token_period_ps
            state.write(step, k, v, t_ps)
            att = state.read(q, step, t_ps).out
            self._x = m.finish_layer(l, self._x, att[None].astype(np.float32))
            self._layer = l + 1


def chip_hardware(hw: Hardware, chip_layers, model) -> Hardware:
    """The description with as many layers as run on the chip."""
    n = model.layers if chip_layers is None else len(chip_layers)
    return hw if hw.shape.layers == n else hw.derive(shape={"layers": n})


def run_in_loop(model, hw: Hardware, ids, *, chip_layers=None, scalers=None, n_new: int = 0,
                progress: bool = False):
    """Run the simulator with `model` in its loop; returns (source, SimResult)."""
    src = LiveSource(model, ids, hw_soft=hw.derive(numerics={"dtype": "float64"}), chip_layers=chip_layers,
                     scalers=scalers, n_new=n_new)
    sim = Simulator(chip_hardware(hw, chip_layers, model), src)
    res = sim.run(progress=progress)
    return src, res
