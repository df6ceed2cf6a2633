"""The one way gcsim opens a file it reads: a regular file, its size capped before reading.

A path given by a user, or found in a folder gcsim wrote earlier, may name anything: a FIFO
(opening it for reading would wait for a writer forever), /dev/zero (reading never ends),
a directory, or a file far larger than what gcsim expects there. `open_regular` opens
without blocking, checks the file type and size on the open descriptor (no race between the
check and the read) and reads at most `limit` bytes; every failure is one line naming the
file and what was expected, raised as the caller's GcsimError subclass.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat

from .errors import GcsimError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def kind_of(mode: int) -> str:
    """'a directory', 'a FIFO (named pipe)', ... for a file mode that is not a regular file."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _size_text(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


def open_regular(path, what: str, limit: int | None, error: type[GcsimError] = GcsimError):
    """A binary file object for `path`, once it is known to be a regular file of at most
    `limit` bytes (None: any size, for files read in chunks). `what` names the file in
    messages ("trace", "weights file", ...)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: the {what} is not a regular file: it is {kind_of(st.st_mode)}")
        if limit is not None and st.st_size > limit:
            raise error(f"{path}: the {what} is {_size_text(st.st_size)}, more than the {_size_text(limit)} "
                        f"gcsim reads as a {what}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path, what: str, limit: int, error: type[GcsimError] = GcsimError) -> bytes:
    """The whole file, at most `limit` bytes (a file that grew past it while read is refused)."""
    with open_regular(path, what, limit, error) as f:
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if len(data) > limit:
        raise error(f"{path}: the {what} is more than the {_size_text(limit)} gcsim reads as a {what}")
    return data


def read_text(path, what: str, limit: int, error: type[GcsimError] = GcsimError) -> str:
    """The file as UTF-8 text (at most `limit` bytes)."""
    data = read_bytes(path, what, limit, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: the {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json(path, what: str, limit: int, error: type[GcsimError] = GcsimError):
    """The file parsed as JSON (at most `limit` bytes); the message never quotes its content."""
    text = read_text(path, what, limit, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: the {what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise error(f"{path}: the {what} is not valid JSON (nested too deeply)") from None


def sha256_of(path, what: str = "file", error: type[GcsimError] = GcsimError) -> tuple[int, str]:
    """(size in bytes, hex sha256) of a regular file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    size = 0
    with open_regular(path, what, None, error) as f:
        while block := f.read(MIB):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()
