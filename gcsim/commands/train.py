"""`gcsim train`: train the character GPT for the chip (or its softmax twin) on the shipped
tiny-Shakespeare corpus, with the chip's attention in the forward pass (gcsim/chipmodel/).

Needs the [train] extra (JAX): pip install -e '.[train]'. Resumable: rerun the same command
to continue from OUT/NAME.ckpt.npz; a run stopped by --max-minutes writes its checkpoint.
The last iteration writes OUT/chipgpt-NAME.npz, the weights gcsim eval/decode take with
--lm PATH. `softmax` is the twin (the first stage of `gcsim adapt`); `chip` trains the
hardware model from scratch (the ablation's first arm). The shipped weights
(gcsim/data/chipgpt-*.npz) are `gcsim adapt --ablation`'s twin and best arm (docs/accuracy.md).
"""
from __future__ import annotations

import os

from ..outdir import claim_in_place, seal_in_place
from ..progress import add_feedback, say, wanted
from .common import int_in, positive_float


def register(sub):
    p = sub.add_parser("train", help="train the small GPT for the chip (or its softmax twin); needs JAX",
                       description=__doc__)
    p.add_argument("experiment", choices=("chip", "softmax"), help="chip: cubic cell law with all quantizers, from scratch; softmax: the twin")
    p.add_argument("-o", "--out", default="out/train",
                   help="folder for checkpoint, log and weights (default: %(default)s); refused if it holds "
                        "files gcsim did not write")
    p.add_argument("--force", action="store_true",
                   help="write into OUT even if it holds files gcsim did not write (they are kept; "
                        "same-named files are replaced)")
    p.add_argument("--iters", type=int_in(1), default=None, help="number of iterations (default: the experiment's, see gcsim/chipmodel/config.py)")
    p.add_argument("--stop-at", type=int_in(1), default=None,
                   help="stop after iteration N of the schedule and write the weights of that iteration")
    p.add_argument("--max-minutes", type=positive_float, default=None, help="stop after this long (checkpointed; rerun to resume)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    p.add_argument("--threads", type=int_in(1, cores), default=1, help="CPU threads for XLA (default: %(default)s; results depend on it)")
    add_feedback(p)
    p.set_defaults(func=main)


def main(args) -> int:
    # the output-directory rule of gcsim/outdir.py, in place: the checkpoint must survive a kill
    name = args.experiment
    out = claim_in_place(args.out, [f"{name}.ckpt.npz", f"{name}.log.jsonl", f"chipgpt-{name}.npz"],
                         force=args.force)
    from ..chipmodel.train import set_threads, train
    set_threads(args.threads)
    try:
        train(args.experiment, out, iters=args.iters, max_minutes=args.max_minutes, stop_at=args.stop_at,
              log=lambda line: _log(args, line))
    finally:
        seal_in_place(out)   # tie the files written to the marker (size, sha256)
    return 0


def _log(args, line: str) -> None:
    """Training's lines on stdout: none with --quiet; the per-iteration ones (its progress
    display) not with --no-progress either."""
    if wanted(args) or not line.split(": ", 1)[-1].startswith(("iter ", "pass ")):
        say(args, line)
