"""The `gcsim` command line.

Subcommands register themselves through a `register(subparsers)` function in their own
module and set `func` on their parser; user mistakes raise a GcsimError (gcsim/errors.py),
which becomes one line on stderr and exit code 2. Anything unexpected is a bug: exit 3 with
the traceback saved to a file. The exit codes are listed in gcsim/errors.py.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import warnings
from pathlib import Path

from . import __version__
from .errors import (EXIT_BAD_INPUT, EXIT_CODES_TEXT, EXIT_INTERNAL, EXIT_OK, EXIT_SIGINT, GcsimError,
                     Interrupted, printable, silence_stdout)
from .kernels.bitline import threads_from_environment

PACKAGE_DIR = Path(__file__).resolve().parent
Terminated = Interrupted  # the earlier name

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

""" + EXIT_CODES_TEXT


def _modules():
    from .commands import (adapt, decode, describe, evaluate, paper, profile, reference, run, serve, sweep, system,
                           train, validate)
    from .traces import cli as trace_cli
    return [run, validate, profile, paper, reference, trace_cli, describe, sweep, system, serve, decode, evaluate,
            train, adapt]


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line (no usage block), naming the command and where to look."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {_describe(ValueError(message))} "
                                  f"(see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gcsim", description="Simulate a gain-cell analog in-memory-computing attention accelerator.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gcsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _modules():
        mod.register(sub)
    from .commands.examples import attach
    attach(parser)  # examples at the end of every command's --help
    return parser


def _standard_streams() -> None:
    """A closed stdin/stdout/stderr (`gcsim run >&-`) becomes /dev/null: printing must not
    crash, and no file gcsim opens later may take descriptor 1 or 2 (where prints and worker
    processes would write into it)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            new = os.open(os.devnull, os.O_RDWR)
            if new != fd:
                os.dup2(new, fd)
                os.close(new)
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode))


def main(argv: list[str] | None = None) -> int:
    _standard_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # no subcommand: the main job on shipped defaults
        args = parser.parse_args(["run"] + (argv or []))
    # recorded in every output's provenance (gcsim/provenance.py)
    args.command_line = shlex.join(["gcsim", *(sys.argv[1:] if argv is None else argv)])
    with _signals_as_exceptions(), _one_line_warnings():
        return _run(args, argv)


@contextlib.contextmanager
def _one_line_warnings():
    """Warnings (e.g. an old trace format) as one line on stderr, without source lines."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"gcsim: warning: {printable(message, one_line=True)}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _run(args, argv) -> int:
    """Run the command; map every outcome to one line on stderr and an exit code
    (gcsim/errors.py)."""
    where = f"gcsim {args.command}"
    try:
        threads_from_environment(os.environ)   # a bad GCSIM_THREADS: one line, before any work
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return rc
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Interrupted as exc:
        print(f"{where}: terminated by signal {exc.signum}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, OSError, MemoryError) as exc:
        if not isinstance(exc, ValueError) or isinstance(exc, GcsimError) or _raised_by_gcsim(exc):
            print(f"{where}: error: {_describe(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _internal_error(where, argv)
    except Exception:  # noqa: BLE001 - anything else is a bug in gcsim
        return _internal_error(where, argv)


def _raised_by_gcsim(exc: BaseException) -> bool:
    """A plain ValueError raised in gcsim's own code is a checked user mistake (older
    commands raise ValueError); one raised inside numpy or another library is a bug."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "out of memory" + (f": {exc}" if str(exc) else "")
    if isinstance(exc, OSError) and exc.strerror:  # the path and the reason, never the content
        paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
        return f"{' -> '.join(paths) + ': ' if paths else ''}{exc.strerror}"
    return printable(str(exc), one_line=True)     # one line, whatever the user typed


def _internal_error(where: str, argv) -> int:
    """A bug: one line on stderr, the full traceback in a file."""
    import tempfile
    import time
    import traceback
    exc = sys.exc_info()[1]
    text = (f"gcsim {__version__}\ncommand: gcsim {' '.join(argv if argv is not None else sys.argv[1:])}\n"
            f"time: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n\n{traceback.format_exc()}")
    try:
        fd, path = tempfile.mkstemp(prefix="gcsim-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        saved = f"the full traceback is saved in {path}"
    except OSError:
        saved = "the traceback could not be saved"
    print(f"{where}: internal error (this is a bug in gcsim; please report it): "
          f"{type(exc).__name__}: {printable(exc, one_line=True)}; {saved}", file=sys.stderr)
    return EXIT_INTERNAL


@contextlib.contextmanager
def _signals_as_exceptions():
    """SIGTERM and SIGHUP raise Interrupted, so that the same cleanup runs as for Ctrl-C
    (atomic writers drop their temporary files, previous outputs stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    sigs = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


if __name__ == "__main__":
    sys.exit(main())
