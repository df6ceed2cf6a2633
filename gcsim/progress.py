"""Feedback on long work, the same on every command: a tqdm bar on stderr, --no-progress and
--quiet.

A bar appears only once the work has lasted DELAY_S, so quick commands print nothing extra
and long ones (a 2,000-step validation, a reference run, a trace recording) show how far they
are. --quiet also keeps the summary off stdout; the files are written as usual and errors are
still printed.
"""
from __future__ import annotations

import sys

from tqdm import tqdm

from .errors import printable

DELAY_S = 1.0


def add_feedback(p) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and nothing on stdout (files are still written, errors still shown)")


def wanted(args) -> bool:
    """Whether the command's progress bars are on."""
    return not (getattr(args, "no_progress", False) or getattr(args, "quiet", False))


def bar(total: int | None, desc: str, *, enabled: bool = True, unit: str = "step") -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False,
                delay=DELAY_S, file=sys.stderr, dynamic_ncols=True)


def say(args, text: str) -> None:
    """Print to stdout unless --quiet."""
    if not getattr(args, "quiet", False):
        print(printable(text))     # control characters from files' text escaped


def iterate(items, desc: str, *, enabled: bool = True, unit: str = "step"):
    """Iterate `items` under a bar (same look and delay as `bar`)."""
    return tqdm(items, desc=desc, unit=unit, disable=not enabled, leave=False,
                delay=DELAY_S, file=sys.stderr, dynamic_ncols=True)
