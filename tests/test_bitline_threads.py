"""The bank read's thread team (gcsim/kernels/bitline_threads.py): every way a unit can be
computed (by the caller, by a helper from the job's addresses, taken back from a late
helper) gives the serial kernel's bytes, and a late helper's result never lands.

The protocol steps are driven one at a time from this thread, so each path is exercised
deterministically; the last test runs real helper threads."""
import numpy as np
import pytest

from gcsim import load_hardware
from gcsim.datapath import dac_kv, dac_query, layer_scalers
from gcsim.kernels import make_store

numba = pytest.importorskip("numba")
from gcsim.kernels import atomics, bitline, bitline_threads as bt  # noqa: E402


@numba.njit
def _cas(arr, i, expected, new):
    """atomics.compare_exchange, called from Python (as a helper or the caller would)."""
    return atomics.compare_exchange(arr, i, expected, new)


def _read_inputs(dtype, heads=6, kv_heads=2, window=128, seed=0):
    """A code store filled with DAC-written K/V and a read's inputs (GQA: 6 units)."""
    hw = load_hardware("paper-gpt2").derive(shape={"heads": heads, "kv_heads": kv_heads, "window": window})
    s = hw.shape
    rng = np.random.default_rng(seed)
    sc = layer_scalers(None, 0, s.heads, s.kv_heads)
    store = make_store(hw, dtype, kind="codes")
    for j in range(s.window):
        k = dac_kv(rng.normal(0, 0.25, (s.kv_heads, s.d_head)).astype(dtype), sc["a_k"], sc["b_k"], hw, "cubic")
        v = dac_kv(rng.normal(0, 0.25, (s.kv_heads, s.d_head)).astype(dtype), sc["a_v"], sc["b_v"], hw, "cubic")
        store.write(j, k, v)
    q = dac_query(rng.uniform(0, 1, (s.heads, s.d_head)).astype(dtype), sc, hw, "cubic")
    valid = np.arange(s.window) < s.window - 5
    decay = np.where(valid, rng.uniform(0.8, 1.0, s.window), 0.0).astype(dtype)
    return store, np.ascontiguousarray(q.reshape(s.kv_heads, s.group_size, s.d_head)), decay, valid


class _Job:
    """A job published on a private mailbox (no helper threads), with the serial read's result."""

    def __init__(self, dtype):
        store, self.q, decay, valid = _read_inputs(dtype)
        bitline.set_threads(1)
        self.serial = store.read(self.q, decay, valid)
        self.kc, self.vc, self.dtype = store.k_codes, store.v_codes, np.dtype(dtype)
        self.kcoef, self.validf = bitline._slot_weights(decay, valid, store._coeffs)
        self.coeffs, self.a = store._coeffs, store.array_size
        self.S, self.phi, self.A = (np.full_like(x, np.nan) for x in self.serial)
        self.mail, self.fmail = np.zeros(bt.MAIL_SLOTS, np.int64), np.zeros(8)
        self.state = np.zeros(bt.MAX_UNITS, np.int64)
        self.units = self.q.shape[0] * self.q.shape[1]
        self.gen = bt._publish(self.q, self.kc, self.vc, store.step, store.zero, self.kcoef, self.validf, self.coeffs,
                               store._s_sat, self.a, self.S, self.phi, self.A, self.mail, self.fmail, self.state)

    def common(self):
        return (self.q, self.kc, self.vc, self.fmail, self.kcoef, self.validf, self.coeffs, self.a,
                self.S, self.phi, self.A, self.mail, self.state, self.gen)

    def assert_serial(self):
        assert self.mail[bt.DONE] == self.units
        for got, want in zip((self.S, self.phi, self.A), self.serial):
            assert got.tobytes() == want.tobytes()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_helper_computes_every_unit_from_the_job_addresses(dtype):
    job = _Job(dtype)
    u = bt._claim(job.mail, job.gen)
    assert u == 0
    bt._join(job.mail, job.fmail, job.state, job.gen << 32 | u)   # the helper path: arrays from addresses
    assert bt._claim(job.mail, job.gen) == -1                      # it took every unit
    assert all(job.state[i] == job.gen << 2 | bt.COMMITTING for i in range(job.units))
    bt._finish(*job.common(), 0)                                   # nothing left for the caller
    job.assert_serial()


def test_the_caller_takes_back_a_late_helpers_unit_and_the_late_result_never_lands():
    job = _Job(np.float32)
    late = bt._claim(job.mail, job.gen)                 # a helper claims unit 0 ...
    assert _cas(job.state, late, job.gen << 2 | bt.OPEN, job.gen << 2 | bt.CLAIMED)  # ... and stalls
    fastest = bt._caller_units(*job.common())           # the caller computes units 1..5
    assert job.mail[bt.DONE] == job.units - 1 and fastest > 0
    bt._finish(*job.common(), 0)                         # and takes unit 0 back
    assert job.state[late] == job.gen << 2 | bt.TAKEN
    job.assert_serial()
    # the late helper finishes: its commit must fail, so it cannot write the outputs
    assert not _cas(job.state, late, job.gen << 2 | bt.CLAIMED, job.gen << 2 | bt.COMMITTING)
    # and a claim of the next job's units with this job's number gets nothing
    assert bt._claim(job.mail, job.gen) == -1


def test_a_claim_of_a_closed_or_finished_job_gets_nothing():
    job = _Job(np.float32)
    bt._caller_units(*job.common())
    job.assert_serial()
    assert bt._claim(job.mail, job.gen) == -1
    assert bt._claim(job.mail, job.gen + 1) == -1        # not yet published


def test_threads_give_the_serial_bytes_over_many_reads():
    """Real helper threads (their share varies from run to run): every read is the serial one."""
    store, q, decay, valid = _read_inputs(np.float32, heads=12, kv_heads=12, window=256, seed=3)
    before = bitline.get_threads()
    try:
        bitline.set_threads(1)
        want = [x.tobytes() for x in store.read(q, decay, valid)]
        for n in (2, 3):
            bitline.set_threads(n)
            for _ in range(40):
                assert [x.tobytes() for x in store.read(q, decay, valid)] == want
    finally:
        bitline.set_threads(before)


@pytest.mark.parametrize("environ, expected", [
    ({}, 1), ({"GCSIM_THREADS": "2"}, 2), ({"NUMBA_NUM_THREADS": "3"}, 3),
    ({"GCSIM_THREADS": "2", "NUMBA_NUM_THREADS": "3"}, 2), ({"GCSIM_THREADS": " "}, 1),
])
def test_threads_from_the_environment(environ, expected):
    assert bitline.threads_from_environment(environ) == expected


@pytest.mark.parametrize("value", ["abc", "0", "1.5", "-2"])
def test_a_bad_thread_count_is_a_one_line_error_before_the_run(value, monkeypatch, tmp_path, capsys):
    from gcsim.cli import main as cli

    monkeypatch.setenv("GCSIM_THREADS", value)
    assert cli(["run", "--steps", "2", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"environment variable GCSIM_THREADS: expected a whole number >= 1, found {value!r}" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match=">= 1"):
        bitline.set_threads(0)


def test_the_team_stands_down_when_helpers_do_not_help():
    policy = bt.StandDown(helpers=1)            # due share 1/2: pause under 1/4
    for _ in range(2 * bt.SHARE_READS - 1):     # helpers doing half the units: never
        policy.after_read(False, 6, 12)
    assert policy.paused_reads == 0
    # helpers doing nothing: the average from 1/2 falls by a factor (1 - 1/128) a read and is
    # under 1/4 after 89 reads (ln 2 / -ln(127/128) = 88.4); judged from 256 reads on
    policy = bt.StandDown(helpers=1)
    for _ in range(89):
        policy.after_read(False, 0, 12)
    assert policy.share < 0.25 and policy.paused_reads == 0
    for _ in range(89, 2 * bt.SHARE_READS - 1):
        policy.after_read(False, 0, 12)
    assert policy.paused_reads == 0
    policy.after_read(False, 0, 12)             # the 256th
    assert policy.paused_reads == bt.PAUSE_READS and policy.pauses == 1
    # before any helper has computed a unit, reads are not counted
    policy = bt.StandDown(helpers=1)
    for _ in range(1000):
        policy.after_read(False, 0, 12, helpers_live=False)
    assert policy.paused_reads == 0
    # take-backs: 3 reads in a row pause, 2 and a clean read do not
    policy = bt.StandDown(helpers=1)
    for took_back in (True, True, False, True, True):
        policy.after_read(took_back, 6, 12)
    assert policy.paused_reads == 0
    policy.after_read(True, 6, 12)
    assert policy.paused_reads == bt.PAUSE_READS
