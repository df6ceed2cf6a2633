"""gcsim's exceptions and the exit codes of the `gcsim` command.

Every error gcsim raises for a user's mistake (a bad description, trace, argument or API
call) is a `GcsimError`; the command line prints its message on one line and exits 2.
All are `ValueError` subclasses, so code written against the earlier API keeps working.

    GcsimError                 base: a problem with what the user gave gcsim
    ├── HardwareError          a hardware description (YAML, --set, Hardware.derive)
    ├── TraceError             a decode trace file (.gctrace) or its writer
    ├── ReferenceModelError    inputs of the reference model (gcsim.reference)
    ├── SimError               inputs of a simulation that do not fit together
    │   └── NumericsError      a stage produced NaN/Inf (names stage, step, layer, head, fields)
    └── UsageError             a command-line argument or an output path
"""
from __future__ import annotations

import re

# Exit codes of `gcsim` (also in README.md and `gcsim --help`).
EXIT_OK = 0
EXIT_MISMATCH = 1        # gcsim validate: the simulator and the reference model differ; gcsim paper: a figure off
EXIT_BAD_INPUT = 2       # a user mistake: the message names the file/argument and field
EXIT_INTERNAL = 3        # a bug in gcsim: the full traceback is saved to a file
EXIT_SWEEP_FAILED = 4    # a sweep finished but some of its points failed
EXIT_SIGINT = 130        # interrupted by Ctrl-C (128 + SIGINT)
EXIT_SIGTERM = 143       # terminated (128 + SIGTERM); SIGHUP gives 129

EXIT_CODES_TEXT = """\
exit status:
  0    success
  1    gcsim validate: the simulator and the reference model differ; gcsim paper: a figure
       off the paper's by more than its tolerance (the table marks which)
  2    bad input (description, trace, argument, output path): one line names what and where
  3    internal error: a bug in gcsim; the message says where the full traceback was saved
  4    a sweep finished with some points failed
  130  interrupted (SIGINT, Ctrl-C); 143 terminated (SIGTERM), 129 hang-up (SIGHUP);
       outputs are left as they were before the command and no temporary files remain
"""


class GcsimError(ValueError):
    """A problem with what the user gave gcsim; the message says what and where."""


class HardwareError(GcsimError):
    """A hardware description is malformed; the message names the file and field."""


class TraceError(GcsimError):
    """A trace file is malformed, inconsistent, corrupt or from a newer format version."""


class ReferenceModelError(GcsimError):
    """Bad input to the reference model (shape, NaN, unknown variant)."""


class SimError(GcsimError):
    """The inputs of a simulation do not fit together (e.g. trace shape vs hardware)."""


class NumericsError(SimError):
    """A stage produced a non-finite value; names the stage, step, layer, head and the
    description fields that drive it."""


class UsageError(GcsimError):
    """A command-line argument or an output path is unusable."""


class Interrupted(BaseException):
    """SIGTERM/SIGHUP turned into an exception, so that cleanup (`finally`, atomic
    writers) runs as for Ctrl-C; `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(int(signum))  # args = (signum,): SimPy re-raises with type(e)(*e.args)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum

    def __str__(self):
        return f"signal {self.signum}"


# C0 and C1 control characters but tab and newline, and the Unicode line separators and
# bidirectional overrides: text from a file (a trace's provenance, a description's name) could
# otherwise move the cursor, recolour or rewrite the terminal, or hide what it says.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` for the terminal, each control character shown as its escape (\\x1b, \\r, ...);
    one_line: newlines and tabs too (messages are one line whatever the user typed)."""
    return (_CONTROL_ONE_LINE if one_line else _CONTROL).sub(lambda m: ascii(m.group())[1:-1], str(text))


def silence_stdout() -> None:
    """After a BrokenPipeError (output piped into e.g. `head`, which stopped reading):
    point stdout at /dev/null so that the interpreter's final flush cannot fail and change
    the exit status."""
    import os
    import sys
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (e.g. captured by a test)
        pass
