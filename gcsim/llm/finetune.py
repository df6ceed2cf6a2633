"""Fine-tuning SmolLM2-135M with the chip's attention (JAX, the `[train]` extra): the paper's
last stage (issue 19, point 4) after the adaptation of its scalers (gcsim.adaptation through
gcsim.llm.loop.adapt_loop_scalers).

The forward pass is the numpy decoder's, written once over an array namespace
(gcsim/llm/decoder.py: RMSNorm, RoPE, SwiGLU), with every layer's attention the chip's
whole-window hardware attention (gcsim.chipmodel.model.hardware_attention: DAC front end,
cell law with retention, HardSigmoid, output counters, per-head scalers). Grouped-query
attention: head h reads K/V head h // (H/KV), so k, v and their scalers are repeated per
group. The backward pass takes the quantizers' rounding straight through and, for the cubic
cell, the linear law's gradient (the paper's surrogate, gcsim.chipmodel.config.GRAD_LAW).
The optimizer is the chip GPT's AdamW step (gcsim.chipmodel.train.adamw_update).

Every window starts from an empty state (token u in slot u), as in `gcsim eval`. On a CPU
only a few steps are practical (docs/accuracy.md gives the time per step); a real fine-tune
needs a GPU.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..chipmodel.gradients import jax_modules, next_token_nll
from ..datapath import KV_SCALERS, SCALER_KEYS

TRAINABLE = ("all", "scalers")  # every weight and scaler, or the per-head scalers only


def params_of(lm, scalers: dict) -> dict[str, np.ndarray]:
    """The decoder's weights (lm: gcsim.llm.SmolLM2) and the scalers ([L, H] / [L, KV]) as one
    flat dict of float32 arrays: embed (tied LM head), out_norm, l{i}.NAME per layer."""
    p = {"embed": lm.embed, "out_norm": lm.out_norm}
    for i, L in enumerate(lm.layers):
        for name in ("attn_norm", "wqkv", "wo", "ffn_norm", "wgu", "wdown"):
            p[f"l{i}.{name}"] = getattr(L, name)
    for key in SCALER_KEYS:
        p[key] = np.asarray(scalers[key], np.float32)
    return p


def forward(params, ids, lm, hw, law: str, xp, *, round_fn=None, grad_law: str | None = None):
    """Logits [B, T, vocab] of windows ids [B, T], each from an empty state, every layer's
    attention the chip's with cell law `law` (grad_law: the law whose gradient the bit-line
    charges take, see hardware_attention)."""
    from ..chipmodel.model import hardware_attention
    from ..reference import hardware_for_variant
    from .decoder import finish_residual, project_layer, rms_norm
    H, KV, dh, eps, d_ff = lm.n_heads, lm.n_kv_heads, lm.d_head, lm.hparams.rms_eps, lm.hparams.d_ff
    G = H // KV
    hw = hardware_for_variant(hw, law)
    cos, sin = lm._rope_tables(np.arange(ids.shape[1]))
    sc = {k: xp.repeat(params[k], G, axis=1) if k in KV_SCALERS else params[k] for k in SCALER_KEYS}
    x = xp.take(params["embed"], ids, axis=0)
    for i in range(lm.n_layers):
        q, k, v = project_layer(x, params[f"l{i}.attn_norm"], params[f"l{i}.wqkv"], cos, sin, H, KV, dh, eps, xp)
        att = hardware_attention(q, xp.repeat(k, G, axis=2), xp.repeat(v, G, axis=2), sc, i, hw, xp, round_fn,
                                 grad_law)
        x = finish_residual(x, att, params[f"l{i}.wo"], params[f"l{i}.ffn_norm"], params[f"l{i}.wgu"],
                            params[f"l{i}.wdown"], d_ff, eps, xp)
    return rms_norm(x, params["out_norm"], eps, xp) @ params["embed"].T


def make_step(lm, hw, law: str, tc):
    """(step, loss_fn) as gcsim.chipmodel.train.make_step: step(train, frozen, m, v, x, y, lr, t)
    -> (train, m, v, loss), one jitted AdamW step of the trainable parameters; loss_fn(train,
    frozen, x, y), the mean next-token NLL of windows x [B, T] with targets y [B, T]."""
    jax, jnp = jax_modules()
    from ..chipmodel.config import GRAD_LAW
    from ..chipmodel.gradients import ste_round
    from ..chipmodel.train import adamw_update
    grad_law = GRAD_LAW.get(law)

    def loss_fn(train, frozen, x, y):
        return next_token_nll(forward({**frozen, **train}, x, lm, hw, law, jnp, round_fn=ste_round,
                                      grad_law=grad_law), y)

    @jax.jit
    def step(train, frozen, m, v, x, y, lr, t):
        loss, grads = jax.value_and_grad(loss_fn)(train, frozen, x, y)
        new_p, new_m, new_v = adamw_update(train, grads, m, v, lr, t, tc)
        return new_p, new_m, new_v, loss

    return step, jax.jit(loss_fn)


def split_trainable(params: dict, trainable: str) -> tuple[dict, dict]:
    if trainable not in TRAINABLE:
        raise ValueError(f"trainable: expected one of {', '.join(TRAINABLE)}, found {trainable!r}")
    keys = set(params) if trainable == "all" else set(SCALER_KEYS)
    return ({k: v for k, v in params.items() if k in keys}, {k: v for k, v in params.items() if k not in keys})


def finetune(lm, hw, scalers: dict, batches, *, steps: int, law: str = "cubic", lr: float = 3e-5,
             trainable: str = "all", log=None) -> tuple[dict, list[dict]]:
    """`steps` AdamW steps of SmolLM2 with the chip's attention from `scalers` (the adapted
    ones), batches(step) -> int array [B, T + 1] (inputs and next tokens). Returns (the
    trained parameters, as float32 numpy: every trainable one, see TRAINABLE; history: one
    row per step with the batch's loss before the step and its wall time)."""
    jax, jnp = jax_modules()
    from ..chipmodel.config import TrainConfig
    tc = TrainConfig(iters=steps, lr=lr, weight_decay=0.0)
    train, frozen = split_trainable(params_of(lm, scalers), trainable)
    train = {k: jnp.asarray(v) for k, v in train.items()}
    frozen = {k: jnp.asarray(v) for k, v in frozen.items()}
    m = {k: jnp.zeros_like(v) for k, v in train.items()}
    v = {k: jnp.zeros_like(x) for k, x in train.items()}
    step, _ = make_step(lm, hw, law, tc)
    history = []
    for it in range(steps):
        ids = np.asarray(batches(it))
        t0 = time.perf_counter()
        train, m, v, loss = step(train, frozen, m, v, jnp.asarray(ids[:, :-1]), jnp.asarray(ids[:, 1:]),
                                 jnp.float32(lr), jnp.float32(it + 1))
        loss = float(loss)
        if not np.isfinite(loss):
            raise FloatingPointError(f"fine-tune step {it}: the loss is {loss}")
        history.append({"step": it, "loss": loss, "wall_s": time.perf_counter() - t0})
        if log:
            log(f"finetune: iter {it}: loss {loss:.4f} ({history[-1]['wall_s']:.1f} s)")
    return {k: np.asarray(x, np.float32) for k, x in train.items()}, history


def batch_loss(lm, hw, params: dict, ids, law: str = "cubic") -> float:
    """The mean next-token NLL of windows ids [B, T + 1] with the chip's attention (JAX)."""
    jax, jnp = jax_modules()
    ids = jnp.asarray(np.asarray(ids))
    logits = forward({k: jnp.asarray(v) for k, v in params.items()}, ids[:, :-1], lm, hw, law, jnp)
    return float(next_token_nll(logits, ids[:, 1:]))


def save_finetuned(path: Path, params: dict, meta: dict) -> Path:
    """The trained parameters (and scalers) as .npz with its provenance in `meta` (a JSON
    string: source model checksum, recipe, steps, wall time, losses); written to a temporary
    name and moved into place, so no half-written file is left."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **params, meta=np.array(json.dumps(meta, sort_keys=True)))
    os.replace(tmp, path)
    return path


def load_finetuned(path: Path) -> tuple[dict, dict]:
    """(parameters, meta) of a file save_finetuned wrote."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return {k: z[k] for k in z.files if k != "meta"}, meta


FINETUNED = "smollm2/smollm2-finetuned.npz"   # files run_finetune writes, relative to its folder
REPORT = "smollm2/finetune.json"


def run_finetune(out_dir: Path, *, steps: int, seq_len: int = 64, lr: float = 3e-5, trainable: str = "all",
                 law: str = "cubic", adapt_passes: int = 100, seed: int = 1337, log=None, lm=None) -> Path:
    """The whole path for SmolLM2: the paper's adaptation of the scalers (no gradient; from
    the closed-form ones, on the first seq_len tokens of the training split of the shipped
    corpus), then `steps` fine-tune steps on windows of seq_len tokens of that split drawn from
    `seed`. Writes OUT/smollm2/smollm2-finetuned.npz (the trainable parameters, with the
    scalers) with its provenance, and OUT/smollm2/finetune.json (the same meta: source
    checksum, recipe, adaptation passes, loss per step, wall times)."""
    from ..adaptation import AdaptationConfig
    from ..chipmodel.data import read_corpus, split_text
    from .decoder import SmolLM2
    from .loop import SmolLM2Model, adapt_loop_scalers, model_hardware
    t_start = time.perf_counter()
    lm = lm if lm is not None else SmolLM2.load()
    model = SmolLM2Model(lm)
    hw = model_hardware(model)
    if not 0 < seq_len <= min(hw.shape.window, model.context):
        raise ValueError(f"seq_len must lie in 1..{min(hw.shape.window, model.context)}, found {seq_len}")
    ids = model.encode(split_text(read_corpus())[0])
    t0 = time.perf_counter()
    scalers, passes = adapt_loop_scalers(model, ids[:seq_len], hw, law, AdaptationConfig(max_passes=adapt_passes),
                                         log=log)
    adapt_s = time.perf_counter() - t0
    if log:
        log(f"finetune: scalers adapted ({law} law): {len(passes)} passes, "
            f"{'converged' if passes[-1]['converged'] else 'not converged'} ({adapt_s:.1f} s)")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - seq_len - 1, size=steps)
    params, history = finetune(lm, hw, scalers, lambda it: ids[None, starts[it]:starts[it] + seq_len + 1],
                               steps=steps, law=law, lr=lr, trainable=trainable, log=log)
    from ..chipmodel.config import GRAD_LAW
    meta = {"source": {"model": lm.name, "gguf_sha256": lm.sha256},
            "recipe": {"law": law, "grad_law": GRAD_LAW.get(law), "trainable": trainable, "steps": steps,
                       "seq_len": seq_len, "batch": 1, "lr": lr, "optimizer": "AdamW (gcsim.chipmodel.train), "
                       "weight decay 0", "seed": seed, "data": "tiny-shakespeare training split (first 90 %)"},
            "adaptation": {"passes": len(passes), "converged": bool(passes[-1]["converged"]),
                           "calibration_tokens": seq_len, "wall_s": adapt_s},
            "history": history, "wall_s": time.perf_counter() - t_start}
    out_dir = Path(out_dir)
    (out_dir / FINETUNED).parent.mkdir(parents=True, exist_ok=True)
    save_finetuned(out_dir / FINETUNED, params, meta)
    tmp = out_dir / (REPORT + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / REPORT)
    return out_dir / FINETUNED
