"""Record a decode trace from a loop model (e.g. the chip-trained GPT): greedy decoding with
the model as trained, then every position's q, k, v, with the model's own per-head scalers
(learned, not calibrated). No attn_out: in the trace format that is the softmax output, and
this model's own attention is the chip's."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..traces.calibrate import clipped_counts
from ..traces.format import write_trace
from .loop import own_attention, window_logits

GENERATOR = "gcsim.llm.record v1"


def greedy_decode(model, hw, ids, n_new: int) -> list[int]:
    """Greedy continuation of ids by the model as trained (its own attention, in software)."""
    ids = [int(i) for i in ids]
    attend = own_attention(model, hw)
    for _ in range(n_new):
        ids.append(int(np.argmax(window_logits(model, np.array(ids), attend)[-1])))
    return ids


def record_model_trace(path, model, hw, prompt: str, n_new: int, *, command: str, dtype: str = "float32") -> Path:
    prompt_ids = model.encode(prompt)
    if len(prompt_ids) + n_new > min(model.context, hw.shape.window):
        raise ValueError(f"prompt ({len(prompt_ids)} tokens) + {n_new} new tokens exceed "
                         f"{min(model.context, hw.shape.window)} (the model's context / the hardware window)")
    ids = greedy_decode(model, hw, prompt_ids, n_new)
    rec: dict = {}
    window_logits(model, np.array(ids), own_attention(model, hw), record=rec)
    sc = model.scalers
    n = hw.numerics
    clip = {}
    for name, a, b, rng in (("q", "a_q", "b_q", n.q_range), ("k", "a_k", "b_k", n.kv_range_v),
                            ("v", "a_v", "b_v", n.kv_range_v)):
        x = rec[name]
        clip[name] = clipped_counts(x, sc[a], sc[b], rng) / (x.shape[0] * x.shape[-1])
    shape = {"name": model.name, "layers": model.layers, "heads": model.heads, "kv_heads": model.kv_heads,
             "d_head": model.d_head}
    prov = {"source": Path(model.weights.path).name, "prompt": prompt, "command": command, "seed": None,
            "synthetic": False, "generator": GENERATOR}
    return write_trace(path, q=rec["q"].astype(np.float32), k=rec["k"].astype(np.float32),
                       v=rec["v"].astype(np.float32), token_ids=np.array(ids, np.int32), model=shape,
                       scalers=sc, clip_fraction=clip, provenance=prov, dtype=dtype)
