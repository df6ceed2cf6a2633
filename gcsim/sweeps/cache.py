"""The result cache shared by all sweeps: one small JSON file per point, written atomically.

Each record carries a checksum of its content (gcsim.readback.seal) and is checked against a
schema when read: an edited, truncated or foreign file (a metric changed by hand, NaN where a
number was, a missing `status`) is not a result, so the point is computed again.

A point's key is the sha256 of (its description after the overrides, the trace's checksum,
the mode, the steps replayed, the seed, and a hash of gcsim's own source files), so a
changed description, trace or simulator never reuses an old result, and any sweep that
contains the point (a rerun, a larger grid, another spec) finds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from ..readback import HEX64, RecordError, integer, map_of, mapping, number, one_of, seal, text, unseal, validate
from ..safefile import MIB, read_json

CACHE_FORMAT = 1
MAX_RECORD_BYTES = 16 * MIB
RECORD_SCHEMA = mapping(
    {"status": one_of("ok", "failed"), "error": text(nullable=True), "metrics": map_of(number(nullable=True, finite=False)),
     "key": HEX64},
    {"traceback": text(max_len=1 << 20), "wall_s": number(), "pid": integer(lo=0), "gcsim_source": HEX64})


def default_cache_dir() -> Path:
    """The user's cache folder: platformdirs' where installed, else $XDG_CACHE_HOME/gcsim
    (~/.cache/gcsim)."""
    try:
        import platformdirs
        root = Path(platformdirs.user_cache_dir("gcsim", appauthor=False))
    except ImportError:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gcsim"
    return root / "sweep"


def source_hash() -> str:
    """sha256 over gcsim's own Python source files (gcsim.provenance), so results computed by
    another version of the code, committed or not, are never reused."""
    from ..provenance import source_sha256
    return source_sha256()


def trace_checksum(trace) -> str:
    """sha256 of a trace's whole header: every array's sha256 and also the scalers, which
    change the results (provenance.trace_sha256 covers the arrays only)."""
    return hashlib.sha256(json.dumps(trace.header, sort_keys=True).encode()).hexdigest()


def point_key(description: dict, trace_sha: str, mode: str, steps: int | None, seed: int) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, "description": description, "trace": trace_sha,
                       "mode": mode, "steps": steps, "seed": seed, "gcsim_source": source_hash()},
                      sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResultCache:
    """Point results under DIR/points/<key[:2]>/<key>.json."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        try:
            (self.root / "points").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from ..errors import UsageError
            raise UsageError(f"{self.root}: cannot use as the sweep cache ({exc.strerror})") from None

    def _path(self, key: str) -> Path:
        return self.root / "points" / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The record of point `key`, or None when absent or not valid (computed again)."""
        path = self._path(key)
        if not os.path.lexists(path):
            return None
        try:
            data = validate(unseal(read_json(path, "cache record", MAX_RECORD_BYTES, RecordError)), RECORD_SCHEMA)
        except RecordError:
            return None                  # edited, truncated, foreign: computed again
        return data if data["key"] == key else None

    def put(self, key: str, record: dict) -> None:
        """Write atomically: a killed sweep leaves either the whole record or none."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(seal({**record, "key": key}), allow_nan=True))  # key order = column order
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def trace_dir(self) -> Path:
        d = self.root / "traces"
        d.mkdir(parents=True, exist_ok=True)
        return d


def python_info() -> dict:
    return {"python": sys.version.split()[0], "platform": sys.platform}
