"""Where an output came from: the record every gcsim output carries.

`provenance(hw=..., trace=..., seed=..., command=...)` gives the gcsim version and a hash of
its source (every .py file of the package, so an edited checkout is told apart from a
release), the resolved description's hash (its validated content, so the same description
reached by another path or through --set hashes alike), the trace's checksum (from the
checksums in a .gctrace header, or of the arrays of an in-memory trace), the seed and the
command line. Two outputs with equal provenance came from the same inputs and code.
"""
from __future__ import annotations

import functools
import hashlib
import json
import platform
from pathlib import Path

import numpy as np

from . import __version__

PACKAGE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def source_sha256() -> str:
    """sha256 over the package's Python files (relative path and content, in sorted order)."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def hardware_sha256(hw) -> str:
    """sha256 of the validated description's content (its file path left out)."""
    from .hardware import to_dict
    data = to_dict(hw)
    data.pop("source", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()


def trace_sha256(trace) -> str:
    """One checksum of a trace: over the per-array sha256 of a .gctrace header, or over the
    q, k, v (and scalers) of an in-memory trace."""
    header = getattr(trace, "header", None)
    h = hashlib.sha256()
    if header is not None:
        arrays = header.get("arrays", {})
        for name in sorted(arrays):
            h.update(f"{name}:{arrays[name].get('sha256')}\n".encode())
        return h.hexdigest()
    for name in ("q", "k", "v"):
        arr = np.ascontiguousarray(getattr(trace, name))
        h.update(f"{name}:{arr.dtype}:{arr.shape}\n".encode())
        h.update(arr.tobytes())
    for name, arr in sorted((getattr(trace, "scalers", None) or {}).items()):
        h.update(f"{name}:".encode() + np.ascontiguousarray(arr, np.float64).tobytes())
    return h.hexdigest()


def provenance(*, hw=None, trace=None, seed: int | None = None, command: str | None = None,
               **extra) -> dict:
    """The provenance record of an output (see the module docstring); `extra` adds fields."""
    out = {"gcsim_version": __version__, "gcsim_source_sha256": source_sha256(),
           "python": platform.python_version(), "numpy": np.__version__,
           "command": command, "seed": seed}
    if hw is not None:
        out["hardware"] = {"name": hw.name, "source": hw.source, "sha256": hardware_sha256(hw)}
    if trace is not None:
        path = getattr(trace, "path", None)
        out["trace"] = {"path": str(path) if path is not None else None, "sha256": trace_sha256(trace),
                        "steps": int(trace.steps)}
    out.update(extra)
    return out
