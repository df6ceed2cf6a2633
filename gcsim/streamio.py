"""File I/O whose memory does not grow with the trace length.

A memory-mapped file's pages stay resident in the process once touched (read or written),
so replaying a long trace through a map grew RSS by the trace's size. `release_pages` drops
the pages of a read-only map (touched again, they come back from the page cache), and
`NpyWriter` writes a .npy file row by row with pwrite (the page cache holds the data, not
the process).
"""
from __future__ import annotations

import mmap
import os

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
    mm.madvise(mmap.MADV_DONTNEED)
    return True


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
