"""gcsim.series: sums, means, min and max of a series given in pieces equal numpy's on the
whole array, bit for bit (==, not isclose): np.sum and np.mean are the oracle."""
import numpy as np
import pytest

from gcsim import series
from gcsim.series import Stats, Sum

LENGTHS = [0, 1, 7, 8, 9, 127, 128, 129, 1000, 4096, 4097, 8191, 8192, 8193, 16385, 100003]


def _values(n, dtype, seed):
    """Values of mixed signs over nine decades: any change of summation order shows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 6, n)
    return x.astype(dtype) if np.dtype(dtype).kind == "f" else rng.integers(-2**40, 2**40, n)


def _pieces(x, seed):
    """x cut at random places (pieces of 0 to ~3000 values), as chunks read from disk come."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, len(x) + 1, size=max(1, len(x) // 1500)))
    return np.split(x, cuts)


def _summed(x, **kw):
    s = Sum(len(x), x.dtype, **kw)
    for piece in _pieces(x, len(x)):
        s.add(piece)
    return s


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("n", LENGTHS)
def test_sum_and_mean_equal_numpys_bit_for_bit(n, dtype):
    x = _values(n, dtype, seed=n)
    s = _summed(x)
    want = np.sum(x)
    assert s.value == want and s.value.dtype == want.dtype
    if n:
        mean = (_summed(x, cast=np.float64) if x.dtype.kind == "i" else s).mean
        assert mean == np.mean(x) and mean.dtype == np.mean(x).dtype


@pytest.mark.parametrize("n", [8193, 20000, 100003])
def test_the_order_matters_so_the_test_can_fail(n):
    """A plain running sum over the same pieces differs from np.sum on these values: the
    exact equality above means numpy's order was followed."""
    x = _values(n, np.float32, seed=n)
    running = np.float32(0)
    for piece in _pieces(x, n):
        running = running + np.add.reduce(piece)
    assert running != np.sum(x)


@pytest.mark.parametrize("leaf", [128, 129, 1000, 4096])
def test_any_leaf_size_from_numpys_block_on(leaf, monkeypatch):
    monkeypatch.setattr(series, "LEAF", leaf)
    for n in (129, 1000, 100003):
        for offset in (0, 1, 3):    # slices that start off the allocation's alignment
            x = _values(n + offset, np.float64, seed=leaf + n)[offset:]
            assert _summed(x).value == np.sum(x)


@pytest.mark.parametrize("shape", [(100, 2), (4096, 2), (4097, 2), (20000, 2), (5003, 3), (100003, 1)])
def test_mean_of_integers_follows_numpys_cast_buffers(shape):
    """np.mean of int64 [T, L] sums the flattened values as float64 through 8192-value buffers;
    values near 2**62 make every float64 addition round, so another grouping shows."""
    rng = np.random.default_rng(shape[0])
    x = rng.integers(0, 2**62, shape)
    s = Sum(x.size, np.int64, cast=np.float64)
    for rows in np.array_split(x, max(1, shape[0] // 3000)):
        s.add(rows.reshape(-1))
    assert s.mean == x.mean() and s.mean.dtype == np.float64
    assert s.value == np.add.reduce(x.reshape(-1), dtype=np.float64)


@pytest.mark.parametrize("n, seed", [(8193, 0), (20000, 2)])
def test_mean_of_integers_grouped_otherwise_differs(n, seed):
    """The oracle can tell: pairwise over the whole float64 copy is not numpy's int mean here."""
    x = np.random.default_rng(seed).integers(0, 2**62, n)
    assert np.sum(x.astype(np.float64)) != np.add.reduce(x, dtype=np.float64)
    s = Sum(n, np.int64, cast=np.float64)
    s.add(x)
    assert s.value == np.add.reduce(x, dtype=np.float64)


def test_stats_mean_min_max_last():
    x = _values(20011, np.float64, seed=5)
    st = Stats(len(x), x.dtype)
    for piece in _pieces(x, 7):
        st.add(piece)
    assert (st.mean, st.min, st.max, st.last) == (np.mean(x), np.min(x), np.max(x), x[-1])
    assert st.min == -st.max or st.min < 0 < st.max


def test_pieces_must_fit_the_announced_series():
    s = Sum(3, np.float64)
    with pytest.raises(TypeError, match="1-D float64"):
        s.add(np.zeros(2, np.float32))
    s.add(np.ones(2))
    with pytest.raises(ValueError, match="2 of 3 values"):
        s.value
    with pytest.raises(ValueError, match="more than the 3"):
        s.add(np.ones(2))
