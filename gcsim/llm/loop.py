"""Language models with the chip in their loop.

A *loop model* exposes the host's side of a decoder layer by layer, so the attention of
any layer can come from the chip (the numeric reference model or the simulator) and the
chip's output flows back into the rest of the model:

  embed(ids, positions) -> x [n, C]
  project(layer, x, positions) -> q [n, H, d], k [n, KV, d], v [n, KV, d]
  finish_layer(layer, x, att [n, H, d]) -> x       (output projection, MLP, residuals)
  logits(x) -> [n, vocab]

Two implementations: `SmolLM2Model` (the real SmolLM2-135M, trained for softmax: a
negative control) and `ChipGPTModel` (the character GPT of gcsim.chipmodel trained with
the chip's attention: the positive case).

`window_logits` runs a whole window teacher-forced from an empty state with a given
attention per layer: because attention is causal, this equals decoding the window step by
step with each layer's output fed back, which the simulator in the loop does
(gcsim.llm.live).
"""
from __future__ import annotations

import numpy as np

from ..datapath import SCALER_KEYS
from ..hardware import Hardware, load_hardware
from ..reference import layer_attention

NEGATIVE_CONTROL_NOTE = ("SmolLM2-135M is trained for softmax attention, not for this hardware: it is a "
                         "negative control, and its collapse with the chip in the loop is the expected result.")


class SmolLM2Model:
    """SmolLM2-135M (gcsim.llm.SmolLM2) seen layer by layer; hardware models/smollm2.yaml."""
    negative_control = True
    hardware = "smollm2"

    def __init__(self, lm=None):
        if lm is None:
            from .decoder import SmolLM2
            lm = SmolLM2.load()
        self.lm = lm
        self.name = "SmolLM2-135M"
        self.layers, self.heads, self.kv_heads = lm.n_layers, lm.n_heads, lm.n_kv_heads
        self.d_head, self.vocab_size = lm.d_head, lm.vocab_size
        self.context = lm.hparams.context_length
        self.scalers = None  # calibrated on a text (calibrate_scalers), or from a trace

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.lm.tokenizer.encode(text), dtype=np.int64)

    def decode(self, ids) -> str:
        return self.lm.tokenizer.decode([int(i) for i in ids])

    def embed(self, ids, positions):
        return self.lm.embed[np.asarray(ids)]

    def project(self, layer, x, positions):
        return self.lm.project(layer, x, positions)

    def finish_layer(self, layer, x, att):
        return self.lm.finish_layer(layer, x, att)

    def logits(self, x):
        return self.lm.logits(x)


class ChipGPTModel:
    """The character-level GPT of gcsim.chipmodel (numpy forward); hardware from its config."""
    negative_control = False

    def __init__(self, weights="chip"):
        from ..chipmodel.model import scalers_of
        from ..chipmodel.weights import load_weights
        w = load_weights(weights)
        self.weights, self.cfg, self.vocab, self.params = w, w.cfg, w.vocab, w.params
        self.name = f"chipgpt-{w.meta.get('experiment', w.cfg.attention)}"
        self.hardware = w.cfg.hardware
        self.layers, self.heads, self.kv_heads = w.cfg.layers, w.cfg.heads, w.cfg.heads
        self.d_head, self.vocab_size, self.context = w.cfg.d_head, w.cfg.vocab, w.cfg.context
        self.attention = w.cfg.attention  # what it was trained with
        self.scalers = scalers_of(w.params)  # learned (None for the softmax twin)

    def encode(self, text: str) -> np.ndarray:
        from ..chipmodel.data import encode
        return encode(text, self.vocab).astype(np.int64)

    def decode(self, ids) -> str:
        from ..chipmodel.data import decode
        return decode(ids, self.vocab)

    def embed(self, ids, positions):
        from ..chipmodel.model import embed
        return embed(self.params, np.asarray(ids), np.asarray(positions), np)

    def project(self, layer, x, positions):
        from ..chipmodel.model import project_qkv
        return project_qkv(self.params, layer, x, self.cfg, np)

    def finish_layer(self, layer, x, att):
        from ..chipmodel.model import finish_layer
        return finish_layer(self.params, layer, x, np.asarray(att, np.float32), np)

    def logits(self, x):
        from ..chipmodel.model import logits_of
        return logits_of(self.params, x, np)

    def forward_windows(self, ids, hw: Hardware, law: str | None = None, scalers: dict | None = None,
                        chip_layers=None) -> np.ndarray:
        """Logits [B, T, vocab] of windows ids [B, T], each teacher-forced from an empty state,
        in one batched forward pass: for each window what window_logits gives with
        own_attention (law None) or chip_attention(hw, law, scalers, chip_layers, own), the
        host in float32 and the attention in float64 as there. The hardware attention is the
        numeric reference in its whole-window form (chipmodel.model.hardware_attention, tested
        equal to gcsim.reference): no device noise, token times at the nominal period."""
        from ..chipmodel.model import forward, hardware_attention, softmax_attention
        from ..reference import hardware_for_variant

        def attend(q, k, v, layer):
            on_chip = law is not None and (chip_layers is None or layer in chip_layers)
            use, sc = (law, scalers) if on_chip else (self.attention, self.scalers)
            q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
            if use == "softmax":
                out = softmax_attention(q, k, v, np)
            else:
                out = hardware_attention(q, k, v, sc, layer, hardware_for_variant(hw, use), np)
            return out.astype(np.float32)
        return forward(self.params, np.asarray(ids), self.cfg, np, attention=attend)


def load_loop_model(name: str):
    """'smollm2', 'chip' / 'softmax' (the shipped chip-model pair) or a chip-model weights path."""
    if name == "smollm2":
        return SmolLM2Model()
    return ChipGPTModel(name)


def model_hardware(model, hw: Hardware | str | None = None) -> Hardware:
    """The description for `model` (its own by default) sized to its shape."""
    hw = load_hardware(model.hardware if hw is None else hw) if not isinstance(hw, Hardware) else hw
    s = hw.shape
    want = {"layers": model.layers, "heads": model.heads, "kv_heads": model.kv_heads, "d_head": model.d_head}
    bad = {k: v for k, v in want.items() if getattr(s, k) != v}
    if bad:
        raise ValueError(f"hardware description {hw.source} does not fit {model.name}: "
                         + ", ".join(f"shape.{k} is {getattr(s, k)}, the model has {v}" for k, v in bad.items()))
    return hw


def own_attention(model, hw: Hardware):
    """The model's attention as trained, computed in software: causal softmax (scale
    1/sqrt(d)) for SmolLM2 and the softmax twin, the chip's numeric reference model with the
    learned scalers for the chip-trained GPT."""
    law = getattr(model, "attention", "softmax")
    scalers = None if law == "softmax" else model.scalers

    def attend(layer, q, k, v):
        return layer_attention(q, k, v, hw, variant=law, scalers=scalers, layer=layer, stages=False).out
    return attend


def chip_attention(hw: Hardware, variant: str, scalers: dict | None, chip_layers=None, rest=None):
    """The numeric reference model of the hardware on `chip_layers` (all when None);
    `rest(layer, q, k, v)` (the model's own attention, see own_attention) on the others.
    Device noise: the description's numerics.noise."""
    if chip_layers is not None and rest is None:
        raise ValueError("chip_attention: with a subset of chip layers, give the attention of the others (rest=)")

    def attend(layer, q, k, v):
        if chip_layers is not None and layer not in chip_layers:
            return rest(layer, q, k, v)
        return layer_attention(q, k, v, hw, variant=variant, scalers=scalers, layer=layer, stages=False).out
    return attend


def window_logits(model, ids, attend, *, record=None) -> np.ndarray:
    """Logits [T, vocab] of a window ids [T] teacher-forced from an empty state, every
    layer's attention from attend(layer, q, k, v) (float64 [T, H, d]). record: a dict that
    receives q, k, v, out [T, L, ., d] if given."""
    ids = np.asarray(ids)
    pos = np.arange(len(ids))
    x = model.embed(ids, pos)
    for layer in range(model.layers):
        q, k, v = (np.asarray(a, np.float64) for a in model.project(layer, x, pos))
        out = attend(layer, q, k, v)
        if record is not None:
            for key, a in (("q", q), ("k", k), ("v", v), ("out", out)):
                record.setdefault(key, []).append(a)
        x = model.finish_layer(layer, x, out.astype(np.float32))
    if record is not None:
        for key in ("q", "k", "v", "out"):
            record[key] = np.stack(record[key], axis=1)
    return model.logits(x)


def record_windows(model, windows, attend) -> dict:
    """window_logits' record over several windows (each from an empty state), concatenated
    along the steps: q, k, v, out [sum of T, L, ., d]."""
    recs = []
    for ids in windows:
        rec: dict = {}
        window_logits(model, ids, attend, record=rec)
        recs.append(rec)
    return {key: np.concatenate([r[key] for r in recs]) for key in ("q", "k", "v", "out")}


def calibrate_scalers(model, ids, hw: Hardware, variant: str = "cubic") -> dict:
    """Per-head scalers for a model not trained for the chip, from a calibration text ids
    (one window [T], or several [B, T], each from an empty state): the DAC scalers from
    activation statistics (gcsim.traces.calibrate) and the output scaler a_out, b_out fitted
    per head by least squares to the software attention output (the best affine map of the
    hardware output back to model units)."""
    from ..traces.calibrate import calibrate
    windows = [ids] if np.ndim(ids) == 1 else list(ids)
    rec = record_windows(model, windows, own_attention(model, hw))
    scalers, _ = calibrate(rec["q"], rec["k"], rec["v"], q_range=hw.numerics.q_range,
                           kv_range=hw.numerics.kv_range_v)
    bounds = np.cumsum([0] + [len(w) for w in windows])
    for layer in range(model.layers):
        raw = np.concatenate([  # a_out = 1, b_out = 0; each window from an empty state
            layer_attention(rec["q"][t0:t1, layer], rec["k"][t0:t1, layer], rec["v"][t0:t1, layer], hw,
                            variant=variant, scalers=scalers, layer=layer, stages=False).out
            for t0, t1 in zip(bounds[:-1], bounds[1:])])
        soft = rec["out"][:, layer]
        for h in range(model.heads):
            x, y = raw[:, h].ravel(), soft[:, h].ravel()
            var = x.var()
            a = ((x - x.mean()) * (y - y.mean())).mean() / var if var > 0 else 0.0
            scalers["a_out"][layer, h], scalers["b_out"][layer, h] = a, y.mean() - a * x.mean()
    return {k: scalers[k] for k in SCALER_KEYS}


def adapt_loop_scalers(model, ids, hw: Hardware, law: str, cfg=None, *, on_pass=None, log=None):
    """The paper's adaptation of the scalers (gcsim.adaptation) for a model not trained for the
    chip (SmolLM2, or the chip GPT's softmax twin), no gradient: from the closed-form scalers
    (calibrate_scalers), every a and b iterated until, with the reference model of cell law
    `law` in the loop on the calibration windows ids ([T] or [B, T]), the statistics of each
    layer's and head's scaled q, k, v equal those the closed-form DAC mapping gives the model's
    own activations, and its attention output those of the model's own (softmax) output.
    Returns (scalers, history) as adapt_scalers."""
    from ..adaptation import AdaptationConfig, adapt_scalers, signal_stats
    windows = [ids] if np.ndim(ids) == 1 else list(ids)
    start = calibrate_scalers(model, windows, hw, law)
    targets = signal_stats(record_windows(model, windows, own_attention(model, hw)), start)

    def run(sc):
        return record_windows(model, windows, chip_attention(hw, law, sc))

    def report(p, sc):
        extra = on_pass(p, sc) if on_pass else None
        if log:
            log(f"adapt ({law} law): pass {p}")
        return extra
    return adapt_scalers(run, start, targets, cfg or AdaptationConfig(), on_pass=report)
