"""Output directories that never destroy what gcsim did not write.

A command writes into a temporary directory beside OUT and, only if it succeeds, swaps it in.
OUT may be replaced only when it does not exist, is empty, or was written by gcsim: it holds
the marker file `.gcsim-output.json` (command, version, the files gcsim wrote) and nothing
that the marker does not list. Anything else is refused before the work starts; `--force`
then writes gcsim's files into OUT beside the user's, replacing only same-named files and
deleting nothing. Temporary directories carry the marker too, so those left by a killed
process (its PID no longer alive) are recognised and removed by the next run.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import sys
from pathlib import Path

from . import __version__
from .errors import UsageError

MARKER = ".gcsim-output.json"


class OutputDirError(UsageError):
    """OUT cannot become gcsim's output directory (user files in it, not writable, ...)."""


def _files(d: Path) -> list[str]:
    """Every file under `d`, as sorted paths relative to it (the marker excluded)."""
    out = []
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), d)
            if rel != MARKER:
                out.append(rel)
    return sorted(out)


def _marker(d: Path) -> dict | None:
    try:
        data = json.loads((d / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("written_by") == "gcsim" else None


def foreign_files(d: Path) -> list[str]:
    """Files under directory `d` that gcsim did not write (by its marker); [] if it may be replaced."""
    files = _files(d)
    if not files and not (d / MARKER).exists():
        return []                                   # an empty directory
    mark = _marker(d)
    listed = set(mark.get("files", [])) if mark else set()
    return [f for f in files if f not in listed] or ([] if mark else [MARKER])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(final: Path) -> None:
    """Remove temporary/old copies of `final` left by dead gcsim processes (marker checked)."""
    for prefix in (f".{final.name}.tmp-", f".{final.name}.old-"):
        for p in final.parent.glob(glob.escape(prefix) + "*"):
            pid = p.name[len(prefix):]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) \
                    and p.is_dir() and not p.is_symlink() and _marker(p) is not None:
                shutil.rmtree(p, ignore_errors=True)


def check_output_dir(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Refuse, before any work, an OUT that gcsim may not write; return its absolute path."""
    final = Path(os.path.abspath(path))
    if final.name in ("", ".", ".."):
        raise OutputDirError(f"{path}: not usable as an output directory")
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise OutputDirError(f"{path}: the output path exists and is not a directory")
    if final.is_dir() and not force:
        try:
            foreign = foreign_files(final)
        except OSError as exc:
            raise OutputDirError(f"{path}: cannot read the output directory ({exc.strerror})") from None
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise OutputDirError(f"{path}: the output directory holds files gcsim did not write ({shown}); "
                                 f"choose another -o, or pass --force to write beside them")
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


def _write_marker(d: Path, command: list[str] | None, state: str) -> None:
    data = {"written_by": "gcsim", "version": __version__, "state": state,
            "command": list(sys.argv if command is None else command), "files": _files(d)}
    (d / MARKER).write_text(json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def output_dir(path: str | os.PathLike, *, force: bool = False, command: list[str] | None = None):
    """Yield a temporary directory that becomes OUT only if the block succeeds.

    Enter it before long work: it checks OUT and creates the temporary directory up front, so
    an unusable OUT fails in seconds, not after the simulation.
    """
    final = check_output_dir(path, force=force)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(final)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        if tmp.exists():
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
    (relative names) before any of them is written, so a rerun recognises them as gcsim's."""
    final = check_output_dir(path, force=force)
    try:
        final.mkdir(parents=True, exist_ok=True)
        mark = _marker(final)
        listed = set(mark.get("files", [])) if mark else set()
        data = {"written_by": "gcsim", "version": __version__, "state": "in place",
                "command": list(sys.argv if command is None else command),
                "files": sorted(listed | set(files))}
        (final / MARKER).write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise OutputDirError(f"{path}: cannot write the output directory ({exc.strerror})") from None
    return final


def _swap(tmp: Path, final: Path, shown: str | os.PathLike, force: bool) -> None:
    if not final.exists():
        os.rename(tmp, final)
        return
    if final.is_dir() and not final.is_symlink() and not foreign_files(final):
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
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
    _merge_into(tmp, final)


def _merge_into(tmp: Path, final: Path) -> None:
    """--force on a directory with the user's files: add gcsim's files, replace same names only."""
    mark = _marker(final)
    ours = _files(tmp)
    for rel in ours:
        dest = final / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, dest)
    data = json.loads((tmp / MARKER).read_text())
    data["files"] = sorted(set(ours) | set(mark.get("files", []) if mark else []))
    (final / MARKER).write_text(json.dumps(data, indent=2) + "\n")
