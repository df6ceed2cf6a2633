"""`gcsim train`: train the character GPT for the chip (or its softmax twin) on the shipped
tiny-Shakespeare corpus, with the chip's attention in the forward pass (gcsim/chipmodel/).

Needs the [train] extra (JAX): pip install -e '.[train]'. Resumable: rerun the same command
to continue from OUT/NAME.ckpt.npz; a run stopped by --max-minutes writes its checkpoint.
The last iteration writes OUT/chipgpt-NAME.npz, the weights gcsim eval/decode take with
--lm PATH. The shipped weights (gcsim/data/chipgpt-*.npz) were made by
`gcsim train chip` and `gcsim train softmax` with --threads 1 (see README).
"""
from __future__ import annotations

from pathlib import Path


def register(sub):
    p = sub.add_parser("train", help="train the small GPT for the chip (or its softmax twin); needs JAX",
                       description=__doc__)
    p.add_argument("experiment", choices=("chip", "softmax"), help="chip: cubic cell law with all quantizers; softmax: the twin")
    p.add_argument("-o", "--out", default="out/train", help="folder for checkpoint, log and weights (default: %(default)s)")
    p.add_argument("--iters", type=int, default=None, help="number of iterations (default: the experiment's, see gcsim/chipmodel/config.py)")
    p.add_argument("--stop-at", type=int, default=None,
                   help="stop after iteration N of the schedule and write the weights of that iteration")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this long (checkpointed; rerun to resume)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for XLA (default: %(default)s; results depend on it)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..chipmodel.train import set_threads, train
    if args.iters is not None and args.iters <= 0:
        raise ValueError(f"--iters must be positive, found {args.iters}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: the output path exists and is not a folder")
    weights = out / f"chipgpt-{args.experiment}.npz"
    if weights.exists() and not (out / f"{args.experiment}.ckpt.npz").exists():
        raise ValueError(f"{weights} exists and was not written by this training (no checkpoint next to it); "
                         "choose another --out")
    set_threads(args.threads)
    if args.stop_at is not None and args.stop_at <= 0:
        raise ValueError(f"--stop-at must be positive, found {args.stop_at}")
    train(args.experiment, out, iters=args.iters, max_minutes=args.max_minutes, stop_at=args.stop_at)
    return 0
