"""`gcsim adapt`: the paper's recipe for the chip GPT from the corpus, in one resumable command
(gcsim/chipmodel/adapt.py): the softmax twin, a fine-tune with the linear cell law, the
adaptation of every per-head scaler to the linear model's statistics (no gradient) with the
cubic law put in, a fine-tune with the cubic law (its gradient the linear law's).

Writes OUT/STAGE/ (checkpoint, log and weights of each stage), OUT/chipgpt-chip.npz (the final
weights, with each stage's source checksum, recipe, iterations and wall time), the adaptation
curve OUT/curve.csv and OUT/curve.png (held-out perplexity per fine-tune iteration and per
calibration pass, the paper's Fig. 4c) and OUT/pipeline.json. --ablation also trains the
ablation's other arms at equal compute (from scratch; fine-tuned from the twin without
adaptation) and evaluates every arm with the numeric reference model and the simulator in the
loop on the same windows: OUT/ablation.json, OUT/ablation.md.

--lm smollm2: the same recipe's last two stages for SmolLM2-135M (it has its softmax training
already): the adaptation of its scalers (--adapt-passes), then --steps fine-tune steps with the
cubic cell law (its gradient the linear law's) on windows of --seq-len tokens of the corpus's
training split (gcsim/llm/finetune.py); writes OUT/smollm2/smollm2-finetuned.npz (trained
parameters and scalers, with provenance) and OUT/smollm2/finetune.json. On a CPU only a few
steps are practical (the default); a real fine-tune needs a GPU (docs/accuracy.md).

Needs the [train] extra (JAX). Resumable: rerun the same command; --max-minutes stops a chunk
(checkpointed) so that a loop can run it in pieces. The shipped weights
(gcsim/data/chipgpt-*.npz) are its softmax twin and the ablation's best arm, which at this
model's scale is the twin fine-tuned without adaptation (docs/accuracy.md).
"""
from __future__ import annotations

from ..outdir import claim_in_place, seal_in_place
from ..progress import add_feedback, say, wanted
from .common import int_in, positive_float


def stage_files() -> list[str]:
    from ..chipmodel.ablation import ARMS as ABLATION_ARMS
    from ..chipmodel.adapt import ARMS, FINAL, STAGES
    files = [FINAL, "curve.csv", "curve.png", "pipeline.json", "ablation.json", "ablation.md",
             "calibrate/calibration.csv", "calibrate/chipgpt-calibrated.npz"]
    for stage in STAGES + ARMS:
        if stage != "calibrate":
            files += [f"{stage}/{stage}.ckpt.npz", f"{stage}/{stage}.log.jsonl", f"{stage}/chipgpt-{stage}.npz"]
    from ..llm.finetune import FINETUNED, REPORT
    return files + [f"ablation/{key}.json" for key, _, _ in ABLATION_ARMS] + [FINETUNED, REPORT]


def register(sub):
    p = sub.add_parser("adapt", help="the paper's adaptation pipeline for the chip GPT (softmax -> linear -> "
                                     "calibrated -> cubic), resumable; needs JAX", description=__doc__)
    p.add_argument("-o", "--out", default="out/adapt",
                   help="folder for every stage's files (default: %(default)s); refused if it holds files gcsim "
                        "did not write")
    p.add_argument("--force", action="store_true",
                   help="write into OUT even if it holds files gcsim did not write (they are kept; same-named files "
                        "are replaced)")
    p.add_argument("--ablation", action="store_true",
                   help="also train the ablation's arms (from scratch; from the twin without adaptation) and evaluate "
                        "every arm with the reference model and the simulator in the loop")
    p.add_argument("--stages", default=None, metavar="LIST",
                   help="run only these stages, e.g. 'scratch' (an arm in a process of its own) or 'linear,calibrate' "
                        "(each needs the stages before it done); default: all, in order")
    p.add_argument("--eval-windows", default="all", metavar="N|all",
                   help="held-out windows of 256 characters the ablation evaluates, evenly spaced (default: %(default)s)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this long (checkpointed; rerun to resume)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for XLA (default: %(default)s; results depend on it)")
    p.add_argument("--lm", choices=("chip", "smollm2"), default="chip",
                   help="chip: the chip GPT's whole pipeline (default); smollm2: SmolLM2-135M's scalers adapted, then "
                        "fine-tuned --steps steps with the cubic law")
    p.add_argument("--steps", type=int_in(0, 1_000_000), default=2,
                   help="--lm smollm2: fine-tune steps (default: %(default)s, a CPU check; a real fine-tune needs a GPU)")
    p.add_argument("--seq-len", type=int_in(1, 1024), default=64,
                   help="--lm smollm2: tokens per fine-tune window and of the adaptation's batch (default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=3e-5, help="--lm smollm2: AdamW learning rate (default: %(default)s)")
    p.add_argument("--train", choices=("all", "scalers"), default="all",
                   help="--lm smollm2: which parameters the fine-tune moves (default: %(default)s)")
    p.add_argument("--adapt-passes", type=int_in(1, 1000), default=100,
                   help="--lm smollm2: at most this many adaptation passes (default: %(default)s, the paper's)")
    add_feedback(p)
    p.set_defaults(func=main)


def main(args) -> int:
    import math
    from .evaluate import parse_windows
    if args.max_minutes is not None and not (math.isfinite(args.max_minutes) and args.max_minutes > 0):
        raise ValueError(f"--max-minutes must be a positive number, found {args.max_minutes}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, found {args.threads}")
    windows = parse_windows(args.eval_windows)
    only = None if args.stages is None else [x.strip() for x in args.stages.split(",") if x.strip()]
    from ..chipmodel.adapt import ARMS, STAGES
    if only is not None and (not only or set(only) - set(STAGES + ARMS)):
        raise ValueError(f"--stages: expected a comma-separated list of {', '.join(STAGES + ARMS)}, found {args.stages!r}")
    if only is not None and set(only) & set(ARMS) and not args.ablation:
        raise ValueError(f"--stages {args.stages}: the arms {', '.join(ARMS)} belong to --ablation")
    if args.lm == "smollm2" and (args.ablation or only is not None):
        raise ValueError("--lm smollm2 runs the adaptation and the fine-tune only: --ablation and --stages are the chip GPT's")
    out = claim_in_place(args.out, stage_files(), force=args.force)
    if args.lm == "smollm2":
        return _smollm2(args, out)
    from ..chipmodel.adapt import run_pipeline
    from ..chipmodel.train import set_threads
    from .train import _log
    set_threads(args.threads)
    log = lambda line: _log(args, line)  # noqa: E731
    try:
        final = run_pipeline(out, max_minutes=args.max_minutes, ablation=args.ablation, only=only, log=log)
        if final is not None and args.ablation and only is None:
            from ..chipmodel.ablation import run_ablation, table_markdown
            summary = run_ablation(out, windows=windows, progress=wanted(args), log=log,
                                   command=getattr(args, "command_line", None))
            say(args, table_markdown(summary))
    finally:
        seal_in_place(out)   # tie the files written to the marker (size, sha256)
    if final is not None:
        say(args, f"adapt: done; final weights {final}")
    return 0


def _smollm2(args, out) -> int:
    from ..chipmodel.train import set_threads
    from .train import _log
    set_threads(args.threads)
    from ..llm.finetune import run_finetune
    try:
        path = run_finetune(out, steps=args.steps, seq_len=args.seq_len, lr=args.lr, trainable=args.train,
                            adapt_passes=args.adapt_passes, log=lambda line: _log(args, line))
    finally:
        seal_in_place(out)
    say(args, f"adapt: done; SmolLM2 fine-tuned {args.steps} steps; weights {path}")
    return 0
