"""The decode-trace file format, version 2 (``.gctrace``); version 1 files still open.

A trace holds, for every decode step t and layer, the q vector of every query head and the k
and v vectors of every K/V head (projection outputs in the model's own units, post-RoPE), the
token ids, the per-head calibration scalers and, optionally, the software model's own attention
outputs. See docs/trace-format.md for the field-by-field description.

File layout (all integers little-endian)::

    b"GCTRACE\\0"                   8 bytes magic
    uint64 header_len               8 bytes
    header                          header_len bytes of UTF-8 JSON (sorted keys, no timestamps)
    zero padding                    up to the next 64-byte boundary
    q, k, v, [attn_out], token_ids  raw C-order arrays, each at a 64-byte-aligned offset,
                                    zero padding between them

Version 2 adds ``header_sha256`` to the header: the sha256 of the header bytes with that
field's 64 hex digits set to "0" (so the header, scalers included, cannot change unnoticed),
and requires zero padding and no bytes after the last array. Version 1 files open with a
warning that their header is unchecked; ``gcsim trace upgrade`` rewrites them as version 2.

The header length is fixed before any data is written: every field is known up front except the
array checksums, which are fixed-width hex strings. So the streaming writer writes a header with
placeholder checksums, streams the steps into their precomputed offsets, then overwrites the
header in place with the real checksums (same length) before the atomic rename.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import TraceError
from ..datapath import KV_SCALERS, SCALER_KEYS as SCALER_NAMES
from ..streamio import release_pages

MAGIC = b"GCTRACE\0"
FORMAT_NAME = "gcsim-trace"
VERSION = 2
HEADER_SHA_KEY = b'"header_sha256":"'
MAX_HEADER_BYTES = 64 << 20  # a header holds scalers of at most a few thousand heads
MAX_STEPS = 1 << 40
ALIGN = 64
FLOAT_DTYPES = ("float16", "float32")
PROVENANCE_KEYS = ("source", "source_sha256", "prompt", "command", "seed",
                   "gcsim_version", "synthetic", "generator")
REQUIRED_FIELDS = ("format", "version", "model", "steps", "dtype", "scalers", "clip_fraction",
                   "provenance", "arrays")
MODEL_KEYS = ("name", "layers", "heads", "kv_heads", "d_head")
ARRAY_KEYS = ("dtype", "shape", "offset", "nbytes", "sha256")
_PREFIX = len(MAGIC) + 8
_PLACEHOLDER_SHA = "0" * 64
_CHUNK_BYTES = 1 << 20  # verify/scan granularity: the scan's peak (a chunk and its masks) stays
# below the memory of a run whatever the trace length (8 MiB chunks showed as a step in peak RSS)




def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _kv_group(name: str) -> str:
    """Which head count an array or scaler is indexed by: "heads" or "kv_heads"."""
    return "kv_heads" if name in ("k", "v", *KV_SCALERS) else "heads"


def array_specs(model: dict, steps: int, dtype: str, attn_out: bool) -> dict:
    """Expected {name: (dtype, shape)} of the arrays, in file order."""
    L, d = model["layers"], model["d_head"]
    specs = {name: (dtype, (steps, L, model[_kv_group(name)], d)) for name in ("q", "k", "v")}
    if attn_out:
        specs["attn_out"] = (dtype, (steps, L, model["heads"], d))
    specs["token_ids"] = ("int32", (steps,))
    return specs


def scaler_shape(name: str, model: dict) -> tuple:
    """Shape of scaler ``name`` (e.g. "a_k") or clip-fraction entry ("q", "k", "v")."""
    return (model["layers"], model[_kv_group(name)])


def _check_model(model: dict, where: str) -> dict:
    if not isinstance(model, dict):
        raise TraceError(f"{where}: field 'model' must be an object, got {model!r}")
    for key in MODEL_KEYS:
        if key not in model:
            raise TraceError(f"{where}: missing required field 'model.{key}'")
    for key in MODEL_KEYS[1:]:
        value = model[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise TraceError(f"{where}: model.{key} must be a positive integer, got {value!r}")
    if model["heads"] % model["kv_heads"]:
        raise TraceError(f"{where}: model.kv_heads ({model['kv_heads']}) must divide "
                         f"model.heads ({model['heads']})")
    if not isinstance(model["name"], str):
        raise TraceError(f"{where}: model.name must be a string, got {type(model['name']).__name__}")
    return {"name": model["name"], **{key: int(model[key]) for key in MODEL_KEYS[1:]}}


class TraceFormatWarning(UserWarning):
    """An old trace format that opens but is checked less (version 1: no header checksum)."""


def _numbers(value, where: str, field: str) -> np.ndarray:
    """A header field that must be a (nested list of) numbers, as float64."""
    def plain(v):
        return all(plain(x) for x in v) if isinstance(v, list) else (
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool))
    if not isinstance(value, np.ndarray) and not plain(value):
        raise TraceError(f"{where}: field '{field}' must hold numbers only")
    try:
        return np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise TraceError(f"{where}: field '{field}' is not a rectangular array of numbers") from None


def _check_scalers(scalers, clip_fraction, model: dict, where: str):
    """Validate and convert scalers (and clip fractions) to dicts of float64 arrays."""
    out = {}
    if not isinstance(scalers, dict):
        raise TraceError(f"{where}: field 'scalers' must be an object, got {type(scalers).__name__}")
    if clip_fraction is not None and not isinstance(clip_fraction, dict):
        raise TraceError(f"{where}: field 'clip_fraction' must be an object or null, got "
                         f"{type(clip_fraction).__name__}")
    for name in SCALER_NAMES:
        if name not in scalers:
            raise TraceError(f"{where}: missing required field 'scalers.{name}'")
        arr = _numbers(scalers[name], where, f"scalers.{name}")
        if arr.shape != scaler_shape(name, model):
            raise TraceError(f"{where}: scaler '{name}' has shape {arr.shape}, expected "
                             f"{scaler_shape(name, model)} [layers, {_kv_group(name)}]")
        if not np.all(np.isfinite(arr)):
            raise TraceError(f"{where}: scaler '{name}' contains NaN or Inf")
        out[name] = arr
    clip = None
    if clip_fraction is not None:
        clip = {}
        for name in ("q", "k", "v"):
            if name not in clip_fraction:
                raise TraceError(f"{where}: missing required field 'clip_fraction.{name}'")
            arr = _numbers(clip_fraction[name], where, f"clip_fraction.{name}")
            if arr.shape != scaler_shape(name, model):
                raise TraceError(f"{where}: clip_fraction '{name}' has shape {arr.shape}, "
                                 f"expected {scaler_shape(name, model)}")
            if not np.all((arr >= 0) & (arr <= 1)):  # NaN fails too
                bad = arr[~((arr >= 0) & (arr <= 1))].flat[0]
                raise TraceError(f"{where}: clip_fraction '{name}' holds {bad}, expected a fraction in [0, 1]")
            clip[name] = arr
    return out, clip


def check_scalers(scalers, model: dict, where: str) -> dict:
    """Scalers given as (nested lists of) numbers, checked and converted to float64 arrays
    (every key, shape [layers, heads or kv_heads], finite); TraceError names the field."""
    return _check_scalers(scalers, None, model, where)[0]


def _first_bad(chunk: np.ndarray, t0: int) -> tuple | None:
    """Index (step, layer, head, dim) of the first NaN/Inf in a chunk starting at step t0."""
    bad = ~np.isfinite(chunk)
    if not bad.any():
        return None
    idx = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return (t0 + int(idx[0]),) + tuple(int(i) for i in idx[1:])


def _bad_message(where: str, name: str, idx: tuple) -> str:
    head = "kv_head" if name in ("k", "v") else "head"
    return (f"{where}: array '{name}' contains NaN or Inf, first at step {idx[0]}, "
            f"layer {idx[1]}, {head} {idx[2]} (dim {idx[3]})")


# --------------------------------------------------------------------------------------------
# Writing


def _unfinished_trace(path: Path) -> bool:
    """Whether `path` is a trace a TraceWriter started and never finished (its header
    checksum is still the placeholder): what a killed writer leaves as its temporary file."""
    from ..safefile import open_regular
    try:
        with open_regular(path, "trace", None, TraceError) as f:
            prefix = f.read(_PREFIX)
            if len(prefix) < _PREFIX or prefix[:len(MAGIC)] != MAGIC:
                return False
            n = int(np.frombuffer(prefix[len(MAGIC):], dtype="<u8")[0])
            header = json.loads(f.read(min(n, MAX_HEADER_BYTES)).decode("utf-8"))
    except (TraceError, OSError, ValueError, RecursionError):
        return False
    return isinstance(header, dict) and header.get("format") == FORMAT_NAME \
        and header.get("header_sha256") == _PLACEHOLDER_SHA


class TraceWriter:
    """Streams a trace to disk step by step; memory does not grow with the number of steps.

    Shapes, scalers and provenance are fixed up front (they size the header). Use as a context
    manager: on normal exit the file is finalised (all ``steps`` must have been appended) and
    atomically renamed to ``path``; on an exception the temporary file is deleted and ``path``
    is left untouched.

    q_t: [layers, heads, d_head]; k_t, v_t: [layers, kv_heads, d_head]; attn_out_t like q_t.
    """

    def __init__(self, path, *, model: dict, steps: int, scalers: dict, clip_fraction,
                 provenance: dict, dtype: str = "float16", attn_out: bool = False):
        self.path = Path(path)
        where = str(self.path)
        if dtype not in FLOAT_DTYPES:
            raise TraceError(f"{where}: dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise TraceError(f"{where}: steps must be a positive integer, got {steps!r}")
        self.model = _check_model(model, where)
        self.steps, self.dtype = int(steps), dtype
        scalers, clip = _check_scalers(scalers, clip_fraction, self.model, where)
        prov = {key: None for key in PROVENANCE_KEYS}
        prov.update(synthetic=False, gcsim_version=_gcsim_version())
        prov.update(provenance or {})

        self._specs = array_specs(self.model, self.steps, dtype, attn_out)
        self._header = {
            "format": FORMAT_NAME, "version": VERSION, "model": self.model,
            "steps": self.steps, "dtype": dtype,
            "scalers": {k: a.tolist() for k, a in scalers.items()},
            "clip_fraction": None if clip is None else {k: a.tolist() for k, a in clip.items()},
            "provenance": prov, "arrays": {}, "header_sha256": _PLACEHOLDER_SHA,
        }
        # Offsets follow from the header length, which is fixed now (placeholder checksums).
        # Offsets' digits can lengthen the header; iterate until the header fits before them.
        header_len = len(self._encode_header())
        while True:
            offset = first = _align(_PREFIX + header_len)
            arrays = {}
            for name, (dt, shape) in self._specs.items():
                nbytes = int(np.prod(shape)) * np.dtype(dt).itemsize
                arrays[name] = {"dtype": dt, "shape": list(shape), "offset": offset,
                                "nbytes": nbytes, "sha256": _PLACEHOLDER_SHA}
                offset = _align(offset + nbytes)
            self._header["arrays"] = arrays
            header_len = len(self._encode_header())
            if _PREFIX + header_len <= first:
                break
        self._total = offset
        self._hashes = {name: hashlib.sha256() for name in self._specs}
        self._t = 0
        self._aborted = False
        from ..outdir import clean_stale_files, temp_path
        clean_stale_files(self.path, _unfinished_trace)      # what killed writers left here
        self._tmp = temp_path(self.path)
        self._file = open(self._tmp, "wb")
        try:
            self._file.write(MAGIC + np.uint64(header_len).astype("<u8").tobytes())
            self._file.write(self._encode_header())
            self._file.truncate(self._total)  # zero fill: padding and not-yet-written data
        except OSError as exc:
            self.abort()
            raise TraceError(f"{where}: cannot write a trace of {self._total} bytes here "
                             f"({exc.strerror})") from None
        except BaseException:
            self.abort()
            raise

    def _encode_header(self) -> bytes:
        return json.dumps(self._header, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False).encode("utf-8")

    def _encode(self, name: str, value, t: int) -> bytes:
        """Validate one step of array ``name`` and return its little-endian bytes."""
        dt, shape = self._specs[name]
        arr = np.asarray(value)
        if arr.shape != tuple(shape[1:]):
            raise TraceError(f"{self.path}: step {t}: '{name}' has shape {arr.shape}, "
                             f"expected {tuple(shape[1:])}")
        with np.errstate(over="ignore"):  # overflow to Inf is reported just below
            arr = np.ascontiguousarray(arr, dtype=np.dtype(dt).newbyteorder("<"))
        if arr.dtype.kind == "f":  # also catches float16 overflow to Inf
            bad = _first_bad(arr[None], t)
            if bad is not None:
                raise TraceError(_bad_message(str(self.path), name, bad)
                                 + f" (after conversion to {dt})")
        return arr.tobytes()

    def append_step(self, q_t, k_t, v_t, token_id: int, attn_out_t=None):
        """Append decode step number ``self.steps_written`` (see class doc for shapes)."""
        t = self._t
        if self._file is None:
            raise TraceError(f"{self.path}: writer is closed")
        if t >= self.steps:
            raise TraceError(f"{self.path}: all {self.steps} steps already written")
        if ("attn_out" in self._specs) != (attn_out_t is not None):
            raise TraceError(f"{self.path}: step {t}: attn_out_t must be given "
                             f"{'for every step' if 'attn_out' in self._specs else 'never'} "
                             "(fixed by attn_out= when the writer was created)")
        if not 0 <= int(token_id) < 2**31:
            raise TraceError(f"{self.path}: step {t}: token id {token_id} is not a valid int32 id")
        values = {"q": q_t, "k": k_t, "v": v_t, "attn_out": attn_out_t,
                  "token_ids": np.asarray(int(token_id))}
        # Validate everything before writing anything: a rejected step leaves no partial data.
        blocks = {name: self._encode(name, values[name], t) for name in self._specs}
        for name, data in blocks.items():
            self._file.seek(self._header["arrays"][name]["offset"] + t * len(data))
            self._file.write(data)
            self._hashes[name].update(data)
        self._t += 1

    @property
    def steps_written(self) -> int:
        return self._t

    def close(self) -> Path:
        """Finalise: write the checksums, fsync, atomically rename to ``path``."""
        if self._file is None:
            if self._aborted:
                raise TraceError(f"{self.path}: writer was aborted; nothing was written")
            return self.path
        try:
            if self._t != self.steps:
                raise TraceError(f"{self.path}: only {self._t} of {self.steps} steps were "
                                 "written; refusing to finalise an incomplete trace")
            old_len = len(self._encode_header())
            for name, h in self._hashes.items():
                self._header["arrays"][name]["sha256"] = h.hexdigest()
            self._header["header_sha256"] = _PLACEHOLDER_SHA
            self._header["header_sha256"] = header_checksum(self._encode_header())
            header = self._encode_header()
            assert len(header) == old_len, "checksums must not change the header length"
            self._file.seek(_PREFIX)
            self._file.write(header)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        _fsync_dir(self.path.parent)
        return self.path

    def abort(self):
        """Drop the partial file; ``path`` is left as it was."""
        self._aborted = True
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def _fsync_dir(directory: Path):
    """Make the rename durable (POSIX); harmless no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _gcsim_version() -> str:
    from gcsim import __version__
    return __version__


def write_trace(path, *, q, k, v, token_ids, model: dict, scalers: dict, clip_fraction,
                provenance: dict, attn_out=None, dtype: str = "float16") -> Path:
    """Write a whole in-memory trace (same bytes as streaming it through TraceWriter).

    q: [steps, layers, heads, d_head]; k, v: [steps, layers, kv_heads, d_head];
    token_ids: [steps] ints; attn_out: None or like q. Values in the model's own units.
    """
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    token_ids = np.asarray(token_ids).reshape(-1)
    steps = q.shape[0] if q.ndim else 0
    for name, arr in (("k", k), ("v", v), ("token_ids", token_ids), ("attn_out", attn_out)):
        if arr is not None and np.shape(arr)[0] != steps:
            raise TraceError(f"{path}: '{name}' has {np.shape(arr)[0]} steps, q has {steps}")
    with TraceWriter(path, model=model, steps=steps, scalers=scalers,
                     clip_fraction=clip_fraction, provenance=provenance, dtype=dtype,
                     attn_out=attn_out is not None) as w:
        for t in range(steps):
            w.append_step(q[t], k[t], v[t], token_ids[t],
                          None if attn_out is None else attn_out[t])
    return Path(path)


def upgrade_trace(src, dst) -> Path:
    """Rewrite trace `src` (any supported version, verified first) as the current version at
    `dst`; the arrays' bytes, scalers, clip fractions and provenance are unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceFormatWarning)  # upgrading is the answer to it
        tr = open_trace(src)
    try:
        h = tr.header
        has_attn = tr.attn_out is not None
        with TraceWriter(dst, model=tr.model, steps=tr.steps, scalers=h["scalers"],
                         clip_fraction=h["clip_fraction"], provenance=h["provenance"], dtype=tr.dtype,
                         attn_out=has_attn) as w:
            for t in range(tr.steps):
                w.append_step(tr.q[t], tr.k[t], tr.v[t], int(tr.token_ids[t]),
                              tr.attn_out[t] if has_attn else None)
        for name, entry in w._header["arrays"].items():
            if entry["sha256"] != h["arrays"][name]["sha256"]:  # the same bytes, or a bug
                raise TraceError(f"{dst}: array '{name}' changed while upgrading")
    finally:
        tr.close()
    return Path(dst)


# --------------------------------------------------------------------------------------------
# Reading


class Trace:
    """An open trace. Arrays are read-only ``np.memmap`` views; nothing is loaded eagerly.

    Attributes: ``header`` (dict), ``model`` (dict: name, layers, heads, kv_heads, d_head),
    ``steps``, ``dtype``, ``q`` [steps, layers, heads, d], ``k``/``v`` [steps, layers,
    kv_heads, d], ``token_ids`` [steps] int32, ``attn_out`` (like q, or None), ``scalers``
    (dict of float64 arrays), ``clip_fraction`` (dict of float64 arrays, or None),
    ``provenance`` (dict), ``path``.
    """

    def __init__(self, path, header: dict, arrays: dict, scalers: dict, clip_fraction):
        self.path = Path(path)
        self.header = header
        self.model = dict(header["model"])
        self.steps = header["steps"]
        self.dtype = header["dtype"]
        self.provenance = dict(header["provenance"])
        self.scalers = scalers
        self.clip_fraction = clip_fraction
        self._arrays = arrays
        self.q, self.k, self.v = arrays["q"], arrays["k"], arrays["v"]
        self.token_ids = arrays["token_ids"]
        self.attn_out = arrays.get("attn_out")

    def step(self, t: int):
        """(q_t, k_t, v_t) of decode step t as float32 copies."""
        if not 0 <= t < self.steps:
            raise IndexError(f"{self.path}: step {t} out of range [0, {self.steps})")
        return tuple(np.array(a[t], dtype=np.float32) for a in (self.q, self.k, self.v))

    def close(self):
        # Dropping the references unmaps the files once no user views remain.
        self._arrays = {}
        self.q = self.k = self.v = self.token_ids = self.attn_out = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        m = self.model
        return (f"Trace({str(self.path)!r}, model={m['name']!r} {m['layers']}x{m['heads']}"
                f"(kv {m['kv_heads']})x{m['d_head']}, steps={self.steps}, dtype={self.dtype})")


def _regular_file_size(path: Path, where: str) -> int:
    """Size of a regular file; anything else (directory, FIFO, device) would fail or block."""
    import stat
    try:
        st = path.stat()
    except FileNotFoundError:
        raise TraceError(f"{where}: no such file") from None
    except OSError as exc:
        raise TraceError(f"{where}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise TraceError(f"{where}: not a regular file (a trace is a .gctrace file)")
    return st.st_size


def header_checksum(raw: bytes) -> str:
    """sha256 (hex) of the header bytes with the 64 hex digits of header_sha256 set to "0"."""
    at = raw.find(HEADER_SHA_KEY)
    if at < 0 or raw.find(HEADER_SHA_KEY, at + 1) >= 0:
        raise TraceError("the header must hold exactly one 'header_sha256' field")
    start = at + len(HEADER_SHA_KEY)
    return hashlib.sha256(raw[:start] + b"0" * 64 + raw[start + 64:]).hexdigest()


def _read_header(path: Path, where: str, file_size: int) -> tuple[dict, int]:
    """The header (format and version checked; v2: checksum verified) and its length."""
    with open(path, "rb") as f:
        prefix = f.read(_PREFIX)
        if len(prefix) < len(MAGIC) or prefix[:len(MAGIC)] != MAGIC:
            # never quote the bytes: the file may be anything (and anyone's)
            raise TraceError(f"{where}: not a gcsim trace (its first bytes are not {MAGIC!r})")
        if len(prefix) < _PREFIX:
            raise TraceError(f"{where}: truncated before the header length field")
        header_len = int(np.frombuffer(prefix[len(MAGIC):], dtype="<u8")[0])
        if _PREFIX + header_len > file_size:
            raise TraceError(f"{where}: header truncated: header length says {header_len} bytes "
                             f"but the file has only {file_size - _PREFIX} after the prefix")
        if header_len > MAX_HEADER_BYTES:
            raise TraceError(f"{where}: header length {header_len} bytes is more than a trace header "
                             f"can be ({MAX_HEADER_BYTES} bytes)")
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TraceError(f"{where}: header is not valid JSON (at byte {e.pos if isinstance(e, json.JSONDecodeError) else e.start})") from None
    except RecursionError:
        raise TraceError(f"{where}: header is not a trace header (nested too deeply)") from None
    if not isinstance(header, dict):
        raise TraceError(f"{where}: header is not valid JSON object (got {type(header).__name__})")
    # format and version first: a newer version may legitimately have other fields.
    for key in ("format", "version"):
        if key not in header:
            raise TraceError(f"{where}: missing required field '{key}'")
    if header["format"] != FORMAT_NAME:
        raise TraceError(f"{where}: not a gcsim trace (field 'format' is not {FORMAT_NAME!r})")
    version = header["version"]
    if type(version) is not int or version < 1:
        raise TraceError(f"{where}: field 'version' must be a positive integer, got {type(version).__name__} "
                         f"{str(version)[:20]}")
    if version > VERSION:
        raise TraceError(f"{where}: trace format version {version} is newer than this gcsim "
                         f"supports ({VERSION}); upgrade gcsim")
    if version >= 2:
        stored = header.get("header_sha256")
        if not isinstance(stored, str):
            raise TraceError(f"{where}: missing required field 'header_sha256'")
        if header_checksum(raw) != stored:
            raise TraceError(f"{where}: header checksum mismatch: the header (scalers, shapes, offsets or "
                             "provenance) was changed or is corrupt")
    else:
        warnings.warn(f"{where}: trace format version 1 has no header checksum, so its header is not "
                      f"verified; `gcsim trace upgrade {where} -o NEW` rewrites it as version {VERSION}",
                      TraceFormatWarning, stacklevel=3)
    for key in REQUIRED_FIELDS:
        if key not in header:
            raise TraceError(f"{where}: missing required field '{key}'")
    return header, header_len


def open_trace(path, verify: bool = True) -> Trace:
    """Open and validate a trace; arrays are memory-mapped read-only.

    verify=True also checks each array's sha256 and scans for NaN/Inf, chunk by chunk (memory
    stays bounded). Raises TraceError naming the file and the problem.
    """
    path = Path(path)
    where = str(path)
    file_size = _regular_file_size(path, where)
    header, header_len = _read_header(path, where, file_size)
    model = _check_model(header["model"], where)
    steps, dtype = header["steps"], header["dtype"]
    if type(steps) is not int or not 1 <= steps <= MAX_STEPS:
        raise TraceError(f"{where}: field 'steps' must be an integer in [1, {MAX_STEPS}], got "
                         f"{type(steps).__name__} {str(steps)[:20]}")
    if not isinstance(dtype, str) or dtype not in FLOAT_DTYPES:
        raise TraceError(f"{where}: field 'dtype' must be one of {FLOAT_DTYPES}")
    if not isinstance(header["provenance"], dict):
        raise TraceError(f"{where}: field 'provenance' must be an object")
    for key in PROVENANCE_KEYS:
        if key not in header["provenance"]:
            raise TraceError(f"{where}: missing required field 'provenance.{key}'")
    scalers, clip = _check_scalers(header["scalers"], header["clip_fraction"], model, where)

    entries = header["arrays"]
    if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
        raise TraceError(f"{where}: field 'arrays' must map array names to objects")
    specs = array_specs(model, steps, dtype, "attn_out" in entries)
    unknown = sorted(set(entries) - set(specs))
    if unknown:
        raise TraceError(f"{where}: unknown arrays {unknown[:3]} in the header")
    arrays = {}
    end = _PREFIX + header_len  # data must follow the header, in file order, without overlap
    gaps = []
    for name, (dt, shape) in specs.items():
        if name not in entries:
            raise TraceError(f"{where}: array '{name}' is missing from the header")
        entry = entries[name]
        for key in ARRAY_KEYS:
            if key not in entry:
                raise TraceError(f"{where}: missing required field 'arrays.{name}.{key}'")
        if entry["dtype"] != dt:
            raise TraceError(f"{where}: array '{name}' has dtype {str(entry['dtype'])[:20]}, "
                             f"expected {dt}")
        if not isinstance(entry["shape"], list) or any(type(n) is not int for n in entry["shape"]):
            raise TraceError(f"{where}: field 'arrays.{name}.shape' must be a list of integers")
        if tuple(entry["shape"]) != shape:
            raise TraceError(f"{where}: array '{name}' has shape {tuple(entry['shape'])}, "
                             f"expected {shape} from model and steps")
        nbytes = math.prod(shape) * np.dtype(dt).itemsize
        offset = entry["offset"]
        if type(entry["nbytes"]) is not int or entry["nbytes"] != nbytes:
            raise TraceError(f"{where}: array '{name}' declares {str(entry['nbytes'])[:20]} bytes, "
                             f"expected {nbytes} for shape {shape} {dt}")
        if type(offset) is not int or offset < end or offset % ALIGN:
            raise TraceError(f"{where}: array '{name}' has invalid offset {str(offset)[:20]} "
                             f"(must be a multiple of {ALIGN} after the header and the previous array)")
        if not isinstance(entry["sha256"], str) or len(entry["sha256"]) != 64:
            raise TraceError(f"{where}: field 'arrays.{name}.sha256' must be 64 hex digits")
        if offset + nbytes > file_size:
            raise TraceError(f"{where}: array '{name}' is truncated: expected {nbytes} bytes at "
                             f"offset {offset} (file of at least {offset + nbytes} bytes), "
                             f"actual file size {file_size} bytes")
        gaps.append((end, offset))
        end = offset + nbytes
        arrays[name] = np.memmap(path, dtype=np.dtype(dt).newbyteorder("<"), mode="r",
                                 offset=offset, shape=shape)
    gaps.append((end, _align(end)))
    if file_size != _align(end):
        raise TraceError(f"{where}: {file_size - _align(end)} bytes after the last array "
                         f"(file of {file_size} bytes, expected {_align(end)})")
    _check_padding(path, where, gaps)
    if verify:
        for name, arr in arrays.items():
            _verify_array(path, where, name, arr, entries[name])
    return Trace(path, header, arrays, scalers, clip)


def _check_padding(path: Path, where: str, gaps: list) -> None:
    """The bytes between header and arrays, and after the last array, must be zero."""
    with open(path, "rb") as f:
        for lo, hi in gaps:
            if hi - lo > ALIGN:  # a writer pads less than one alignment unit
                raise TraceError(f"{where}: {hi - lo} bytes of padding at offset {lo}; expected fewer than {ALIGN}")
            f.seek(lo)
            if f.read(hi - lo).strip(b"\0"):
                raise TraceError(f"{where}: the padding at offsets {lo}..{hi} is not zero; the file is corrupt")


def iter_chunks(arr: np.ndarray, chunk_bytes: int | None = None):
    """Yield (t0, arr[t0:t1]) slices along the step axis of about ``chunk_bytes`` each."""
    chunk_bytes = _CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    per_step = max(1, arr[:1].nbytes)
    n = max(1, chunk_bytes // per_step)
    for t0 in range(0, arr.shape[0], n):
        yield t0, arr[t0:t0 + n]


def _verify_array(path: Path, where: str, name: str, arr: np.memmap, entry: dict):
    # Checksum first: a mismatch means corruption, which is what any NaN would then be.
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(entry["offset"])
        left = entry["nbytes"]
        while left:
            block = f.read(min(left, _CHUNK_BYTES))
            if not block:  # file shrank since open: report as corrupt below
                break
            h.update(block)
            left -= len(block)
    if h.hexdigest() != entry["sha256"]:
        raise TraceError(f"{where}: checksum mismatch for array '{name}' (sha256 "
                         f"{h.hexdigest()[:16]}…, header says {str(entry['sha256'])[:16]}…); "
                         "the file is corrupt")
    if arr.dtype.kind != "f":  # token ids: int32 ids are never negative
        for t0, chunk in iter_chunks(arr):
            if (chunk < 0).any():
                t = t0 + int(np.argmax(np.asarray(chunk) < 0))
                raise TraceError(f"{where}: array '{name}' holds a negative token id at step {t}")
        return
    for t0, chunk in iter_chunks(arr):
        bad = _first_bad(chunk, t0)
        if bad is not None:
            raise TraceError(_bad_message(where, name, bad))
        release_pages(arr)  # the scan touched every page: keep RSS flat (gcsim/streamio.py)
