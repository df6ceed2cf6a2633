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


MAX_TEXT_BYTES = 64 << 20   # the shipped corpus is 1 MB; tokenizing 64 MB takes minutes


def read_text(path) -> str:
    """The evaluation text: a UTF-8 file, or (None) the held-out 10 % of the shipped corpus."""
    if path is None:
        from ..chipmodel.data import read_corpus, split_text
        return split_text(read_corpus())[1]
    from ..errors import UsageError
    from ..safefile import read_text as read
    return read(path, "text file", MAX_TEXT_BYTES, UsageError)


class ScalersByLaw(dict):
    """Scalers calibrated for each cell law (law -> scalers), for a model that has none of its
    own: the output scaler (and the adaptation) depend on the law the chip runs."""


def scalers_for(scalers, law: str | None):
    """The scalers a variant with cell law `law` runs with."""
    return scalers[law] if isinstance(scalers, ScalersByLaw) else scalers


def resolve_scalers(source: str | None, lm, hw: Hardware, calibration_ids, laws=None, log=None, adaptation=None):
    """(scalers, description of their source) for source 'learned' (the model's own),
    'prompt' (calibrated on calibration_ids in closed form: DAC ranges from activation
    quantiles, a least-squares output fit), 'adapt' (from there, the paper's adaptation to the
    model's own statistics, gcsim.llm.loop.adapt_loop_scalers) or a .gctrace path; None:
    learned when the model has them, else prompt. 'prompt' and 'adapt' give a ScalersByLaw
    over `laws` (default: the description's cell law); adaptation: its AdaptationConfig."""
    from .loop import adapt_loop_scalers, calibrate_scalers
    source = source or ("learned" if lm.scalers is not None else "prompt")
    if source == "learned":
        if lm.scalers is None:
            raise ValueError(f"--scalers learned: {lm.name} has no learned scalers; use 'prompt', 'adapt' or a trace")
        return lm.scalers, "learned with the model"
    laws = tuple(laws or (hw.numerics.cell_law,))
    if source == "prompt":
        return ScalersByLaw({law: calibrate_scalers(lm, calibration_ids, hw, law) for law in laws}), \
            f"calibrated on the first {len(calibration_ids)} tokens (DAC ranges from activation quantiles, output fit)"
    if source == "adapt":
        out, passes = ScalersByLaw(), {}
        for law in laws:
            out[law], hist = adapt_loop_scalers(lm, calibration_ids, hw, law, adaptation, log=log)
            passes[law] = f"{len(hist)} passes, {'converged' if hist[-1]['converged'] else 'not converged'}"
            if log:
                log(f"adapt ({law} law): {len(hist)} passes, {'converged' if hist[-1]['converged'] else 'not converged'}")
        return out, (f"adapted on the first {len(calibration_ids)} tokens (the paper's algorithm from the "
                     f"closed-form scalers to the softmax model's statistics: "
                     + "; ".join(f"{law} law {n}" for law, n in passes.items()) + ")")
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


def windows_of(ids: np.ndarray, window: int, max_windows: int | None = None, *, spread: bool = False):
    """Non-overlapping windows of window + 1 tokens (inputs and the next tokens): all of them,
    or max_windows of them, the first ones or (spread) evenly spaced over the text, first and
    last included."""
    n = (len(ids) - 1) // window
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"at most {max_windows} windows: at least one window is needed")
    if n <= 0:
        raise ValueError(f"the text has {len(ids)} tokens; at least {window + 1} are needed for one window")
    picked = range(n)
    if max_windows is not None and max_windows < n:
        picked = (np.unique(np.linspace(0, n - 1, max_windows).round().astype(int)) if spread
                  else range(max_windows))
    return [ids[i * window:(i + 1) * window + 1] for i in picked]


BATCH_WINDOWS = 16  # windows per batched forward pass (bounds its memory: ~50 MB for the chip GPT)


def software_logits(model, ids, hw: Hardware):
    """The model as trained: softmax, or the chip's numeric reference for a chip-trained model."""
    return window_logits(model, ids, own_attention(model, hw))


def batched(model, hw: Hardware) -> bool:
    """Whether the model's software and reference variants run as one batched forward pass
    over several windows (the chip GPT, without device noise) instead of window by window."""
    return hasattr(model, "forward_windows") and not hw.numerics.noise.active


def variant_logits(v: Variant, model, ids, hw: Hardware, scalers):
    m = v.model or model
    if v.noise:
        hw = hw.derive(numerics={"noise": v.noise})
    if v.kind == "software":
        return software_logits(m, ids, hw), None
    if v.kind == "reference":
        return window_logits(m, ids, chip_attention(hw, v.law, scalers_for(scalers, v.law), v.chip_layers,
                                                    own_attention(m, hw))), None
    if v.kind == "simulator":
        hw_v = hw.derive(numerics={"cell_law": v.law}) if v.law and v.law != hw.numerics.cell_law else hw
        src, res = run_in_loop(m, hw_v, ids, chip_layers=v.chip_layers, scalers=scalers_for(scalers, hw_v.numerics.cell_law))
        return src.logits, res
    raise ValueError(f"unknown variant kind {v.kind!r}")


def variant_batch_logits(v: Variant, model, inputs: np.ndarray, hw: Hardware, scalers):
    """Logits [n, T, vocab] of the windows inputs [n, T] in batched forward passes, or None
    where the variant runs window by window (the simulator, a model without a batched form,
    device noise)."""
    m = v.model or model
    if v.noise:
        hw = hw.derive(numerics={"noise": v.noise})
    if v.kind == "simulator" or not batched(m, hw):
        return None
    if v.kind == "software":
        return m.forward_windows(inputs, hw)
    return m.forward_windows(inputs, hw, v.law, scalers_for(scalers, v.law), v.chip_layers)


def evaluate(model, ids, hw: Hardware, variants: list[Variant], *, window: int, scalers=None,
             max_windows: int | None = None, sim_windows: int | None = None, progress: bool = True,
             soft_hw: Hardware | None = None, sim_results: list | None = None, spread: bool = False) -> dict:
    """Evaluate every variant over the same windows (windows_of: max_windows of them, the first
    ones or spread over the text); simulator variants over the first `sim_windows` of those
    only (then the software and reference figures are also given over that subset, key
    'subset'), since the event simulation is the slow part. The software and reference
    variants of a model with a batched forward run BATCH_WINDOWS windows at a time.

    soft_hw: the description the software model (the reference for top-1 agreement and KL)
    runs with; default hw. A sweep passes the model's own description, so that a point that
    changes e.g. the window is compared with the model as trained, not with itself.
    sim_results: a list that receives each simulator run's SimResult (window order)."""
    soft_hw = hw if soft_hw is None else soft_hw
    wins = windows_of(np.asarray(ids), window, max_windows, spread=spread)
    n_sim = len(wins) if sim_windows is None else min(sim_windows, len(wins))
    if n_sim == 0:  # --sim-windows 0: no simulator rows (they would average over no tokens)
        variants = [v for v in variants if v.kind != "simulator"]
    tallies = {v.name: Tally() for v in variants}
    subset = {v.name: Tally() for v in variants}
    bar = progress_bar(len(wins) * len(variants), "gcsim eval", enabled=progress, unit="pass")
    for c0 in range(0, len(wins), BATCH_WINDOWS):
        chunk = wins[c0:c0 + BATCH_WINDOWS]
        inputs = np.stack([w[:-1] for w in chunk])
        soft_all = (model.forward_windows(inputs, soft_hw) if batched(model, soft_hw)
                    else [software_logits(model, w[:-1], soft_hw) for w in chunk])
        soft_all = [log_softmax(s) for s in soft_all]
        for v in variants:
            many = variant_batch_logits(v, model, inputs, hw, scalers)
            for j, win in enumerate(chunk):
                w_i = c0 + j
                if v.kind == "simulator" and w_i >= n_sim:
                    bar.update(1)
                    continue
                logits, res = (many[j], None) if many is not None else variant_logits(v, model, win[:-1], hw, scalers)
                if res is not None and sim_results is not None:
                    sim_results.append(res)
                for tally in ((tallies[v.name], subset[v.name]) if w_i < n_sim else (tallies[v.name],)):
                    tally.add(logits, win[1:], soft_all[j])
                    if res is not None:
                        tally.latency_ns.extend((res.step_latency_ps(0) / 1000.0).tolist())
                        tally.energy_pj.extend(res.ledger.step_pj().tolist())
                bar.update(1)
    bar.close()
    def row(v, tally):
        return {"variant": v.name, "kind": v.kind, "law": v.law,
                "chip_layers": "all" if v.chip_layers is None else list(v.chip_layers), **tally.row()}
    partial = n_sim < len(wins) and any(v.kind == "simulator" for v in variants)
    # each table holds rows over the same windows only: the simulator's, when it ran on fewer,
    # in the subset's table
    rows = [row(v, tallies[v.name]) for v in variants if not (partial and v.kind == "simulator")]
    out = {"windows": len(wins), "windows_in_text": (len(ids) - 1) // window, "selection": "spread" if spread else "first",
           "window": window, "tokens_per_variant": len(wins) * window, "rows": rows}
    if partial:
        out["subset"] = {"windows": n_sim, "rows": [row(v, subset[v.name]) for v in variants]}
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
