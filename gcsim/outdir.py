"""Output folders and files that never destroy what gcsim did not write.

A command writes into a temporary folder beside OUT and, only if it succeeds, swaps it in.
OUT may be replaced only when it does not exist, is empty, or was written by gcsim: it holds
the marker `.gcsim-output.json` listing every file gcsim wrote there with its size and
sha256, and nothing else (no other file, symlink, FIFO or empty subfolder). The marker is
checked against its schema and every listed file against its size and hash: an edited,
forged or copied marker, or a file changed since, makes OUT "not gcsim's", so it is
refused before the work starts. `--force` then writes gcsim's files into OUT beside the
user's, replacing only same-named files and deleting nothing; every name clash (a folder or
symlink where a file goes) is found before anything is moved.

Temporary folders carry a marker too, tied to the folder itself (device and inode), so
those left by a killed process (its PID no longer alive) are recognised and removed by the
next run. Single output files (`decode --json`, `validate --json`, traces) follow the same
rule with `check_output_file` / `write_json_output`: an existing file is replaced only if it
is one gcsim wrote (a JSON output carries a checksum of its content), written atomically.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Callable

from . import __version__
from .errors import UsageError
from .readback import HEX64, RecordError, integer, list_of, map_of, mapping, one_of, seal, text, unseal, validate
from .safefile import MIB, kind_of, read_json, sha256_of

MARKER = ".gcsim-output.json"
MARKER_FORMAT = 2
MAX_MARKER_BYTES = 16 * MIB
NAME_MAX = 255                 # bytes in one file name on Linux and macOS file systems


class OutputDirError(UsageError):
    """OUT cannot become gcsim's output directory (user files in it, not writable, ...)."""


def _relative_name(value, where):
    text()(value, where)
    parts = value.split("/")
    if value.startswith("/") or any(p in ("", ".", "..") for p in parts) or value == MARKER:
        raise RecordError(f"field '{where}': expected a relative file name inside the folder, found {value!r}")


_FILE_ENTRY = mapping({"size": integer(lo=0), "sha256": HEX64})
MARKER_SCHEMA = mapping(
    {"written_by": one_of("gcsim"), "format": one_of(MARKER_FORMAT), "version": text(max_len=100),
     "state": one_of("partial", "complete", "in place"), "command": list_of(text(), 10_000),
     "files": map_of(_FILE_ENTRY, key=_relative_name)},
    {"pending": list_of(_relative_name), "directory": mapping({"dev": integer(lo=0), "ino": integer(lo=0)})})


# --- reading a folder and its marker ----------------------------------------------------------

def _scan(d: Path) -> tuple[list[str], list[str]]:
    """(regular files, everything else gcsim would not have left) under `d`, as sorted paths
    relative to it: symlinks, FIFOs, sockets, devices and empty folders count as the
    second kind (folders are never followed through a symlink). The marker is excluded."""
    files, others = [], []

    def walk(folder: Path, rel: str):
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        if not entries and rel:
            others.append(rel + "/")
        for e in entries:
            name = f"{rel}/{e.name}" if rel else e.name
            if name == MARKER:
                continue
            if e.is_dir(follow_symlinks=False):
                walk(Path(e.path), name)
            elif e.is_file(follow_symlinks=False):
                files.append(name)
            else:
                others.append(name + (" (symlink)" if e.is_symlink() else ""))
    walk(d, "")
    return sorted(files), others


def read_marker(d: Path) -> tuple[dict | None, str | None]:
    """(the marker's content, None) if `d` holds a valid marker, else (None, why not);
    (None, None) when there is no marker."""
    path = d / MARKER
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{MARKER} cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return None, f"{MARKER} is {kind_of(st.st_mode) if not stat.S_ISLNK(st.st_mode) else 'a symlink'}"
    try:
        data = read_json(path, "output marker", MAX_MARKER_BYTES, RecordError)
        validate(data, MARKER_SCHEMA)
    except RecordError as exc:
        msg = str(exc)
        return None, f"{MARKER} is not one gcsim wrote ({msg.removeprefix(str(path) + ': ')})"
    return data, None


_HASHED: dict = {}     # (device, inode, size, mtime) -> sha256: a folder is checked before the work
                       # and again at the swap; a large output is read once per process


def _matches(d: Path, rel: str, entry: dict) -> bool:
    """Whether d/rel is still the regular file gcsim wrote (size, then sha256)."""
    path = d / rel
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry["size"]:
            return False
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in _HASHED:
            _HASHED[key] = sha256_of(path)[1]
        return _HASHED[key] == entry["sha256"]
    except (OSError, ValueError):
        return False


def examine(d: Path, *, pending_ok: bool = False) -> tuple[list[str], str | None]:
    """(entries of folder `d` that gcsim did not write, why the marker is not trusted or None).
    No foreign entries: `d` is empty or gcsim's and may be replaced. pending_ok: names a
    resumable command claimed but has not finished writing (claim_in_place) count as gcsim's."""
    files, others = _scan(d)
    mark, problem = read_marker(d)
    if mark is None:
        foreign = files + others
        return (foreign or ([MARKER] if problem or (d / MARKER).exists() else [])), problem
    listed, pending = mark["files"], set(mark.get("pending", [])) if pending_ok else set()
    foreign = [f for f in files if f not in pending and not (f in listed and _matches(d, f, listed[f]))]
    return foreign + others, None


def foreign_files(d: Path) -> list[str]:
    """Entries under folder `d` that gcsim did not write (by its marker); [] if it may be replaced."""
    return examine(d)[0]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


# --- temporary names ----------------------------------------------------------------------------

def _stem(final: Path) -> str:
    """The readable part of temporary names next to `final`: its name, or for a long name
    (near the file system's 255 bytes) a shorter prefix and a hash of the whole name."""
    name = final.name
    if len(name.encode()) <= NAME_MAX - 40:
        return name
    short = name.encode()[:150].decode("utf-8", "ignore")
    return f"{short}~{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def temp_path(final: Path, tag: str = "tmp", pid: int | None = None) -> Path:
    """`.NAME.tmp-PID` beside `final`: hidden, and short enough for any legal NAME."""
    return final.with_name(f".{_stem(final)}.{tag}-{os.getpid() if pid is None else pid}")


def _stale(final: Path, tag: str):
    """Temporary paths beside `final` with this tag whose process is dead."""
    prefix = f".{_stem(final)}.{tag}-"
    for p in final.parent.glob(glob.escape(prefix) + "*"):
        pid = p.name[len(prefix):]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            yield p


def _own_temporary(p: Path) -> bool:
    """A folder gcsim made as a temporary: a real folder whose marker names this very folder."""
    try:
        st = p.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    mark, _ = read_marker(p)
    return mark is not None and mark.get("directory") == {"dev": st.st_dev, "ino": st.st_ino}


def _clean_stale(final: Path) -> None:
    """Remove temporary/old copies of `final` left by dead gcsim processes (marker checked)."""
    for tag in ("tmp", "old"):
        for p in _stale(final, tag):
            if _own_temporary(p):
                shutil.rmtree(p, ignore_errors=True)


def clean_stale_files(final: Path, ours: Callable[[Path], bool], tag: str = "tmp") -> None:
    """Remove temporary files beside `final` left by dead gcsim writers that `ours` recognises."""
    for p in _stale(final, tag):
        try:
            if p.is_file() and not p.is_symlink() and ours(p):
                p.unlink()
        except OSError:
            pass


# --- output folders ---------------------------------------------------------------------------

def _refusal(path, foreign: list[str], problem: str | None) -> str:
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    why = f"; {problem}" if problem else ""
    return (f"{path}: the output directory holds files gcsim did not write ({shown}){why}; "
            f"choose another -o, or pass --force to write beside them")


def check_output_dir(path: str | os.PathLike, *, force: bool = False, pending_ok: bool = False) -> Path:
    """Refuse, before any work, an OUT that gcsim may not write; return its absolute path."""
    if not isinstance(path, (str, os.PathLike)):
        raise OutputDirError(f"output directory: expected a path, found {type(path).__name__}")
    final = Path(os.path.abspath(path))
    if final.name in ("", ".", ".."):
        raise OutputDirError(f"{path}: not usable as an output directory")
    if len(final.name.encode()) > NAME_MAX:
        raise OutputDirError(f"{path}: the folder name is longer than {NAME_MAX} bytes")
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise OutputDirError(f"{path}: the output path exists and is not a directory")
    if final.is_dir() and not force:
        try:
            foreign, problem = examine(final, pending_ok=pending_ok)
        except OSError as exc:
            raise OutputDirError(f"{path}: cannot read the output directory ({exc.strerror})") from None
        if foreign:
            raise OutputDirError(_refusal(path, foreign, problem))
    parent = final.parent
    if parent.exists() and not parent.is_dir():
        raise OutputDirError(f"{path}: {parent} is not a directory")
    return final


@contextlib.contextmanager
def _locked(directory: Path):
    """Serialise the final swap of concurrent gcsim runs writing into the same parent."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _hashed(d: Path, names) -> dict:
    out = {}
    for rel in names:
        size, sha = sha256_of(d / rel)
        out[rel] = {"size": size, "sha256": sha}
    return out


def _put_marker(d: Path, data: dict) -> None:
    """Write the marker atomically (a killed write leaves the previous one), tied to `d`."""
    st = d.stat()
    data = {**data, "directory": {"dev": st.st_dev, "ino": st.st_ino}}
    validate(data, MARKER_SCHEMA)                      # never write one we would not accept
    tmp = d / f"{MARKER}.tmp-{os.getpid()}"
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, d / MARKER)
    finally:
        tmp.unlink(missing_ok=True)


def _marker_data(command, state: str, files: dict, pending=()) -> dict:
    data = {"written_by": "gcsim", "format": MARKER_FORMAT, "version": __version__, "state": state,
            "command": [str(c) for c in (sys.argv if command is None else command)], "files": files}
    if pending:
        data["pending"] = sorted(pending)
    return data


def _write_marker(d: Path, command: list[str] | None, state: str) -> None:
    files, others = _scan(d)
    if others:                                         # gcsim writes regular files only
        raise OutputDirError(f"{d}: gcsim left something other than regular files here ({others[0]})")
    _put_marker(d, _marker_data(command, state, _hashed(d, files) if state == "complete" else {}))


@contextlib.contextmanager
def output_dir(path: str | os.PathLike, *, force: bool = False, command: list[str] | None = None):
    """Yield a temporary directory that becomes OUT only if the block succeeds.

    Enter it before long work: it checks OUT and creates the temporary directory up front, so
    an unusable OUT fails in seconds, not after the simulation.
    """
    final = check_output_dir(path, force=force)
    tmp = temp_path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(final)
        if tmp.exists() and _own_temporary(tmp):
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_marker(tmp, command, "partial")
    except OSError as exc:
        raise OutputDirError(f"{path}: cannot write the output directory ({exc.strerror})") from None
    try:
        yield tmp
        _write_marker(tmp, command, "complete")
        with _locked(final.parent):
            _swap(tmp, final, path, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def claim_in_place(path: str | os.PathLike, files: list[str], *, force: bool = False,
                   command: list[str] | None = None) -> Path:
    """OUT for a command that writes in place (a resumable run: its checkpoint must survive a
    kill, so no temporary directory is swapped in). The same rule as `output_dir`: OUT must
    be new, empty or gcsim's (else refused unless `force`); its marker then lists `files`
    (relative names) as pending before any of them is written, so a rerun recognises them as
    gcsim's; `seal_in_place` records their sizes and hashes once written. A pending file
    never makes the folder replaceable as a whole (its content is not yet tied to gcsim)."""
    final = check_output_dir(path, force=force, pending_ok=True)
    try:
        final.mkdir(parents=True, exist_ok=True)
        mark, _ = read_marker(final)
        listed = mark["files"] if mark else {}
        kept = {f: e for f, e in listed.items() if f not in files and _matches(final, f, e)}
        pending = set(mark.get("pending", []) if mark else []) | set(files)
        _put_marker(final, _marker_data(command, "in place", kept, pending - set(kept)))
    except OSError as exc:
        raise OutputDirError(f"{path}: cannot write the output directory ({exc.strerror})") from None
    return final


def seal_in_place(path: str | os.PathLike) -> None:
    """After an in-place command: record the size and hash of each pending file it wrote."""
    final = Path(path)
    mark, _ = read_marker(final)
    if mark is None or mark["state"] != "in place":
        return
    files = dict(mark["files"])
    pending = []
    for rel in mark.get("pending", []):
        p = final / rel
        if p.is_file() and not p.is_symlink():
            files.update(_hashed(final, [rel]))
        else:
            pending.append(rel)
    with contextlib.suppress(OSError):
        _put_marker(final, _marker_data(mark["command"], "in place", files, pending))


def _swap(tmp: Path, final: Path, shown: str | os.PathLike, force: bool) -> None:
    if not os.path.lexists(final):
        os.rename(tmp, final)
        return
    if final.is_dir() and not final.is_symlink() and not foreign_files(final):
        old = temp_path(final, "old")
        os.rename(final, old)
        if foreign_files(old):                      # a file appeared between the check and the move
            os.rename(old, final)
        else:
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
            return
    if not force:
        raise OutputDirError(f"{shown}: the output directory changed during the run and now holds files "
                             f"gcsim did not write; nothing was replaced (rerun with another -o)")
    _merge_into(tmp, final, shown)


def _clashes(final: Path, names) -> list[str]:
    """Names gcsim would write into `final` where something other than a regular file (or
    nothing) is in the way: a folder, or a symlink or file where a folder must be."""
    bad = []
    for rel in names:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            p = final.joinpath(*parts[:i])
            if os.path.lexists(p) and (p.is_symlink() or not p.is_dir()):
                bad.append(f"{'/'.join(parts[:i])} (not a folder)")
                break
        else:
            dest = final / rel
            if os.path.lexists(dest) and not dest.is_symlink() and dest.is_dir():
                bad.append(f"{rel} (a folder)")
    return bad


def _merge_into(tmp: Path, final: Path, shown) -> None:
    """--force on a directory with the user's files: add gcsim's files, replace same names only.
    Every clash is found before the first file moves, so a refusal changes nothing."""
    mark, _ = read_marker(final)
    ours = json.loads((tmp / MARKER).read_text())["files"]
    bad = _clashes(final, [*ours, MARKER])
    if bad:
        raise OutputDirError(f"{shown}: --force cannot write gcsim's files here, something else has their "
                             f"names: {', '.join(bad[:3])}{' and more' if len(bad) > 3 else ''}; nothing was changed")
    for rel in ours:
        dest = final / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, dest)
    kept = {f: e for f, e in (mark["files"] if mark else {}).items() if f not in ours and _matches(final, f, e)}
    _put_marker(final, _marker_data(json.loads((tmp / MARKER).read_text())["command"], "complete", {**kept, **ours}))


# --- single output files ------------------------------------------------------------------------

OUTPUT_KIND = "gcsim_output"        # the field naming which command wrote a JSON output
MAX_JSON_OUTPUT_BYTES = 256 * MIB


def is_json_output(path: Path, kind: str) -> bool:
    """Whether `path` is a JSON file gcsim wrote as `kind` and nobody changed since (its
    checksum matches its content)."""
    try:
        data = unseal(read_json(path, "JSON output", MAX_JSON_OUTPUT_BYTES, RecordError))
    except RecordError:
        return False
    return data.get(OUTPUT_KIND) == kind


def check_output_file(path: str | os.PathLike, *, ours: Callable[[Path], bool], what: str, option: str,
                      force: bool = False) -> Path:
    """Before the work: `path` must be a new file in a writable folder, or a file `ours`
    recognises as gcsim's (or any regular file with --force); never a folder."""
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise UsageError(f"{option} {path}: not a file name")
    if len(p.name.encode()) > NAME_MAX:
        raise UsageError(f"{option} {path}: the file name is longer than {NAME_MAX} bytes")
    if os.path.lexists(p):
        st = p.lstat()
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{option} {path}: is a directory")
        if not stat.S_ISREG(st.st_mode) and not (force and stat.S_ISLNK(st.st_mode)):
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else kind_of(st.st_mode)
            raise UsageError(f"{option} {path}: exists and is {kind}; choose another path")
        if not force and not ours(p):
            raise UsageError(f"{option} {path}: exists and is not {what} gcsim wrote (or was changed since); "
                             f"choose another path, or pass --force to replace it")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: the directory {parent} does not exist or is not writable")
    return p


def check_json_output(path, kind: str, option: str, force: bool = False, what: str | None = None) -> Path:
    return check_output_file(path, ours=lambda p: is_json_output(p, kind), what=what or f"a {kind} report",
                             option=option, force=force)


def write_json_output(path: str | os.PathLike, data: dict, kind: str) -> None:
    """Write `data` as JSON, marked as `kind` and sealed with its checksum, atomically
    (a temporary file beside it, renamed over it)."""
    path = Path(path)
    clean_stale_files(path, lambda p: is_json_output(p, kind))
    tmp = temp_path(path)
    try:
        tmp.write_text(json.dumps(seal({**data, OUTPUT_KIND: kind}), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
