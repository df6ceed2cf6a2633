"""Teacher-forced accuracy of a language model with the chip in its loop.

A text is cut into non-overlapping windows, each run from an empty state (empty KV cache,
empty ring buffer). Per variant: perplexity = exp(mean negative log-likelihood of the next
token), top-1 agreement with the software model and the mean KL divergence
KL(software || variant) of the next-token distributions; for the simulator in the loop also
the chip's latency and energy per token. The software model is the model as trained:
softmax attention for SmolLM2, the numeric reference of the chip for the chip-trained GPT.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..hardware import Hardware
from ..progress import bar as progress_bar
from .live import run_in_loop
from .loop import chip_attention, own_attention, window_logits


@dataclass
class Variant:
    """One way of running attention: 'software' (the model as trained), 'reference'
    (the numeric model of the chip with cell law `law`) or 'simulator' (the simulated chip
    in the loop, functional mode). model: another model (e.g. the softmax twin) or None."""
    name: str
    kind: str
    law: str | None = None
    chip_layers: tuple | None = None
    model: object = None
    noise: dict | None = None  # numerics.noise fields (device non-idealities) over the description's


@dataclass
class Tally:
    nll: float = 0.0
    agree: int = 0
    kl: float = 0.0
    n: int = 0
    latency_ns: list = field(default_factory=list)
    energy_pj: list = field(default_factory=list)

    def add(self, logits, targets, soft_logp):
        logp = log_softmax(logits)
        self.nll -= float(logp[np.arange(len(targets)), targets].sum())
        self.agree += int((logits.argmax(-1) == soft_logp.argmax(-1)).sum())
        p = np.exp(soft_logp)
        self.kl += float((p * (soft_logp - logp)).sum())
        self.n += len(targets)

    def row(self) -> dict:
        out = {"perplexity": float(np.exp(self.nll / self.n)), "nll": self.nll / self.n,
               "top1_agreement": self.agree / self.n, "kl": self.kl / self.n, "tokens": self.n}
        if self.latency_ns:
            out["latency_ns_per_token"] = float(np.mean(self.latency_ns))
            out["energy_nj_per_token"] = float(np.mean(self.energy_pj)) / 1000.0
        return out


def read_text(path) -> str:
    """The evaluation text: a UTF-8 file, or (None) the held-out 10 % of the shipped corpus."""
    if path is None:
        from ..chipmodel.data import read_corpus, split_text
        return split_text(read_corpus())[1]
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def resolve_scalers(source: str | None, lm, hw: Hardware, calibration_ids):
    """(scalers, description of their source) for source 'learned' (the model's own),
    'prompt' (calibrated on calibration_ids) or a .gctrace path; None: learned when the
    model has them, else prompt."""
    from .loop import calibrate_scalers
    source = source or ("learned" if lm.scalers is not None else "prompt")
    if source == "learned":
        if lm.scalers is None:
            raise ValueError(f"--scalers learned: {lm.name} has no learned scalers; use 'prompt' or a trace")
        return lm.scalers, "learned with the model"
    if source == "prompt":
        return calibrate_scalers(lm, calibration_ids, hw, hw.numerics.cell_law), \
            f"calibrated on the first {len(calibration_ids)} tokens (DAC ranges from activation quantiles, output fit)"
    from ..traces import open_trace
    tr = open_trace(source)
    if tr.scalers is None:
        raise ValueError(f"--scalers {source}: the trace holds no scalers")
    if int(tr.model["layers"]) != lm.layers or int(tr.model["heads"]) != lm.heads:
        raise ValueError(f"--scalers {source}: the trace's model shape {tr.model} does not fit {lm.name}")
    return tr.scalers, f"from trace {source}"


def log_softmax(logits) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def windows_of(ids: np.ndarray, window: int, max_windows: int | None = None):
    """Non-overlapping windows of window + 1 tokens (inputs and the next tokens)."""
    n = (len(ids) - 1) // window
    if n == 0:
        raise ValueError(f"the text has {len(ids)} tokens; at least {window + 1} are needed for one window")
    if max_windows is not None:
        n = min(n, max_windows)
    return [ids[i * window:(i + 1) * window + 1] for i in range(n)]


def software_logits(model, ids, hw: Hardware):
    """The model as trained: softmax, or the chip's numeric reference for a chip-trained model."""
    return window_logits(model, ids, own_attention(model, hw))


def variant_logits(v: Variant, model, ids, hw: Hardware, scalers):
    m = v.model or model
    if v.noise:
        hw = hw.derive(numerics={"noise": v.noise})
    if v.kind == "software":
        return software_logits(m, ids, hw), None
    if v.kind == "reference":
        return window_logits(m, ids, chip_attention(hw, v.law, scalers, v.chip_layers, own_attention(m, hw))), None
    if v.kind == "simulator":
        hw_v = hw.derive(numerics={"cell_law": v.law}) if v.law and v.law != hw.numerics.cell_law else hw
        src, res = run_in_loop(m, hw_v, ids, chip_layers=v.chip_layers, scalers=scalers)
        return src.logits, res
    raise ValueError(f"unknown variant kind {v.kind!r}")


def evaluate(model, ids, hw: Hardware, variants: list[Variant], *, window: int, scalers=None,
             max_windows: int | None = None, sim_windows: int | None = None, progress: bool = True,
             soft_hw: Hardware | None = None, sim_results: list | None = None) -> dict:
    """Evaluate every variant over the same windows; simulator variants over the first
    `sim_windows` windows only (then the software and reference figures are also given over
    that subset, key 'subset'), since the event simulation is the slow part.

    soft_hw: the description the software model (the reference for top-1 agreement and KL)
    runs with; default hw. A sweep passes the model's own description, so that a point that
    changes e.g. the window is compared with the model as trained, not with itself.
    sim_results: a list that receives each simulator run's SimResult (window order)."""
    soft_hw = hw if soft_hw is None else soft_hw
    wins = windows_of(np.asarray(ids), window, max_windows)
    n_sim = len(wins) if sim_windows is None else min(sim_windows, len(wins))
    if n_sim == 0:  # --sim-windows 0: no simulator rows (they would average over no tokens)
        variants = [v for v in variants if v.kind != "simulator"]
    tallies = {v.name: Tally() for v in variants}
    subset = {v.name: Tally() for v in variants}
    bar = progress_bar(len(wins) * len(variants), "gcsim eval", enabled=progress, unit="pass")
    for w_i, win in enumerate(wins):
        inp, tgt = win[:-1], win[1:]
        soft = log_softmax(software_logits(model, inp, soft_hw))
        for v in variants:
            if v.kind == "simulator" and w_i >= n_sim:
                bar.update(1)
                continue
            logits, res = variant_logits(v, model, inp, hw, scalers)
            if res is not None and sim_results is not None:
                sim_results.append(res)
            for tally in ((tallies[v.name], subset[v.name]) if w_i < n_sim else (tallies[v.name],)):
                tally.add(logits, tgt, soft)
                if res is not None:
                    tally.latency_ns.extend((res.step_latency_ps(0) / 1000.0).tolist())
                    tally.energy_pj.extend(res.ledger.step_pj().tolist())
            bar.update(1)
    bar.close()
    rows = [{"variant": v.name, "kind": v.kind, "law": v.law,
             "chip_layers": "all" if v.chip_layers is None else list(v.chip_layers), **tallies[v.name].row()}
            for v in variants]
    out = {"windows": len(wins), "window": window, "tokens_per_variant": len(wins) * window, "rows": rows}
    if n_sim < len(wins) and any(v.kind == "simulator" for v in variants):
        out["subset"] = {"windows": n_sim, "rows": [{"variant": v.name, **subset[v.name].row()} for v in variants]}
    return out


def layer_sensitivity(model, ids, hw: Hardware, law: str, scalers, *, window: int, max_windows: int | None,
                      progress: bool = True) -> list[dict]:
    """One layer on the chip (numeric reference) at a time, the others in software (the
    model's own attention)."""
    variants = [Variant(f"layer {l}", "reference", law, (l,)) for l in range(model.layers)]
    res = evaluate(model, ids, hw, variants, window=window, scalers=scalers, max_windows=max_windows,
                   progress=progress)
    return [{"layer": l, **{k: r[k] for k in ("perplexity", "top1_agreement", "kl")}}
            for l, r in enumerate(res["rows"])]


def noise_sweep(model, ids, hw: Hardware, law: str, scalers, *, sigmas: dict, seed: int, window: int,
                max_windows: int | None, chip_layers=None, progress: bool = True) -> dict:
    """Accuracy of the reference model against each sigma of each kind of device noise, one
    kind at a time (sigmas: {field of numerics.noise, e.g. 'read_sigma_rel': [...]}), the same
    seed throughout; the description's own numerics.noise is the base."""
    out = {}
    base = dataclasses.asdict(hw.numerics.noise)
    for field_name, values in sigmas.items():
        variants = [Variant(f"{field_name}={s:g}", "reference", law, chip_layers,
                            noise={**base, "seed": seed, field_name: float(s)}) for s in values]
        res = evaluate(model, ids, hw, variants, window=window, scalers=scalers, max_windows=max_windows,
                       progress=progress)
        out[field_name] = [{"sigma": float(s), **{k: r[k] for k in ("perplexity", "top1_agreement", "kl")}}
                           for s, r in zip(values, res["rows"])]
    return out
