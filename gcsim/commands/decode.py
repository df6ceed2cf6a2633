"""`gcsim decode`: generate text with the simulated chip in the model's loop.

Greedy decoding from --prompt: each step's attention runs on the simulated chip (functional
mode) and its outputs flow back into the model, so every later token depends on them. The
software model (the model as trained: softmax for SmolLM2, the chip's numeric reference for
the chip-trained GPT) decodes the same prompt; both texts are printed with the first
position where they differ, and the chip's latency and energy per token.

SmolLM2 (--lm smollm2) is trained for softmax, not for this hardware: a negative control
whose collapse is the expected result. --lm chip is the GPT trained for the chip.
"""
from __future__ import annotations

from ..outdir import check_json_output, write_json_output
from ..progress import add_feedback, say
from .common import int_in
from .evaluate import add_lm_arguments, load_lm_and_hardware, parse_layers, resolve_scalers


def register(sub):
    p = sub.add_parser("decode", help="generate with the simulated chip in the model's loop", description=__doc__)
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("-n", "--new-tokens", type=int_in(1), default=64, help="tokens to generate (default: %(default)s)")
    add_lm_arguments(p)
    p.add_argument("--json", default=None, help="also write the result (texts, per-token latency and energy) to this "
                   "file; an existing file is replaced only if it is a decode result gcsim wrote")
    p.add_argument("--force", action="store_true", help="let --json replace a file gcsim did not write")
    add_feedback(p)
    p.set_defaults(func=main)


def software_decode(lm, hw, ids, n_new: int) -> list[int]:
    from ..llm.record import greedy_decode
    return greedy_decode(lm, hw, ids, n_new)


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main(args) -> int:
    from ..llm.live import run_in_loop
    from ..llm.loop import NEGATIVE_CONTROL_NOTE
    if args.json:                    # before any work: never a user's file (gcsim/outdir.py)
        check_json_output(args.json, "decode", "--json", force=args.force, what="a decode result")
    lm, hw = load_lm_and_hardware(args)
    ids = lm.encode(args.prompt)
    if len(ids) == 0:
        raise ValueError("--prompt: empty prompt")
    limit = min(lm.context, hw.shape.window)
    if len(ids) + args.new_tokens > limit:
        raise ValueError(f"prompt ({len(ids)} tokens) + --new-tokens {args.new_tokens} exceed {limit} "
                         f"(the model's context / the hardware window)")
    chip_layers = parse_layers(args.chip_layers, lm.layers)
    scalers, source = resolve_scalers(args, lm, hw, ids)
    from ..llm.evaluate import scalers_for
    scalers = scalers_for(scalers, hw.numerics.cell_law)
    src, res = run_in_loop(lm, hw, ids, chip_layers=chip_layers, scalers=scalers, n_new=args.new_tokens)
    soft = software_decode(lm, hw, ids, args.new_tokens)
    P = len(ids)
    chip_new, soft_new = src.tokens[P:], soft[P:]
    diff = first_difference(chip_new, soft_new)
    lat_ns = res.step_latency_ps(0) / 1000.0
    energy_nj = res.ledger.step_pj() / 1000.0
    gen = slice(P - 1, None)  # the steps that produced a new token
    if lm.negative_control:
        say(args, f"NOTE: {NEGATIVE_CONTROL_NOTE}\n")
    say(args, f"{lm.name} on {hw.name}, chip layers {args.chip_layers}, scalers {source}")
    say(args, f"prompt:          {args.prompt!r}")
    say(args, f"software model:  {lm.decode(soft_new)!r}")
    say(args, f"chip in loop:    {lm.decode(chip_new)!r}")
    if diff is None:
        say(args, f"identical over all {args.new_tokens} generated tokens")
    else:
        say(args, f"first difference at generated token {diff} "
              f"(software {lm.decode([soft_new[diff]])!r}, chip {lm.decode([chip_new[diff]])!r})")
    say(args, f"chip attention per token: latency {lat_ns[gen].mean():.1f} ns (min {lat_ns[gen].min():.1f}, "
          f"max {lat_ns[gen].max():.1f}), energy {energy_nj[gen].mean():.2f} nJ "
          f"(min {energy_nj[gen].min():.2f}, max {energy_nj[gen].max():.2f})")
    if args.json:
        write_json_output(args.json, {
            "model": lm.name, "hardware": hw.name, "prompt": args.prompt, "scalers": source,
            "software_text": lm.decode(soft_new), "chip_text": lm.decode(chip_new),
            "first_difference": diff, "negative_control": lm.negative_control,
            "latency_ns_per_step": lat_ns.tolist(), "energy_nj_per_step": energy_nj.tolist()}, "decode")
    return 0
