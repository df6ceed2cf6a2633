"""Saying so when the kernels compile: the first run after an install (or after the kernels'
source, numba or Python changed) spends about 10 s compiling them; numba keeps them in its
on-disk cache, so later runs start at once. Without a word that first step looks like a hang.

numba does not tell in advance whether a call will compile, so gcsim leaves a marker beside
numba's cache (Dispatcher.stats.cache_path) after a run that used the kernels, stamped with a
hash of the kernels' source, numba's version and Python's; a run that finds no such marker
says "compiling kernels (once)" before its first step.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

MARKER = "gcsim-kernels-compiled"


def _stamp() -> str:
    import numba
    h = hashlib.sha256(f"{numba.__version__} {sys.version}".encode())
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def _marker() -> Path:
    from . import bitline
    bitline.compiled()
    return Path(bitline._compiled["kernel"].stats.cache_path) / MARKER


def compiled_before() -> bool:
    """Whether a run has compiled (and cached) these kernels before."""
    try:
        return _marker().read_text() == _stamp()
    except OSError:
        return False


def announce(enabled: bool) -> None:
    """Before a run that uses the kernels (with its progress bar on): on stderr, when they are
    not known to be compiled, say that they compile now."""
    if enabled and not compiled_before():
        print("gcsim: compiling kernels (once; 10-30 s, then cached for later runs)", file=sys.stderr, flush=True)


def finished() -> None:
    """After a run that used the kernels: leave the marker (silently skipped where numba's
    cache folder is not writable: numba then compiles each time, and says so each time)."""
    try:
        if not compiled_before():
            _marker().write_text(_stamp())
    except OSError:
        pass
