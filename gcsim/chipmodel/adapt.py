"""The paper's recipe for putting a softmax-trained model on the chip, for the chip GPT, from
the corpus (the stages run one after another by `gcsim adapt`; each is a function usable on
its own):

1. softmax    the softmax twin (config.SOFTMAX_TRAIN)                      softmax/chipgpt-softmax.npz
2. linear     fine-tune with the gain-cell attention and the linear cell law, starting from
              the twin and the closed-form scalers (DAC ranges from activation quantiles,
              least-squares output fit: gcsim.llm.loop.calibrate_scalers)    linear/chipgpt-linear.npz
3. calibrate  the cubic cell law put in, every per-head scaler adapted by the paper's
              algorithm (gcsim.adaptation) to the linear model's statistics on one batch, no
              gradient                                                        calibrate/chipgpt-calibrated.npz
4. cubic      fine-tune with the cubic law (its gradient the linear law's)    cubic/chipgpt-cubic.npz

and the ablation's other arms at equal compute (config.CHIP_ITERS iterations with the chip's
attention each): `scratch` (the cubic model from a random initialisation) and `direct` (the
twin fine-tuned with the cubic law from the closed-form scalers, no linear stage and no
adaptation). Training stages resume from their checkpoints; a stage whose weights file exists
is done.
"""
from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..adaptation import AdaptationConfig, adapt_scalers, signal_stats
from ..datapath import SCALER_KEYS
from . import data
from .config import (CALIBRATION_BATCH, CUBIC_FINETUNE, DIRECT_FINETUNE, EXPERIMENTS, LINEAR_FINETUNE,
                     SCRATCH_TRAIN, TrainConfig)
from .weights import load_weights, save_weights

STAGES = ("softmax", "linear", "calibrate", "cubic")
ARMS = ("scratch", "direct")  # the ablation's arms besides the pipeline's own models
FINAL = "chipgpt-chip.npz"


def weights_path(out: Path, stage: str) -> Path:
    """Where stage `stage` of a pipeline in `out` writes its weights."""
    name = "calibrated" if stage == "calibrate" else stage
    return Path(out) / stage / f"chipgpt-{name}.npz"


def params_sha256(params: dict) -> str:
    """Checksum of a model's parameters (names, shapes, dtypes and bytes, in name order): the
    same weights give the same checksum whatever file holds them."""
    h = hashlib.sha256()
    for key in sorted(params):
        a = np.ascontiguousarray(params[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def source_of(path: Path) -> dict:
    """How a stage's weights file names the model it started from."""
    w = load_weights(path)
    return {"file": Path(path).name, "experiment": w.meta.get("experiment"), "params_sha256": params_sha256(w.params)}


def calibration_windows(cfg) -> np.ndarray:
    """The calibration batch [16, 256] of training text (config.CALIBRATION_BATCH)."""
    train_ids, _ = data.split(data.encode(data.read_corpus(), data.vocabulary(data.read_corpus())))
    tc = LINEAR_FINETUNE
    return data.batch(train_ids, CALIBRATION_BATCH, tc.batch_size, cfg.context, tc.seed)[0]


def closed_form_scalers(softmax_path: Path, law: str) -> dict:
    """Scalers for the twin on the chip with cell law `law`, no training: DAC ranges from the
    twin's activation quantiles and a least-squares output fit per head, on the calibration
    batch (gcsim.llm.loop.calibrate_scalers)."""
    from ..hardware import load_hardware
    from ..llm.loop import ChipGPTModel, calibrate_scalers, model_hardware
    from ..reference import hardware_for_variant
    model = ChipGPTModel(softmax_path)
    hw = hardware_for_variant(model_hardware(model, load_hardware(model.hardware)), law)
    return calibrate_scalers(model, calibration_windows(model.cfg), hw, law)


def _with_scalers(params: dict, scalers: dict) -> dict:
    return {**{k: v for k, v in params.items() if k not in SCALER_KEYS},
            **{k: np.asarray(scalers[k], np.float32) for k in SCALER_KEYS}}


def finetune_from(name: str, source: Path, out_dir: Path, law: str, tc: TrainConfig, *, scalers: str,
                  **kw) -> Path | None:
    """Fine-tune the model in `source` with cell law `law` (stage `name`, in out_dir), resuming
    from its checkpoint. scalers: 'closed-form' (computed for the twin, see closed_form_scalers)
    or 'source' (the source model's own)."""
    from .train import run_training
    w = load_weights(source)
    cfg = replace(w.cfg, attention=law)

    def init():
        if scalers == "source":
            return dict(w.params)
        return _with_scalers(w.params, closed_form_scalers(source, law))
    meta = {"experiment": name, "source": source_of(source), "initial_scalers": scalers}
    return run_training(name, cfg, tc, Path(out_dir), init=init, meta=meta, eval_at_start=True, **kw)


def linear_finetune(softmax_path: Path, out_dir: Path, tc: TrainConfig = LINEAR_FINETUNE, **kw) -> Path | None:
    """Stage 2: the twin fine-tuned with the linear cell law, from the closed-form scalers."""
    return finetune_from("linear", softmax_path, out_dir, "linear", tc, scalers="closed-form", **kw)


def cubic_finetune(calibrated_path: Path, out_dir: Path, tc: TrainConfig = CUBIC_FINETUNE, **kw) -> Path | None:
    """Stage 4: the adapted cubic model fine-tuned (forward through the cubic law, gradient of
    the linear law), from its adapted scalers."""
    return finetune_from("cubic", calibrated_path, out_dir, "cubic", tc, scalers="source", **kw)


def direct_finetune(softmax_path: Path, out_dir: Path, tc: TrainConfig = DIRECT_FINETUNE, **kw) -> Path | None:
    """Ablation arm: the twin fine-tuned with the cubic law from the closed-form scalers (no
    linear stage, no adaptation)."""
    return finetune_from("direct", softmax_path, out_dir, "cubic", tc, scalers="closed-form", **kw)


def from_scratch(out_dir: Path, tc: TrainConfig = SCRATCH_TRAIN, **kw) -> Path | None:
    """Ablation arm: the cubic model trained from a random initialisation."""
    from .model import init_params
    from .train import run_training
    cfg, _ = EXPERIMENTS["chip"]
    cfg = replace(cfg, vocab=len(data.vocabulary(data.read_corpus())))
    return run_training("scratch", cfg, tc, Path(out_dir), init=lambda: init_params(cfg, tc.seed),
                        meta={"experiment": "scratch"}, eval_at_start=True, **kw)


class JaxRunner:
    """Forward passes of a chip-model (JAX, jitted, float32) with the scalers as an argument:
    the records the adaptation needs on one batch, and the held-out loss of the curve."""

    def __init__(self, params: dict, cfg, batch: np.ndarray):
        from .gradients import jax_modules, next_token_nll
        jax, jnp = jax_modules()
        from ..hardware import load_hardware
        from .model import forward
        hw = load_hardware(cfg.hardware)
        fixed = {k: jnp.asarray(v) for k, v in params.items() if k not in SCALER_KEYS}
        self.jnp = jnp

        def record(scalers, x):
            rec: list = []
            forward({**fixed, **scalers}, x, cfg, jnp, hw=hw, record=rec)
            return rec

        def loss(scalers, x, y):
            return next_token_nll(forward({**fixed, **scalers}, x, cfg, jnp, hw=hw), y)

        self._record, self._loss = jax.jit(record), jax.jit(loss)
        self.batch = jnp.asarray(batch)

    def _sc(self, scalers):
        return {k: self.jnp.asarray(np.asarray(scalers[k], np.float32)) for k in SCALER_KEYS}

    def run(self, scalers) -> dict:
        """q, k, v, out [N, L, H, d] (N = batch x tokens) of the calibration batch."""
        rec = self._record(self._sc(scalers), self.batch)
        out = {}
        for i, name in enumerate(("q", "k", "v", "out")):
            a = np.stack([np.asarray(layer[i]) for layer in rec], axis=2)  # [B, T, L, H, d]
            out[name] = a.reshape((-1,) + a.shape[2:])
        return out

    def loss(self, scalers, x, y) -> float:
        return float(self._loss(self._sc(scalers), self.jnp.asarray(x), self.jnp.asarray(y)))


def heldout_batches(cfg, tc: TrainConfig = LINEAR_FINETUNE):
    """The held-out batches every stage's log evaluates (run_training's val_loss)."""
    _, val_ids = data.split(data.encode(data.read_corpus(), data.vocabulary(data.read_corpus())))
    return [data.batch(val_ids, i, tc.batch_size, cfg.context, tc.seed + 1) for i in range(tc.eval_batches)]


def calibrate(linear_path: Path, out_dir: Path, cfg: AdaptationConfig = AdaptationConfig(), *, log=print) -> Path:
    """Stage 3: the linear model's weights with the cubic cell law; every per-head scaler
    adapted (gcsim.adaptation, starting from the linear model's scalers) until the cubic
    model's scaled signals have the linear model's mean and std on the calibration batch.
    Writes OUT/chipgpt-calibrated.npz and OUT/calibration.csv (one row per pass: alpha,
    errors, held-out loss and perplexity on the batches the training logs use)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    w = load_weights(linear_path)
    t0 = time.perf_counter()
    batch = calibration_windows(w.cfg)
    scalers = {k: w.params[k] for k in SCALER_KEYS}
    target = JaxRunner(w.params, w.cfg, batch)
    targets = signal_stats(target.run(scalers), scalers)
    cubic_cfg = replace(w.cfg, attention="cubic")
    runner = JaxRunner(w.params, cubic_cfg, batch)
    held = heldout_batches(w.cfg)

    def on_pass(p, sc):
        loss = float(np.mean([runner.loss(sc, x, y) for x, y in held]))
        log(f"calibrate: pass {p} held-out perplexity {np.exp(loss):.3f}")
        return {"heldout_loss": loss, "heldout_perplexity": float(np.exp(loss))}

    adapted, history = adapt_scalers(runner.run, scalers, targets, cfg, on_pass=on_pass)
    seconds = time.perf_counter() - t0
    with open(out_dir / "calibration.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(history[0]))
        wr.writeheader()
        wr.writerows(history)
    meta = {"experiment": "calibrated", "source": source_of(linear_path), "adaptation": cfg.to_dict(),
            "passes": len(history), "converged": bool(history[-1]["converged"]),
            "calibration_batch": CALIBRATION_BATCH, "seconds": round(seconds, 1)}
    path = save_weights(out_dir / "chipgpt-calibrated.npz", _with_scalers(w.params, adapted), cubic_cfg, w.vocab, meta)
    log(f"calibrate: {len(history)} passes, {'converged' if meta['converged'] else 'not converged'} "
        f"({seconds:.0f} s); wrote {path}")
    return path


def read_log(path: Path) -> list[dict]:
    """A training log's records, one per iteration (the last one written for it: a log written
    before resumed runs truncated it may hold the iterations a killed chunk did twice), in
    iteration order."""
    if not Path(path).exists():
        return []
    last = {}
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            last[r.get("iter", 0)] = r
    return [last[i] for i in sorted(last)]


CURVE_COLUMNS = ("stage", "step", "train_loss", "heldout_loss", "heldout_perplexity", "elapsed_s")


def adaptation_curve(out: Path) -> list[dict]:
    """The adaptation curve of a pipeline in `out`: one row per fine-tune iteration (training
    loss; held-out loss where evaluated) and per calibration pass (held-out loss), in stage
    order. Held-out: the same 4 batches of 16 x 256 characters of the held-out text throughout."""
    rows = []
    for stage in ("linear", "calibrate", "cubic"):
        if stage == "calibrate":
            path = Path(out) / stage / "calibration.csv"
            if path.exists():
                for r in csv.DictReader(open(path)):
                    rows.append({"stage": stage, "step": int(r["pass"]), "train_loss": None,
                                 "heldout_loss": float(r["heldout_loss"]),
                                 "heldout_perplexity": float(r["heldout_perplexity"]), "elapsed_s": None})
            continue
        for r in read_log(Path(out) / stage / f"{stage}.log.jsonl"):
            val = r.get("val_loss")
            rows.append({"stage": stage, "step": r["iter"], "train_loss": r.get("loss"), "heldout_loss": val,
                         "heldout_perplexity": None if val is None else float(np.exp(val)),
                         "elapsed_s": r.get("elapsed_s")})
    return rows


def write_curve(out: Path, rows: list[dict], references: dict) -> list[Path]:
    """curve.csv and, with matplotlib, curve.png: held-out perplexity through the linear
    fine-tune, the calibration passes and the cubic fine-tune (the paper's Fig. 4c), with the
    reference models' held-out perplexity (references: label -> perplexity) as lines."""
    out = Path(out)
    with open(out / "curve.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CURVE_COLUMNS)
        wr.writeheader()
        wr.writerows(rows)
    written = [out / "curve.csv"]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    titles = {"linear": "1. fine-tune, linear cell law", "calibrate": "2. scaler adaptation, cubic law (no gradient)",
              "cubic": "3. fine-tune, cubic cell law"}
    xlabels = {"linear": "iteration", "calibrate": "calibration pass", "cubic": "iteration"}
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    for ax, stage in zip(axes, ("linear", "calibrate", "cubic")):
        pts = [(r["step"], r["heldout_perplexity"]) for r in rows if r["stage"] == stage and r["heldout_perplexity"]]
        if pts:
            ax.plot(*zip(*pts), marker="." if stage == "calibrate" else "o", ms=3)
        for (label, ppl), style in zip(references.items(), ("--", ":", "-.")):
            ax.axhline(ppl, color="gray", ls=style, lw=1, label=f"{label} {ppl:.2f}")
        ax.set_title(titles[stage], fontsize=10)
        ax.set_xlabel(xlabels[stage])
    axes[0].set_ylabel("held-out perplexity")
    axes[0].set_yscale("log")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=120)
    plt.close(fig)
    return written + [out / "curve.png"]


def run_pipeline(out: Path, *, max_minutes: float | None = None, ablation: bool = False, only=None,
                 adaptation: AdaptationConfig = AdaptationConfig(), log=print, **changes) -> Path | None:
    """Every stage in order (and with ablation the arms `scratch` and `direct`), each skipped
    when its weights exist and resumed from its checkpoint otherwise; max_minutes bounds this
    call (a training stage stops at its next iteration after it, checkpointed). only: run just
    these stages or arms (e.g. an arm in a process of its own; each needs its inputs done).
    Returns the final weights OUT/chipgpt-chip.npz when every stage is done, else None (run
    again). changes: TrainConfig fields changed in every training stage (a smoke test's small
    batch)."""
    from .train import train
    out = Path(out)
    deadline = None if max_minutes is None else time.perf_counter() + 60 * max_minutes

    def left():
        return None if deadline is None else max(0.0, (deadline - time.perf_counter()) / 60)

    def done(path):
        return path is not None and Path(path).exists()

    def small(tc):
        return replace(tc, **changes)

    path = {s: weights_path(out, s) for s in STAGES + ARMS}
    steps = [
        ("softmax", lambda: train("softmax", out / "softmax", max_minutes=left(), log=log, **changes)),
        ("linear", lambda: linear_finetune(path["softmax"], out / "linear", small(LINEAR_FINETUNE),
                                           max_minutes=left(), log=log)),
        ("calibrate", lambda: calibrate(path["linear"], out / "calibrate", adaptation, log=log)),
        ("cubic", lambda: cubic_finetune(path["calibrate"], out / "cubic", small(CUBIC_FINETUNE),
                                         max_minutes=left(), log=log)),
    ]
    if ablation:
        steps += [("scratch", lambda: from_scratch(out / "scratch", small(SCRATCH_TRAIN), max_minutes=left(), log=log)),
                  ("direct", lambda: direct_finetune(path["softmax"], out / "direct", small(DIRECT_FINETUNE),
                                                     max_minutes=left(), log=log))]
    if only is not None:
        unknown = set(only) - set(STAGES + ARMS)
        if unknown:
            raise ValueError(f"unknown stage(s) {sorted(unknown)}; the stages are {', '.join(STAGES + ARMS)}")
        steps = [s for s in steps if s[0] in only]
    for stage, run in steps:
        if done(path[stage]) and load_weights(path[stage]).meta.get("stopped_at") is None:
            continue
        if left() == 0.0:
            log(f"adapt: time limit reached before stage {stage}; run again to resume")
            return None
        if not done(run()):
            return None
    if not all(done(path[s]) for s in STAGES):
        return None
    return finish(out, log=log)


def finish(out: Path, *, log=print) -> Path:
    """OUT/chipgpt-chip.npz (the cubic fine-tune's weights with the whole pipeline's
    provenance: each stage's source checksum, recipe, iterations and wall time), the
    adaptation curve (curve.csv, curve.png) and pipeline.json."""
    out = Path(out)
    stages = {}
    for stage in STAGES:
        w = load_weights(weights_path(out, stage))
        stages[stage] = {k: w.meta.get(k) for k in ("source", "train", "adaptation", "iterations", "train_seconds",
                                                     "seconds", "passes", "converged", "grad_law", "initial_scalers")
                         if w.meta.get(k) is not None}
        stages[stage]["params_sha256"] = params_sha256(w.params)
    w = load_weights(weights_path(out, "cubic"))
    meta = {"experiment": "adapted", "pipeline": stages,
            "wall_seconds": round(sum(s.get("train_seconds", s.get("seconds", 0.0)) for s in stages.values()), 1)}
    final = save_weights(out / FINAL, w.params, w.cfg, w.vocab, meta)
    refs = {}
    for label, stage in (("softmax twin", "softmax"), ("linear model", "linear")):
        log_rows = [r for r in read_log(out / stage / f"{stage}.log.jsonl") if "val_loss" in r]
        if log_rows:
            refs[label] = float(np.exp(log_rows[-1]["val_loss"]))
    write_curve(out, adaptation_curve(out), refs)
    (out / "pipeline.json").write_text(json.dumps({**meta, "references": refs}, indent=2) + "\n")
    log(f"adapt: wrote {final} (stages' wall time {meta['wall_seconds']:.0f} s), curve.csv, pipeline.json")
    return final
