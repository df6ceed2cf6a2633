"""File I/O whose memory does not grow with the trace length.

A memory-mapped file's pages stay resident in the process once touched (read or written),
so replaying a long trace through a map grew RSS by the trace's size. `release_pages` drops
the pages of a read-only map (touched again, they come back from the page cache), and
`NpyWriter` writes a .npy file row by row with pwrite (the page cache holds the data, not
the process). `scratch_array` is a zero-filled array on an unlinked temporary file, for
per-step records that would otherwise grow the process with the trace: written in place,
its pages dropped by `release_pages` every so often, read back `in_chunks`.
"""
from __future__ import annotations

import errno
import math
import mmap
import os
import tempfile

import numpy as np


def _mmap_of(arr):
    while arr is not None:
        mm = getattr(arr, "_mmap", None)
        if mm is not None:
            return mm
        arr = getattr(arr, "base", None)
    return None


def release_pages(arr) -> bool:
    """Drop the resident pages of a read-only memory-mapped array; False if it has none
    (not a map, or the platform has no madvise)."""
    mm = _mmap_of(arr)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    mm.madvise(mmap.MADV_DONTNEED)   # a shared file map: its dirty pages stay in the page cache
    return True


def scratch_array(shape, dtype=np.int64) -> np.ndarray:
    """A zero-filled array [shape] on an unlinked temporary file (in TMPDIR; gone when the
    array is, whatever happens to the process). Its space is reserved now, so a full disk
    fails here with a one-line OSError, not later as a SIGBUS on a page of the map."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype)
    with tempfile.TemporaryFile(prefix="gcsim-records-") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, nbytes)
        except OSError as exc:
            raise OSError(exc.errno or errno.ENOSPC,
                          f"cannot reserve {nbytes / 2**20:.1f} MiB of scratch space for per-step records in "
                          f"{tempfile.gettempdir()} ({exc.strerror}); set TMPDIR to a directory with room") from None
        return np.memmap(f, dtype, "r+", shape=tuple(shape))   # the map keeps the file open


SCRATCH_MIN_BYTES = 1 << 18   # smaller record arrays stay in memory (no file, no descriptor)


def records_array(shape, dtype=np.int64) -> np.ndarray:
    """A zero-filled array for per-step records: on a `scratch_array` from SCRATCH_MIN_BYTES
    on, a plain array below (a short run's records cost less than a file)."""
    dtype = np.dtype(dtype)
    if math.prod(shape) * dtype.itemsize < SCRATCH_MIN_BYTES:
        return np.zeros(shape, dtype)
    # a plain ndarray view of the map: indexing a np.memmap runs Python code per view taken
    # (memmap.__getitem__, __array_finalize__), several us per step; release_pages finds the map
    return scratch_array(shape, dtype).view(np.ndarray)


CHUNK_ROWS = 4096   # rows of per-step records read back at a time
RELEASE_STEPS = 1024   # the engine releases the per-step records' pages every so many steps


def in_chunks(arr, rows: int | None = None):
    """(t0, arr[t0:t1] as an in-memory copy) along the first axis, the map's pages dropped
    after each chunk: reading a long scratch_array back does not make it resident."""
    rows = rows or CHUNK_ROWS
    for t0 in range(0, len(arr), rows):
        chunk = np.array(arr[t0:t0 + rows])
        release_pages(arr)
        yield t0, chunk


def widened(arr, columns: int) -> np.ndarray:
    """A records_array [T, columns] holding `arr` [T, n] (n <= columns) in its first n columns
    and zeros after, copied chunk by chunk (a record that gained columns during a run)."""
    out = records_array((arr.shape[0], columns), arr.dtype)
    for t0, chunk in in_chunks(arr):
        out[t0:t0 + len(chunk), :arr.shape[1]] = chunk
    release_pages(out)
    return out


class NpyWriter:
    """A .npy array [A, B, ...] written one `writer[a, b] = row` at a time (any order; rows
    never written read back as zeros), without keeping the file's pages in the process."""

    def __init__(self, path, shape, dtype=np.float32, *, create=True):
        """create=False: write into an existing file of this shape and dtype (another process's
        rows, e.g. a worker's layer)."""
        self.path, self.shape, self.dtype = os.fspath(path), tuple(shape), np.dtype(dtype)
        if create:
            with open(self.path, "wb") as f:
                np.lib.format.write_array_header_1_0(
                    f, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape})
                self.offset = f.tell()
                f.truncate(self.offset + int(np.prod(self.shape)) * self.dtype.itemsize)
        else:
            with open(self.path, "rb") as f:
                np.lib.format.read_magic(f)
                found = np.lib.format.read_array_header_1_0(f)
                self.offset = f.tell()
            if found != (self.shape, False, self.dtype):
                raise ValueError(f"{self.path}: holds {found}, not an array {self.shape} of {self.dtype}")
        self.row_bytes = int(np.prod(self.shape[2:])) * self.dtype.itemsize
        self.fd = os.open(self.path, os.O_WRONLY)

    def __setitem__(self, key, value):
        a, b = key
        if not (0 <= a < self.shape[0] and 0 <= b < self.shape[1]):
            raise IndexError(f"row {key} outside an array of shape {self.shape}")
        data = np.ascontiguousarray(value, self.dtype)
        if data.nbytes != self.row_bytes:
            raise ValueError(f"row of {data.shape} for an array of shape {self.shape}")
        os.pwrite(self.fd, data.tobytes(), self.offset + (a * self.shape[1] + b) * self.row_bytes)

    def flush(self) -> None:
        if self.fd is not None:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
