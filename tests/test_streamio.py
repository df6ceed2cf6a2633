"""Flat memory: outputs written row by row, trace pages released after reading."""
import numpy as np

from gcsim.streamio import NpyWriter, release_pages


def test_npy_writer_rows_in_any_order_read_back_with_numpy(tmp_path):
    path = tmp_path / "o.npy"
    rows = np.arange(4 * 3 * 2 * 5, dtype=np.float32).reshape(4, 3, 2, 5)
    with NpyWriter(path, rows.shape) as w:
        for a, b in [(3, 2), (0, 0), (1, 2), (2, 1)]:
            w[a, b] = rows[a, b]
    back = np.load(path)
    assert back.shape == rows.shape and back.dtype == np.float32
    want = np.zeros_like(rows)
    for a, b in [(3, 2), (0, 0), (1, 2), (2, 1)]:
        want[a, b] = rows[a, b]
    np.testing.assert_array_equal(back, want)  # rows never written are zeros


def test_release_pages_keeps_the_values(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(100_000, dtype=np.float32))
    arr = np.load(path, mmap_mode="r")
    total = float(arr.sum(dtype=np.float64))
    assert release_pages(arr[10:20]) is True  # a view finds its map
    assert float(arr.sum(dtype=np.float64)) == total == 99_999 * 100_000 / 2
    assert release_pages(np.zeros(3)) is False
