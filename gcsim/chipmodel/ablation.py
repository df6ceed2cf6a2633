"""The ablation of the adaptation pipeline at equal compute (gcsim/chipmodel/adapt.py): each
arm's held-out perplexity with the chip's numeric reference model and with the simulator in
the loop, over the same windows, beside the softmax twin and the linear model.

Equal compute: every arm with the chip's attention is trained for config.CHIP_ITERS iterations
of 16 x 256 characters (from scratch: all of them from a random initialisation; fine-tuned
from the twin without adaptation: all of them with the cubic law; the pipeline: the linear
fine-tune and the cubic fine-tune together); the arms that start from the twin share its
8,000 softmax iterations, and the adaptation adds at most 100 forward passes on one batch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .adapt import weights_path

# (key, stage whose weights, label, the chip-attention iterations it had); in table order
ARMS = (("softmax", "softmax", "softmax twin (software, no chip)"),
        ("linear", "linear", "linear model (linear cell law)"),
        ("scratch", "scratch", "cubic, from scratch"),
        ("direct", "direct", "cubic, fine-tuned from the twin without adaptation"),
        ("adapted", "calibrate", "cubic, adapted from the linear model, no fine-tune"),
        ("adapted_finetuned", "cubic", "cubic, adapted and fine-tuned (the pipeline's model)"))


def evaluate_arm(path: Path, *, windows: int | None, progress: bool) -> dict:
    """Held-out figures of one model over `windows` windows of 256 characters evenly spaced
    (None: all): its own attention in software (for a hardware-trained model the chip's
    numeric reference with its cell law and scalers) and the simulator in the loop on the same
    windows (not for the softmax twin)."""
    from ..hardware import load_hardware
    from ..llm.evaluate import Variant, evaluate, read_text
    from ..llm.loop import ChipGPTModel, model_hardware
    lm = ChipGPTModel(path)
    hw = model_hardware(lm, load_hardware(lm.hardware))
    law = lm.attention if lm.attention != "softmax" else None
    variants = [Variant("reference" if law else "software", "software")]
    if law:
        variants.append(Variant("simulator", "simulator", law))
    res = evaluate(lm, lm.encode(read_text(None)), hw, variants,
                   window=256, scalers=lm.scalers, max_windows=windows, progress=progress,
                   spread=True)
    out = {"windows": res["windows"], "windows_in_text": res["windows_in_text"], "attention": lm.attention,
           "iterations": lm.weights.meta.get("iterations"), "meta": lm.weights.meta}
    for r in res["rows"]:
        out[r["variant"]] = {k: r[k] for k in ("perplexity", "top1_agreement", "kl", "tokens")}
    return out


def run_ablation(out: Path, *, windows: int | None = None, progress: bool = True, log=print,
                 command: str | None = None) -> dict:
    """Evaluate every arm whose weights exist in the pipeline folder `out` (each arm's result
    kept in OUT/ablation/ARM.json, so a rerun evaluates only what is missing or was evaluated
    over other windows), then write OUT/ablation.json and OUT/ablation.md."""
    out = Path(out)
    (out / "ablation").mkdir(parents=True, exist_ok=True)
    results = {}
    for key, stage, label in ARMS:
        path = weights_path(out, stage)
        if not path.exists():
            log(f"ablation: {label}: no weights yet ({path})")
            continue
        cached = out / "ablation" / f"{key}.json"
        want = {"windows": windows, "weights_mtime": path.stat().st_mtime}
        if cached.exists():
            prev = json.loads(cached.read_text())
            if prev.get("asked") == want:
                results[key] = prev
                continue
        log(f"ablation: evaluating {label}")
        res = {"label": label, "stage": stage, "asked": want,
               **evaluate_arm(path, windows=windows, progress=progress)}
        cached.write_text(json.dumps(res, indent=1) + "\n")
        results[key] = res
    from ..provenance import provenance
    summary = {**summarise(results), "eval_windows": "all" if windows is None else windows,
               "provenance": provenance(command=command,
                                        evaluated_utc=time.strftime("%Y-%m-%d %H:%M", time.gmtime()))}
    (out / "ablation.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "ablation.md").write_text(table_markdown(summary) + "\n")
    return summary


def summarise(results: dict) -> dict:
    """One row per arm: perplexity with the reference model and with the simulator in the loop
    over the same windows, each's gap to the twin, and its compute: iterations trained with the
    chip's attention (linear or cubic law) and whether it started from the twin."""
    twin = results.get("softmax", {}).get("software", {}).get("perplexity")
    it = {k: (results[k].get("meta", {}).get("iterations") or 0) if k in results else None
          for k in ("softmax", "linear", "scratch", "direct", "adapted_finetuned")}
    chip_iters = {"softmax": 0, "linear": it["linear"], "scratch": it["scratch"], "direct": it["direct"],
                  "adapted": it["linear"],
                  "adapted_finetuned": None if None in (it["linear"], it["adapted_finetuned"])
                  else it["linear"] + it["adapted_finetuned"]}
    rows = []
    for key, _, label in ARMS:
        if key not in results:
            continue
        r = results[key]
        meta = r.get("meta", {})
        ref = r.get("reference", r.get("software", {})).get("perplexity")
        sim = r.get("simulator", {}).get("perplexity")
        row = {"arm": key, "label": label, "attention": r["attention"], "windows": r["windows"],
               "reference_perplexity": ref, "simulator_perplexity": sim,
               "simulator_top1_agreement": r.get("simulator", {}).get("top1_agreement"),
               "chip_iterations": chip_iters[key], "from_twin": key not in ("softmax", "scratch"),
               "softmax_iterations": it["softmax"] if key != "scratch" else 0,
               "adaptation_passes": meta.get("passes") if key == "adapted" else None}
        if twin and key != "softmax":
            row["reference_gap_pct"] = 100 * (ref / twin - 1)
            if sim:
                row["simulator_gap_pct"] = 100 * (sim / twin - 1)
        rows.append(row)
    return {"twin_perplexity": twin, "rows": rows}


def table_markdown(summary: dict) -> str:
    def f(v, spec):
        return "-" if v is None else format(v, spec)
    lines = ["| model | softmax / chip iterations | windows | reference | simulator in the loop | "
             "vs twin (simulator) | top-1 sim vs ref |",
             "|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        gap = r.get("simulator_gap_pct", r.get("reference_gap_pct"))
        top1 = r["simulator_top1_agreement"]
        lines.append(f"| {r['label']} | {f(r['softmax_iterations'], ',')} / {f(r['chip_iterations'], ',')} | "
                     f"{r['windows']} | {f(r['reference_perplexity'], '.3f')} | {f(r['simulator_perplexity'], '.3f')} | "
                     f"{'-' if gap is None else format(gap, '+.1f') + ' %'} | "
                     f"{'-' if top1 is None else format(100 * top1, '.2f') + ' %'} |")
    return "\n".join(lines)
