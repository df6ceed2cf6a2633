"""Per-step records kept out of memory (issue 13, flat memory): on disk for long runs
(gcsim.streamio.records_array, pages released every streamio.RELEASE_STEPS steps, read back in
chunks), critical paths stored in batches, served intervals checked as they come. They must
give exactly what in-memory records give, and a full disk must fail cleanly."""
import errno
import json
import os

import numpy as np
import pytest

from gcsim import load_hardware, streamio
from gcsim.cli import main as cli
from gcsim.profiling import write_profile
from gcsim.report import build_report, write_per_step_csv
from gcsim.sim.engine import ArrayTrace, Simulator
from gcsim.sim.kernel.path import CriticalPath
from gcsim.sim.kernel.resource import ServedLog, first_violation
from gcsim.traces import write_synthetic


def on_disk(monkeypatch, rows=5, release=7):
    """Every record array on disk, read back 5 rows at a time, released every 7 steps."""
    monkeypatch.setattr(streamio, "SCRATCH_MIN_BYTES", 0)
    monkeypatch.setattr(streamio, "CHUNK_ROWS", rows)
    monkeypatch.setattr(streamio, "RELEASE_STEPS", release)


def test_scratch_array_keeps_its_values_across_page_releases(monkeypatch):
    a = streamio.scratch_array((50_000, 3), np.int64)
    assert isinstance(a, np.memmap) and not a.any()
    a[7, 1], a[49_999, 2] = 123_456_789_012, -5
    assert streamio.release_pages(a)
    assert a[7, 1] == 123_456_789_012 and a[49_999, 2] == -5 and int(a.sum()) == 123_456_789_007
    chunks = list(streamio.in_chunks(a, rows=20_000))
    assert [t0 for t0, _ in chunks] == [0, 20_000, 40_000] and sum(len(c) for _, c in chunks) == 50_000
    assert not isinstance(chunks[0][1], np.memmap)     # copies: the map's pages go again
    monkeypatch.setattr(streamio, "SCRATCH_MIN_BYTES", 1 << 30)
    assert streamio._mmap_of(streamio.records_array((10, 2))) is None      # small: in memory
    monkeypatch.setattr(streamio, "SCRATCH_MIN_BYTES", 0)
    b = streamio.records_array((10, 2))
    assert type(b) is np.ndarray and streamio._mmap_of(b) is not None   # a plain view of a map
    b[3] = 4
    assert streamio.release_pages(b) and b.sum() == 8


def test_critical_path_rows_on_disk_equal_the_dicts(monkeypatch):
    """40 categories (the 16 columns allocated are doubled twice), two sequences, pages released
    at odd moments: every step's row is its dict, the columns in order of first appearance."""
    on_disk(monkeypatch)
    rng = np.random.default_rng(3)
    T, n_seq = 30, 2
    cp = CriticalPath(n_seq, T)
    paths = [[{} for _ in range(T)] for _ in range(n_seq)]
    order = []
    for t in range(T):
        for seq in range(n_seq):
            names = rng.choice(40, size=rng.integers(0, 6), replace=False)
            path = {f"c{int(c)}": int(rng.integers(1, 10**12)) for c in names}
            paths[seq][t] = path
            order += [c for c in path if c not in order]
            cp.record(seq, t, path)
        if t % 4 == 3:
            cp.release()
    assert list(cp.categories) == order and len(order) > 32
    for seq in range(n_seq):
        want = np.array([[paths[seq][t].get(c, 0) for c in order] for t in range(T)], np.int64)
        np.testing.assert_array_equal(cp.per_step[seq], want)
        np.testing.assert_array_equal(cp.step_totals(seq), [sum(p.values()) for p in paths[seq]])
    sums = {c: sum(p.get(c, 0) for rows in paths for p in rows[:20]) for c in order}
    assert cp.mean_breakdown(20) == {c: v / (20 * n_seq) for c, v in sums.items() if v}


def test_served_log_finds_the_first_overlap_of_the_sorted_intervals():
    rng = np.random.default_rng(0)
    for trial in range(200):
        t, served, log = 0, [], ServedLog()
        for _ in range(rng.integers(1, 30)):   # in time order, as a resource serves; now and then an overlap
            t += int(rng.integers(0, 4)) - (3 if rng.random() < 0.1 else 0)
            start = max(t, served[-1][0] if served else 0)
            iv = (start, start + int(rng.integers(0, 5)))
            if served and iv < served[-1]:
                continue
            served.append(iv)
            log.append(iv)
            t = iv[1]
        assert len(log) == len(served)
        want = first_violation(served)   # every interval, sorted: the check before ServedLog
        assert log.violation == want, (trial, served)
    log = ServedLog()
    for iv in [(0, 10), (10, 20), (5, 8)]:   # served before an earlier claim: reported
        log.append(iv)
    assert log.violation == ((10, 20), (5, 8), "out of time order")


def _trace(hw, T, seed=1):
    s = hw.shape
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((T, s.layers, s.heads, s.d_head)).astype(np.float16)
    k, v = (rng.standard_normal((T, s.layers, s.kv_heads, s.d_head)).astype(np.float16) for _ in range(2))
    return ArrayTrace(q, k, v)


def _outputs(res, tmp):
    """Everything a run and a profile write from the records, and the records themselves."""
    tmp.mkdir()
    rep = build_report(res, values=False)
    write_per_step_csv(tmp / "per_step.csv", res)
    write_profile(tmp, res, rep)
    files = {p.name: p.read_bytes() for p in sorted(tmp.iterdir())}
    records = [np.asarray(a) for a in (*res.step_end_ps, *res.write_ps, *res.read_ps, *res.layer_start_ps,
                                       *res.layer_end_ps, *res.path.per_step)]
    return json.dumps(rep, sort_keys=True), files, records, res.ledger.step_action_pj, res.ledger.counts


@pytest.mark.parametrize("model", ["stall-multiseq", "stall-link", "stall-refresh"])
def test_records_on_disk_give_what_records_in_memory_give(model, tmp_path, monkeypatch):
    hw = load_hardware(model).derive(shape={"layers": 3})
    trace = _trace(hw, 45)
    mem = _outputs(Simulator(hw, trace, values=False).run(), tmp_path / "mem")
    on_disk(monkeypatch)
    sim = Simulator(hw, trace, values=False)
    assert all(streamio._mmap_of(a) is not None for a in (sim.record.step_end[0], sim.energy._step_counts,
                                                          sim.path.per_step[0]))   # on disk
    disk = _outputs(sim.run(), tmp_path / "disk")
    assert disk[0] == mem[0] and disk[1] == mem[1]   # report, per_step.csv, profile files: byte for byte
    assert len(disk[2]) == len(mem[2])
    for a, b in zip(disk[2], mem[2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(disk[3], mem[3])
    assert disk[4].keys() == mem[4].keys() and all(np.array_equal(disk[4][k], mem[4][k]) for k in mem[4])
    # and they are the run's: every step's path adds up to its latency, for every sequence
    n = hw.periphery.sequences
    for seq in range(n):
        step_end, path = disk[2][seq], disk[2][5 * n + seq]
        np.testing.assert_array_equal(path.sum(axis=1), np.diff(step_end, prepend=0))


def test_validate_with_records_on_disk_gives_the_same_report(monkeypatch):
    from gcsim.commands.validate import validate
    hw = load_hardware("paper-gpt2").derive(shape={"layers": 1, "window": 64})
    trace = _trace(hw, 90, seed=2)
    want = validate(hw, trace, stage_steps=4)
    on_disk(monkeypatch)
    got = validate(hw, trace, stage_steps=4)
    assert got["pass"] and got == want


def test_charge_energy_with_records_on_disk_gives_the_same_report(monkeypatch):
    """costs.array_read: charge books each read's integrated charge, per step on disk too."""
    hw = load_hardware("paper-gpt2").derive(shape={"layers": 1, "window": 64}, costs={"array_read": "charge"})
    trace = _trace(hw, 40, seed=4)
    want = Simulator(hw, trace)
    want_rep = build_report(want.run())
    on_disk(monkeypatch)
    got = Simulator(hw, trace)
    assert streamio._mmap_of(got.tiles[0].read_charge_ua_tmax) is not None
    got_rep = build_report(got.run())
    assert json.dumps(got_rep, sort_keys=True) == json.dumps(want_rep, sort_keys=True)
    np.testing.assert_array_equal(got.tiles[0].read_charge_ua_tmax, want.tiles[0].read_charge_ua_tmax)
    assert (got.tiles[0].read_charge_ua_tmax[1:] > 0).all()   # every step's reads integrated a charge


@pytest.fixture
def small_trace(tmp_path):
    path = tmp_path / "t.gctrace"
    write_synthetic(path, layers=1, steps=6, seed=0)
    return path


def _no_leftovers(d, keep):
    return sorted(p.name for p in d.iterdir()) == sorted(keep)


@pytest.mark.parametrize("command", ["run", "profile"])
def test_a_full_disk_for_the_records_is_one_line_exit_2_and_no_output(command, small_trace, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.setattr(streamio, "SCRATCH_MIN_BYTES", 0)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "o"
    rc = cli([command, str(small_trace), "-m", "paper-gpt2", "-s", "shape.layers=1", "--timing-only",
              "--no-progress", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "scratch space for per-step records" in err and "No space left on device" in err and "TMPDIR" in err
    assert _no_leftovers(tmp_path, ["t.gctrace"])   # no output directory, no temporary copy


def test_a_full_disk_while_writing_outputs_keeps_the_previous_output(small_trace, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    argv = ["run", str(small_trace), "-m", "paper-gpt2", "-s", "shape.layers=1", "--no-progress", "-o", str(out)]
    assert cli(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []
    honest = os.pwrite

    def fills(fd, data, offset):
        calls.append(offset)
        if len(calls) > 3:   # the disk fills up during the run
            raise OSError(errno.ENOSPC, "No space left on device")
        return honest(fd, data, offset)
    monkeypatch.setattr(os, "pwrite", fills)
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # the earlier output, untouched
    assert _no_leftovers(tmp_path, ["o", "t.gctrace"])
