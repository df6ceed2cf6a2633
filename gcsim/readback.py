"""The one reader of what gcsim wrote earlier: schemas, and checksums that tie a record to
the bytes gcsim wrote.

Anything gcsim reads back (output-folder markers, sweep cache records, sweep.json and
results.csv, earlier reports) may have been edited, copied, truncated or forged since. Each
is checked against a schema before use (`validate`), and where gcsim must know the content
is still its own, it carries a checksum (`seal` / `unseal`): a record that fails either is
treated as not gcsim's (an output folder is refused, a cache entry computed again), never
trusted and never a traceback.

Schemas are small functions built from the constructors below, e.g.
    RECORD = mapping({"status": one_of("ok", "failed"), "metrics": map_of(number(nullable=True))})
A check raises RecordError naming the field, what was expected and what was found.
(A hand-written checker rather than the jsonschema package: the checks needed here, finite
numbers, hex digests, relative paths, are a few lines each, and the core install stays small.)
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Callable

from .errors import GcsimError

Schema = Callable[[object, str], None]


class RecordError(GcsimError):
    """A record gcsim wrote earlier does not match its schema or its checksum."""


def _found(value) -> str:
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'} of {len(value)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '…' if len(text) > 40 else text}"


def _fail(where: str, expected: str, value):
    raise RecordError(f"field '{where or '(top level)'}': expected {expected}, found {_found(value)}")


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def integer(lo: int | None = None, hi: int | None = None) -> Schema:
    def check(value, where):
        if type(value) is not int or (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(where, "an integer" + (f" >= {lo}" if lo is not None else "") + (f" <= {hi}" if hi is not None else ""),
                  value)
    return check


def number(*, nullable: bool = False, finite: bool = True) -> Schema:
    """A JSON number (int or float, never bool); finite unless finite=False."""
    def check(value, where):
        if value is None and nullable:
            return
        if type(value) not in (int, float) or (finite and not math.isfinite(value)):
            _fail(where, ("a finite number" if finite else "a number") + (" or null" if nullable else ""), value)
    return check


def text(pattern: str | None = None, max_len: int = 1 << 16, *, nullable: bool = False) -> Schema:
    rx = re.compile(pattern) if pattern else None

    def check(value, where):
        if value is None and nullable:
            return
        if not isinstance(value, str) or len(value) > max_len or (rx is not None and not rx.fullmatch(value)):
            _fail(where, f"a string{' matching ' + pattern if pattern else ''}{' or null' if nullable else ''}", value)
    return check


HEX64 = text(r"[0-9a-f]{64}")


def one_of(*allowed) -> Schema:
    def check(value, where):
        if not any(type(value) is type(a) and value == a for a in allowed):
            _fail(where, "one of " + ", ".join(map(repr, allowed)), value)
    return check


def list_of(item: Schema, max_len: int = 1 << 20) -> Schema:
    def check(value, where):
        if not isinstance(value, list) or len(value) > max_len:
            _fail(where, f"a list (at most {max_len} items)", value)
        for i, v in enumerate(value):
            item(v, f"{where}[{i}]")
    return check


def map_of(value_schema: Schema, key: Schema | None = None, max_len: int = 1 << 20) -> Schema:
    """A mapping with any string keys (checked by `key` when given), each value by `value_schema`."""
    def check(value, where):
        if not isinstance(value, dict) or len(value) > max_len:
            _fail(where, f"a mapping (at most {max_len} entries)", value)
        for k, v in value.items():
            if not isinstance(k, str):
                _fail(where, "string keys", k)
            if key is not None:
                key(k, _join(where, k))
            value_schema(v, _join(where, k))
    return check


def mapping(required: dict, optional: dict | None = None, *, extra: bool = False) -> Schema:
    """A mapping with these keys (required ones present); others refused unless extra=True."""
    optional = optional or {}

    def check(value, where):
        if not isinstance(value, dict):
            _fail(where, "a mapping", value)
        for k, schema in required.items():
            if k not in value:
                raise RecordError(f"field '{_join(where, k)}': missing")
            schema(value[k], _join(where, k))
        for k, schema in optional.items():
            if k in value:
                schema(value[k], _join(where, k))
        if not extra:
            unknown = sorted(str(k) for k in value if k not in required and k not in optional)
            if unknown:
                raise RecordError(f"field '{_join(where, unknown[0])}': not expected here")
    return check


def either(*schemas: Schema, expected: str) -> Schema:
    def check(value, where):
        for s in schemas:
            try:
                s(value, where)
                return
            except RecordError:
                pass
        _fail(where, expected, value)
    return check


def validate(value, schema: Schema, where: str = ""):
    """`value` if it matches `schema`, else RecordError (which field, expected, found)."""
    schema(value, where)
    return value


# --- checksums that tie a record to what gcsim wrote -----------------------------------------

SEAL = "gcsim_sha256"


def digest(data) -> str:
    """sha256 of a JSON value in one canonical form (keys sorted, no spaces): the same
    for the value gcsim wrote and the value read back from its file."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def seal(data: dict) -> dict:
    """`data` as it will read back from JSON (tuples as lists, keys as strings), with its
    checksum added under SEAL."""
    body = json.loads(json.dumps({k: v for k, v in data.items() if k != SEAL}, allow_nan=True))
    return {**body, SEAL: digest(body)}


def unseal(data) -> dict:
    """The record without its checksum if the checksum matches, else RecordError."""
    if not isinstance(data, dict):
        _fail("", "a mapping", data)
    stored = data.get(SEAL)
    body = {k: v for k, v in data.items() if k != SEAL}
    if not isinstance(stored, str):
        raise RecordError(f"field '{SEAL}': missing (not a record gcsim wrote, or from an older gcsim)")
    if stored != digest(body):
        raise RecordError(f"field '{SEAL}': the checksum does not match the content (edited since gcsim wrote it)")
    return body
