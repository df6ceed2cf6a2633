"""Arguments and file handling shared by the subcommands."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


from ..hardware import load_hardware, parse_overrides
from ..kernels.device import DEVICES, namespace_for
from ..outdir import output_dir
from ..resources import DEFAULT_TRACE
from ..sim import check_fit
from ..traces import open_trace

DEFAULT_MODEL = "smollm2"


def int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in lo..hi (hi None: no upper bound); anything else is
    refused, never replaced by a default."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, found {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{'' if hi is None else hi}, found {value}")
        return value
    return parse


def positive_float(text):
    """An argparse type: a finite number > 0 (nan, inf, 0 and negatives refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, found {text}")
    return value


def add_inputs(p, *, default_model=DEFAULT_MODEL, trace_default=True):
    p.add_argument("trace", nargs="?" if trace_default else None, default=str(DEFAULT_TRACE) if trace_default else None,
                   help="decode trace (.gctrace); default: the shipped SmolLM2 trace")
    p.add_argument("-m", "--model", default=default_model,
                   help="hardware description: a name in models/ or a YAML path (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None, help="replay only the first N steps")
    p.add_argument("--device", default="cpu", choices=DEVICES,
                   help="where the arrays' bank reads run (default cpu; cuda: a GPU through PyTorch or CuPy)")
    add_overrides(p)


def add_overrides(p):
    p.add_argument("-s", "--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a field of the description, e.g. numerics.q_levels=null, "
                        "numerics.retention.mode=off, shape.window=256 (repeatable)")


def overrides(items: list[str]) -> dict:
    """['a.b=1', ...] -> {'a': {'b': 1}}, values parsed as YAML (gcsim.hardware.parse_overrides)."""
    return parse_overrides(items)


def load_model(args):
    hw = load_hardware(args.model)
    changes = overrides(getattr(args, "set", []))
    return hw.derive(**changes) if changes else hw


def load_inputs(args):
    namespace_for(getattr(args, "device", "cpu"))  # an unavailable device stops here, before any work
    hw = load_model(args)
    trace = open_trace(args.trace)
    check_fit(hw, trace)
    if args.steps is not None and args.steps <= 0:
        raise ValueError(f"--steps must be positive, got {args.steps}")
    return hw, trace


def trace_info(trace) -> dict:
    prov = trace.provenance or {}
    return {"path": str(trace.path), "steps": trace.steps, "model": trace.model,
            "source": prov.get("source"), "synthetic": prov.get("synthetic"),
            "sha256": {k: v.get("sha256") for k, v in trace.header.get("arrays", {}).items()}}


def add_output(p, default: str):
    p.add_argument("-o", "--out", default=default,
                   help="output directory (default: %(default)s); replaced only if gcsim wrote it")
    p.add_argument("--force", action="store_true",
                   help="write into OUT even if it holds files gcsim did not write (they are kept; "
                        "same-named files are replaced)")


def open_output(args):
    """The output directory of a command (gcsim.outdir.output_dir): enter it before long work."""
    return output_dir(args.out, force=args.force)


def provenance_of(args, hw=None, trace=None, seed=None) -> dict:
    """The provenance record (gcsim.provenance) of a command's output."""
    from ..provenance import provenance
    return provenance(hw=hw, trace=trace, seed=seed, command=getattr(args, "command_line", None))


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def number_list(kind=int):
    """An argparse type: comma-separated numbers of `kind`, each > 0 (e.g. --rates 50,100)."""
    import argparse

    def parse(text: str):
        try:
            out = [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            out = []
        if not out or min(out) <= 0:
            raise argparse.ArgumentTypeError(f"expected comma-separated {'whole ' if kind is int else ''}numbers "
                                             f"> 0, found {text!r}")
        return out
    return parse
