"""The `gcsim` command line.

Subcommands register themselves through a `register(subparsers)` function in their own
module and set `func` on their parser; user mistakes raise one of the project's error
types (all ValueError subclasses), which become one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import signal
import sys

from . import __version__

EPILOG = """\
reference-model variants (gcsim reference --variant):
  softmax  sliding-window causal softmax attention (the ideal baseline)
  linear   hardware model with the linear cell law f(y) = 19.3 y  [uA]
  cubic    hardware model with the SPICE-fitted cubic cell law (the real cell)

hardware settings live in YAML descriptions (models/*.yaml, --model NAME or PATH):
  window and sub-tile size, DAC/counter levels and ranges (null = quantization off),
  S_sat, output saturation, retention (time | per_token | off, tau), phase timing,
  energy per action, interconnect links and periphery sharing. Change any field for one
  run with --set FIELD=VALUE, e.g. --set numerics.q_levels=null (quantization off),
  --set numerics.retention.mode=off, --set shape.window=256.
"""


def _modules():
    from .commands import paper, profile, reference, run, validate
    from .traces import cli as trace_cli
    return [run, validate, profile, paper, reference, trace_cli]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gcsim", description="Simulate a gain-cell analog in-memory-computing attention accelerator.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gcsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _modules():
        mod.register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C so temporary outputs are removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, _terminate)
        except ValueError:  # not the main thread (e.g. called from a worker): leave the defaults
            pass
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # no subcommand: the main job on shipped defaults
        args = parser.parse_args(["run"] + (argv or []))
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
    except Terminated as exc:
        print(f"gcsim: terminated by signal {exc.signum}", file=sys.stderr)
        return 128 + exc.signum
    except (ValueError, FileNotFoundError, KeyboardInterrupt) as exc:
        if isinstance(exc, KeyboardInterrupt):
            print("gcsim: interrupted", file=sys.stderr)
            return 130
        print(f"gcsim {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
