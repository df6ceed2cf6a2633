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
from .config import EXPERIMENTS, GRAD_LAW, TrainConfig
from .gradients import jax_modules, next_token_nll, ste_round
from .model import ModelConfig, forward, init_params
from .weights import save_weights


def set_threads(threads: int) -> None:
    """Run on `threads` CPU cores of those this process may use, the least busy ones now
    (least_busy_cores): two runs started side by side with --threads 1 take different cores
    instead of sharing the first. XLA sizes its thread pools from the cores it may run on, so
    this must happen before jax is imported; the XLA_FLAGS route of earlier versions was
    ignored by XLA (1, 2 and 0 all used both cores). Which cores does not change results."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        raise ValueError(f"--threads {threads}: this process may run on {len(allowed)} cores only")
    if threads < len(allowed):
        os.sched_setaffinity(0, least_busy_cores(allowed, threads))


def _busy_ticks() -> dict[int, int]:
    """Busy (non-idle, non-iowait) ticks per CPU since boot, from /proc/stat ({} elsewhere)."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *ticks = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    t = [int(x) for x in ticks]
                    out[int(name[3:])] = sum(t) - t[3] - (t[4] if len(t) > 4 else 0)
    except (OSError, ValueError, IndexError):
        return {}
    return out


def least_busy_cores(allowed: list[int], n: int, *, sample_s: float = 0.2, ticks=_busy_ticks) -> list[int]:
    """The n cores of `allowed` that were busy least over the next sample_s seconds (ties: the
    lower number first; without /proc/stat the first n)."""
    before = ticks()
    time.sleep(sample_s)
    after = ticks()
    busy = {c: after.get(c, 0) - before.get(c, 0) for c in allowed}
    return sorted(sorted(allowed, key=lambda c: (busy[c], c))[:n])


def lr_at(it: int, tc: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from lr to min_lr at the last iteration."""
    if it < tc.warmup:
        return tc.lr * (it + 1) / tc.warmup
    frac = (it - tc.warmup) / max(1, tc.iters - tc.warmup)
    return tc.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))) * (tc.lr - tc.min_lr)


def _decayed(name: str) -> bool:
    """Weight decay on the matrices and embeddings, not on norms or scalers."""
    return name.split(".")[-1].startswith("w")


def make_step(cfg: ModelConfig, tc: TrainConfig, hw, grad_law: str | None = None):
    """(step, loss_fn): one AdamW step on a batch, jitted, and the batch loss. grad_law: the
    cell law whose gradient the hardware attention takes (None: its own)."""
    jax, jnp = jax_modules()

    def loss_fn(params, x, y):
        return next_token_nll(forward(params, x, cfg, jnp, hw=hw, round_fn=ste_round, grad_law=grad_law), y)

    @jax.jit
    def step(params, m, v, x, y, lr, t):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        new_p, new_m, new_v = adamw_update(params, grads, m, v, lr, t, tc)
        return new_p, new_m, new_v, loss

    return step, jax.jit(loss_fn)


def adamw_update(params, grads, m, v, lr, t, tc: TrainConfig):
    """One AdamW update (traced inside a jitted step): gradients clipped to a global norm of
    tc.grad_clip, weight decay on the matrices only (_decayed). Returns (params, m, v)."""
    _, jnp = jax_modules()
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
    return new_p, new_m, new_v


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


def _truncate_log(path: Path, it0: int) -> None:
    """Keep the log's records up to the checkpoint's iteration it0 (none when starting afresh):
    a chunk killed between checkpoints logged iterations that the resumed run does again."""
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    keep = [line for line in lines if it0 > 0 and line.strip() and json.loads(line).get("iter", 0) <= it0]
    if len(keep) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, path)


def train(name: str, out_dir: Path, *, iters: int | None = None, max_minutes: float | None = None,
          stop_at: int | None = None, checkpoint_every: int = 100, log=print, **changes) -> Path | None:
    """Train experiment `name` ('chip' or 'softmax', gcsim/chipmodel/config.py) from its
    initialisation in out_dir, resuming from its checkpoint (see run_training)."""
    cfg, tc = EXPERIMENTS[name]
    if iters is not None:
        changes["iters"] = iters
    tc = replace(tc, **changes)
    cfg = replace(cfg, vocab=len(data.vocabulary(data.read_corpus())))
    return run_training(name, cfg, tc, out_dir, init=lambda: init_params(cfg, tc.seed),
                        meta={"experiment": name}, max_minutes=max_minutes, stop_at=stop_at,
                        checkpoint_every=checkpoint_every, log=log)


def run_training(name: str, cfg: ModelConfig, tc: TrainConfig, out_dir: Path, *, init, meta: dict,
                 eval_at_start: bool = False, max_minutes: float | None = None,
                 stop_at: int | None = None, checkpoint_every: int = 100, log=print) -> Path | None:
    """Train model cfg with recipe tc in out_dir (NAME.ckpt.npz, NAME.log.jsonl, chipgpt-NAME.npz),
    from init() (the parameters at iteration 0) or from its checkpoint.

    Returns the weights file when the last iteration is done, None when the time limit
    (max_minutes) or stop_at (an iteration) stopped the chunk first (run again to resume);
    stop_at also writes the weights of that iteration. The hardware attention's gradient is
    that of config.GRAD_LAW (the linear surrogate for the cubic law). meta: what the weights file records
    beside the recipe (experiment name, source model). eval_at_start: log the held-out loss
    of the initial parameters as iteration 0 (the start of a fine-tuning curve).
    """
    jax, jnp = jax_modules()
    from ..hardware import load_hardware

    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / f"{name}.ckpt.npz"
    train_ids, val_ids = data.split(data.encode(data.read_corpus(), data.vocabulary(data.read_corpus())))
    hw = load_hardware(cfg.hardware)
    grad_law = GRAD_LAW.get(cfg.attention)
    step, loss_fn = make_step(cfg, tc, hw, grad_law)
    if ckpt.exists():
        params, m, v, it0, elapsed = _load_checkpoint(ckpt)
        log(f"{name}: resuming at iteration {it0} ({elapsed:.0f} s trained so far)")
    else:
        params = init()
        m = {k: np.zeros_like(a) for k, a in params.items()}
        v = {k: np.zeros_like(a) for k, a in params.items()}
        it0, elapsed = 0, 0.0
    params, m, v = ({k: jnp.asarray(a) for k, a in d.items()} for d in (params, m, v))

    def val_loss():  # the same held-out batches at every evaluation
        return float(np.mean([float(loss_fn(params, *data.batch(val_ids, i, tc.batch_size, cfg.context, tc.seed + 1)))
                              for i in range(tc.eval_batches)]))

    t_start = time.perf_counter()
    log_path = out_dir / f"{name}.log.jsonl"
    _truncate_log(log_path, it0)
    logf = open(log_path, "a")
    if it0 == 0 and eval_at_start:
        logf.write(json.dumps({"iter": 0, "val_loss": val_loss(), "elapsed_s": 0.0}) + "\n")
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
            record["val_loss"] = val_loss()
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
    path = export_checkpoint(ckpt, out_dir / f"chipgpt-{name}.npz", cfg, tc,
                             {**meta, **({"grad_law": grad_law} if grad_law else {})})
    log(f"{name}: wrote {path}" + (f" (iteration {it} of the {tc.iters}-iteration schedule)" if it < tc.iters else ""))
    return path if it >= tc.iters else None


def export_checkpoint(ckpt: Path, out: Path, cfg: ModelConfig, tc: TrainConfig, meta: dict) -> Path:
    """The weights file from a checkpoint (at the end of the schedule, or where --stop-at
    stopped it), with how it was trained: meta plus the recipe, iterations and wall time."""
    jax, _ = jax_modules()
    vocab = data.vocabulary(data.read_corpus())
    params, _, _, it, elapsed = _load_checkpoint(Path(ckpt))
    meta = {**meta, "train": tc.to_dict(), "iterations": it, "train_seconds": round(elapsed, 1),
            "jax": jax.__version__, "threads": len(os.sched_getaffinity(0))}
    if it < tc.iters:
        meta["stopped_at"] = it
    return save_weights(out, params, replace(cfg, vocab=len(vocab)), vocab, meta)
