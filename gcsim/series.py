"""Whole-run statistics of a per-step series read chunk by chunk, equal bit for bit to numpy's
on the whole array, so that a report's figures do not need the series in memory.

Min and max do not depend on the order. A float sum does: numpy sums a contiguous 1-D array
pairwise (numpy/_core/src/umath/loops_utils.h.src, `pairwise_sum`: fewer than 8 values in a
simple loop, up to 128 with eight accumulators, more split in two at n/2 rounded down to a
multiple of 8, each half summed the same way), starting from the identity 0. `Sum` follows
that split down to subtrees of at most LEAF values and sums each with one np.add.reduce
call, which sums it by the same tree, then adds the subtrees' sums as numpy's recursion
does. The mean of an integer array sums as float64 through numpy's cast buffers
(np.getbufsize() values at a time, each pairwise, added in order); `Sum(cast=np.float64)`
follows that. tests/test_series.py checks both against np.sum and np.mean.
"""
from __future__ import annotations

import numpy as np

LEAF = 4096   # values summed by one np.add.reduce call; at least numpy's block (128)
_ADD = None   # a plan step: add the last two sums


def _pairwise_plan(start: int, n: int, leaf: int):
    """numpy's pairwise sum of values start..start+n-1 in post order: (start, n) for a subtree
    one np.add.reduce call sums, _ADD for 'add the last two'."""
    if n <= leaf:
        yield start, n
        return
    n2 = n // 2
    n2 -= n2 % 8
    yield from _pairwise_plan(start, n2, leaf)
    yield from _pairwise_plan(start + n2, n - n2, leaf)
    yield _ADD


def _buffered_plan(n: int, bufsize: int):
    """numpy's reduction through cast buffers: each buffer summed, added to the total in order."""
    for i, start in enumerate(range(0, n, bufsize)):
        yield start, min(bufsize, n - start)
        if i:
            yield _ADD


class Sum:
    """np.sum (np.add.reduce) of a series of n values given in order, in pieces of any length:
    `add(piece)` as the pieces come, `value` at the end. dtype: the series' (float or integer);
    cast=np.float64: the sum np.mean takes of integers (numpy's cast buffers). The pieces are
    kept only until their values are summed: at most LEAF + one piece in memory."""

    def __init__(self, n: int, dtype, *, cast=None):
        self.n, self.dtype = int(n), np.dtype(dtype)
        self.cast = None if cast is None else np.dtype(cast)
        if self.cast is not None:
            self._plan = _buffered_plan(self.n, np.getbufsize())
        elif self.dtype.kind == "f":
            self._plan = _pairwise_plan(0, self.n, LEAF)
        else:   # integers: any order gives the same sum; one call per leaf
            self._plan = _buffered_plan(self.n, LEAF)
        self._step = next(self._plan, _ADD)
        self._stack: list = []
        self._buf = np.zeros(0, self.dtype)
        self._buf_start = 0   # the index in the series of _buf[0]
        self.seen = 0

    def add(self, piece) -> None:
        piece = np.asarray(piece)
        if piece.dtype != self.dtype or piece.ndim != 1:
            raise TypeError(f"Sum: pieces must be 1-D {self.dtype}, got {piece.ndim}-D {piece.dtype}")
        if self.seen + len(piece) > self.n:
            raise ValueError(f"Sum: more than the {self.n} values announced")
        buf = np.concatenate([self._buf, piece]) if len(self._buf) else piece
        self.seen += len(piece)
        end = self._buf_start + len(buf)
        self._run(buf, end)
        start = self._step[0] if self._step is not _ADD else end   # the next leaf's first value
        self._buf, self._buf_start = buf[start - self._buf_start:].copy(), start

    def _run(self, buf, end) -> None:
        stack = self._stack
        while True:
            step = self._step
            if step is _ADD:
                if len(stack) < 2:
                    return   # the plan is done (one sum left)
                b = stack.pop()
                stack.append(stack.pop() + b)
            else:
                start, k = step
                if start + k > end:
                    return
                leaf = buf[start - self._buf_start:start - self._buf_start + k]
                stack.append(np.add.reduce(leaf if self.cast is None else leaf.astype(self.cast)))
            self._step = next(self._plan, _ADD)

    @property
    def value(self):
        """The sum, a numpy scalar of the dtype (of `cast` if given), as np.sum gives it."""
        if self.seen != self.n:
            raise ValueError(f"Sum: {self.seen} of {self.n} values given")
        if self.n == 0:
            return np.add.reduce(np.zeros(0, self.cast or self.dtype))
        (total,) = self._stack
        return (self.cast or self.dtype).type(0) + total   # numpy starts from the identity

    @property
    def mean(self):
        """np.mean of the series (its own expression: the sum divided by the count as np.intp)."""
        if self.dtype.kind != "f" and self.cast is None:
            raise TypeError("Sum: the mean of integers sums them as float64: Sum(n, dtype, cast=np.float64)")
        s = self.value
        return s.dtype.type(s / np.intp(self.n))


class Stats:
    """mean, min, max and last of a series of n values given in pieces (`add`), each equal to
    numpy's over the whole series."""

    def __init__(self, n: int, dtype):
        self.sum = Sum(n, dtype)
        self.min = self.max = self.last = None

    def add(self, piece) -> None:
        piece = np.asarray(piece)
        self.sum.add(piece)
        if len(piece):
            lo, hi = np.min(piece), np.max(piece)
            self.min = lo if self.min is None else np.minimum(self.min, lo)
            self.max = hi if self.max is None else np.maximum(self.max, hi)
            self.last = piece[-1]

    @property
    def mean(self):
        return self.sum.mean
