"""Training of the chip model and its softmax twin with JAX (the optional `[train]` extra).

Resumable: a checkpoint (parameters, AdamW moments, iteration) is written every
`checkpoint_every` iterations and when a time limit stops a chunk; batches are a function
of (seed, iteration), so a run resumed from a checkpoint computes the same weights as one
that was not interrupted (on the same machine, JAX version and thread count).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import data
from .config import EXPERIMENTS, TrainConfig
from .model import ModelConfig, forward, init_params
from .weights import save_weights


def set_threads(threads: int) -> None:
    """Run on `threads` CPU cores (the first ones this process may use). XLA sizes its thread
    pools from the cores it may run on, so this must happen before jax is imported; the
    XLA_FLAGS route of earlier versions was ignored by XLA (1, 2 and 0 all used both cores)."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        raise ValueError(f"--threads {threads}: this process may run on {len(allowed)} cores only")
    os.sched_setaffinity(0, allowed[:threads])


def _jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise SystemExit("training needs JAX: pip install -e '.[train]'") from None
    return jax, jnp


def ste_round(x):
    """Straight-through rounding: round in the forward pass, identity gradient."""
    jax, jnp = _jax()
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def lr_at(it: int, tc: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from lr to min_lr at the last iteration."""
    if it < tc.warmup:
        return tc.lr * (it + 1) / tc.warmup
    frac = (it - tc.warmup) / max(1, tc.iters - tc.warmup)
    return tc.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))) * (tc.lr - tc.min_lr)


def _decayed(name: str) -> bool:
    """Weight decay on the matrices and embeddings, not on norms or scalers."""
    return name.split(".")[-1].startswith("w")


def make_step(cfg: ModelConfig, tc: TrainConfig, hw):
    jax, jnp = _jax()

    def loss_fn(params, x, y):
        logits = forward(params, x, cfg, jnp, hw=hw, round_fn=ste_round)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))

    @jax.jit
    def step(params, m, v, x, y, lr, t):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        norm = jnp.sqrt(sum(jnp.sum(g * g) for g in grads.values()))
        scale = jnp.minimum(1.0, tc.grad_clip / (norm + 1e-6))
        new_p, new_m, new_v = {}, {}, {}
        for k, g in grads.items():
            g = g * scale
            new_m[k] = tc.beta1 * m[k] + (1 - tc.beta1) * g
            new_v[k] = tc.beta2 * v[k] + (1 - tc.beta2) * g * g
            mhat = new_m[k] / (1 - tc.beta1 ** t)
            vhat = new_v[k] / (1 - tc.beta2 ** t)
            upd = mhat / (jnp.sqrt(vhat) + 1e-8)
            if _decayed(k):
                upd = upd + tc.weight_decay * params[k]
            new_p[k] = params[k] - lr * upd
        return new_p, new_m, new_v, loss

    return step, jax.jit(loss_fn)


def _save_checkpoint(path: Path, params, m, v, it: int, elapsed_s: float) -> None:
    arrays = {f"p/{k}": np.asarray(a) for k, a in params.items()}
    arrays.update({f"m/{k}": np.asarray(a) for k, a in m.items()})
    arrays.update({f"v/{k}": np.asarray(a) for k, a in v.items()})
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, iteration=np.int64(it), elapsed_s=np.float64(elapsed_s), **arrays)
    os.replace(tmp, path)


def _load_checkpoint(path: Path):
    with np.load(path) as z:
        groups = {g: {k[2:]: z[k] for k in z.files if k.startswith(g + "/")} for g in "pmv"}
        return groups["p"], groups["m"], groups["v"], int(z["iteration"]), float(z["elapsed_s"])


def train(name: str, out_dir: Path, *, iters: int | None = None, max_minutes: float | None = None,
          stop_at: int | None = None, checkpoint_every: int = 100, log=print, **changes) -> Path | None:
    """Train experiment `name` ('chip' or 'softmax') in out_dir, resuming from its checkpoint.

    Returns the weights file when the last iteration is done, None when the time limit
    (max_minutes) or stop_at (an iteration) stopped the chunk first (run again to resume);
    stop_at also writes the weights of that iteration (OUT/chipgpt-NAME.npz).
    changes: fields of TrainConfig to change (e.g. batch_size for a smoke test).
    """
    jax, jnp = _jax()
    from ..hardware import load_hardware

    cfg, tc = EXPERIMENTS[name]
    if iters is not None:
        changes["iters"] = iters
    tc = replace(tc, **changes)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / f"{name}.ckpt.npz"
    text = data.read_corpus()
    vocab = data.vocabulary(text)
    cfg = replace(cfg, vocab=len(vocab))
    train_ids, val_ids = data.split(data.encode(text, vocab))
    hw = load_hardware(cfg.hardware)
    step, loss_fn = make_step(cfg, tc, hw)
    if ckpt.exists():
        params, m, v, it0, elapsed = _load_checkpoint(ckpt)
        log(f"{name}: resuming at iteration {it0} ({elapsed:.0f} s trained so far)")
    else:
        params = init_params(cfg, tc.seed)
        m = {k: np.zeros_like(a) for k, a in params.items()}
        v = {k: np.zeros_like(a) for k, a in params.items()}
        it0, elapsed = 0, 0.0
    params, m, v = ({k: jnp.asarray(a) for k, a in d.items()} for d in (params, m, v))
    t_start = time.perf_counter()
    logf = open(out_dir / f"{name}.log.jsonl", "a")
    it = it0
    while it < tc.iters:
        if max_minutes is not None and time.perf_counter() - t_start > 60 * max_minutes:
            break
        if stop_at is not None and it >= stop_at:
            break
        x, y = data.batch(train_ids, it, tc.batch_size, cfg.context, tc.seed)
        params, m, v, loss = step(params, m, v, x, y, jnp.float32(lr_at(it, tc)), jnp.float32(it + 1))
        it += 1
        record = {"iter": it, "loss": float(loss)}
        if it % tc.eval_every == 0 or it == tc.iters:
            vals = [float(loss_fn(params, *data.batch(val_ids, i, tc.batch_size, cfg.context, tc.seed + 1)))
                    for i in range(tc.eval_batches)]
            record["val_loss"] = float(np.mean(vals))
        record["elapsed_s"] = round(elapsed + time.perf_counter() - t_start, 2)
        logf.write(json.dumps(record) + "\n")
        logf.flush()
        if "val_loss" in record or it % 50 == 0:
            log(f"{name}: iter {it}/{tc.iters} loss {record['loss']:.4f}"
                + (f" val {record['val_loss']:.4f}" if "val_loss" in record else "")
                + f" ({record['elapsed_s']:.0f} s)")
        if it % checkpoint_every == 0:
            _save_checkpoint(ckpt, params, m, v, it, elapsed + time.perf_counter() - t_start)
    elapsed += time.perf_counter() - t_start
    _save_checkpoint(ckpt, params, m, v, it, elapsed)
    logf.close()
    if it < tc.iters and (stop_at is None or it < stop_at):
        log(f"{name}: stopped at iteration {it}/{tc.iters} after the time limit; run again to resume")
        return None
    path = export_checkpoint(name, ckpt, out_dir / f"chipgpt-{name}.npz", **changes)
    log(f"{name}: wrote {path}" + (f" (iteration {it} of the {tc.iters}-iteration schedule)" if it < tc.iters else ""))
    return path if it >= tc.iters else None


def export_checkpoint(name: str, ckpt: Path, out: Path, **changes) -> Path:
    """The weights file of experiment `name` from a checkpoint (at the end of the schedule, or
    where --stop-at stopped it), with how it was trained."""
    jax, _ = _jax()
    cfg, tc = EXPERIMENTS[name]
    tc = replace(tc, **changes)
    vocab = data.vocabulary(data.read_corpus())
    params, _, _, it, elapsed = _load_checkpoint(Path(ckpt))
    meta = {"experiment": name, "train": tc.to_dict(), "iterations": it, "train_seconds": round(elapsed, 1),
            "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", "")}
    if it < tc.iters:
        meta["stopped_at"] = it
    return save_weights(out, params, replace(cfg, vocab=len(vocab)), vocab, meta)
