"""Exit codes of `gcsim` (gcsim/errors.py), the validate verdicts, signals and closed pipes."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from inputs import random_trace

from gcsim import GcsimError, NumericsError, ReferenceModelError, UsageError, load_hardware
from gcsim.cli import main as cli
from gcsim.commands import validate as validate_cmd
from gcsim.errors import (EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_MISMATCH, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM,
                          HardwareError, SimError, TraceError)
from gcsim.reference import layer_attention
from gcsim.sim import Simulator

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "import sys; from gcsim.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def small():
    # 2 layers x 4 heads, d 8, window 16 in 2 sub-tiles of 8
    return load_hardware().derive(shape={"layers": 2, "heads": 4, "kv_heads": 4, "d_head": 8, "window": 16,
                                         "array_size": 8})


def test_exit_codes_are_the_documented_ones(capsys):
    assert (EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_SIGINT, EXIT_SIGTERM) == (0, 1, 2, 3, 130, 143)
    with pytest.raises(SystemExit):
        cli(["--help"])
    text = capsys.readouterr().out
    for line in ("0    success", "1    gcsim validate", "2    bad input", "3    internal error",
                 "4    a sweep finished with some points failed", "130  interrupted", "143 terminated"):
        assert line in text
    doc = (ROOT / "docs" / "commands.md").read_text()     # the README links there
    assert "exit status" in doc.lower() and "143" in doc and "internal error" in doc
    assert "docs/commands.md" in (ROOT / "README.md").read_text()


def test_error_hierarchy_keeps_valueerror_and_builtins():
    for cls in (HardwareError, TraceError, ReferenceModelError, SimError, NumericsError, UsageError):
        assert issubclass(cls, GcsimError) and issubclass(cls, ValueError)
    import builtins

    import gcsim.reference
    assert not hasattr(gcsim.reference, "ReferenceError")  # no longer shadows the builtin
    assert builtins.ReferenceError is ReferenceError


# --- validate verdicts -----------------------------------------------------------------------

def test_unquantized_outputs_pass_within_the_stated_tolerance(capsys):
    # out_levels null: the sub-tile outputs are floats; the simulator and the reference sum in
    # different orders, so they differ at rounding level (1e-16) and must still PASS.
    assert cli(["validate", "--steps", "3", "--stage-steps", "1", "--set", "numerics.out_levels=null"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "PASS (0 of 829440 codes differ; codes compared 1e-09 x max(1, scale)" in out


@pytest.mark.parametrize("out_levels", [32, None])
def test_a_real_difference_fails(small, monkeypatch, out_levels):
    hw = small.derive(numerics={"out_levels": out_levels})
    trace = random_trace(hw, 6, seed=3)
    assert validate_cmd.validate(hw, trace, stage_steps=2)["pass"]
    record = validate_cmd.StageRecorder.__call__

    def shifted(self, seq, step, layer, ages_ps, S, phi, codes, out):  # one code off by 1e-6 / one step
        codes = codes.copy()
        codes[0, 0, 0] += 1e-6 if out_levels is None else 2 / 31
        record(self, seq, step, layer, ages_ps, S, phi, codes, out)
    monkeypatch.setattr(validate_cmd.StageRecorder, "__call__", shifted)
    rep = validate_cmd.validate(hw, trace, stage_steps=2)
    assert not rep["pass"]
    assert all(r["exact"]["code_mismatches"] == 6 for r in rep["layers"])  # one per step


def test_comparing_nothing_is_refused(small, capsys):
    with pytest.raises(UsageError, match="--stage-steps must be >= 1"):
        validate_cmd.validate(small, random_trace(small, 3), stage_steps=0)
    assert cli(["validate", "--steps", "2", "--stage-steps", "0"]) == EXIT_BAD_INPUT
    assert "--stage-steps must be >= 1" in capsys.readouterr().err
    assert cli(["validate", "--steps", "0"]) == EXIT_BAD_INPUT


def test_a_failing_validate_keeps_exit_1_when_the_pipe_closes(tmp_path):
    # the simulator's first code is shifted (a real mismatch); stdout's reader is gone before
    # anything is printed, as with `gcsim validate | head -1` once head has exited
    script = tmp_path / "failing_validate.py"
    script.write_text(
        "import sys\n"
        "from gcsim.commands import validate as v\n"
        "record = v.StageRecorder.__call__\n"
        "def shifted(self, seq, step, layer, ages, S, phi, codes, out):\n"
        "    codes = codes.copy(); codes[0, 0, 0] += 2 / 31\n"
        "    record(self, seq, step, layer, ages, S, phi, codes, out)\n"
        "v.StageRecorder.__call__ = shifted\n"
        "from gcsim.cli import main\n"
        "sys.exit(main(['validate', '--steps', '2', '--stage-steps', '1']))\n")
    r, w = os.pipe()
    os.close(r)  # nobody reads
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's gcsim, not an installed one
    proc = subprocess.run([sys.executable, str(script)], stdout=w, stderr=subprocess.PIPE, env=env, timeout=300)
    os.close(w)
    assert proc.returncode == EXIT_MISMATCH, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr


# --- non-finite values stop the run -------------------------------------------------------

@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")   # inf x 0: the point of the test
def test_a_non_finite_output_stops_the_simulator_and_the_reference(small):
    trace = random_trace(small, 3, seed=1)
    from gcsim.datapath import default_scalers
    sc = default_scalers(2, 4, 4)
    sc["a_out"][1, 2] = np.inf  # an output scaler no arithmetic can hold
    trace.scalers = sc
    with pytest.raises(NumericsError, match=r"stage 'output \(adder tree and output scaler\)' produced (nan|-?inf) at "
                                            r"step 0, layer 1, head 2; .*a_out / b_out"):
        Simulator(small, trace).run()
    with pytest.raises(NumericsError, match=r"reference model \(cubic\).*step 0, layer 1, head 2"):
        layer_attention(trace.q[:, 1], trace.k[:, 1], trace.v[:, 1], small, scalers=sc, layer=1)


@pytest.mark.parametrize("setting, field", [
    ("numerics.s_sat=1e-308", "numerics.s_sat"),
    ("numerics.q_range=[-1e308,1e308]", "numerics.q_range")])
def test_overflowing_descriptions_never_give_nan_or_pass(setting, field, tmp_path, capsys):
    for cmd in (["validate"], ["run", "-o", str(tmp_path / "o")]):
        assert cli([*cmd, "--steps", "2", "--set", setting]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert field in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# --- internal errors, OS errors ---------------------------------------------------------------

def test_a_bug_exits_3_and_saves_the_traceback(monkeypatch, capsys):
    def broken(args):
        return np.zeros(2) + np.zeros(3)  # a ValueError raised inside numpy: a bug, not bad input
    monkeypatch.setattr("gcsim.commands.run.main", broken)
    assert cli(["run", "--steps", "1"]) == EXIT_INTERNAL
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "this is a bug in gcsim" in err and "Traceback" not in err
    path = Path(err.rsplit("saved in ", 1)[1])
    assert "operands could not be broadcast" in path.read_text() and "Traceback" in path.read_text()
    path.unlink()


def test_unreadable_paths_are_bad_input(tmp_path, capsys):
    assert cli(["run", str(tmp_path), "--steps", "1", "-o", str(tmp_path / "o")]) == EXIT_BAD_INPUT
    assert "not a regular file" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_as_trace_does_not_hang(tmp_path):
    fifo = tmp_path / "trace.gctrace"
    os.mkfifo(fifo)
    proc = subprocess.run([*CLI, "trace", "info", str(fifo)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == EXIT_BAD_INPUT and "not a regular file" in proc.stderr
    proc = subprocess.run([*CLI, "run", str(fifo), "-o", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == EXIT_BAD_INPUT and "not a regular file" in proc.stderr


# --- signals (run -o under SIGTERM/SIGHUP/SIGINT and concurrent writers: tests/test_outdir.py) ------

def test_sigterm_during_trace_synth_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "big.gctrace"
    proc = subprocess.Popen([*CLI, "trace", "synth", "--steps", "20000", "-o", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.iterdir()) and time.monotonic() < deadline:  # the temporary trace appears
        time.sleep(0.05)
    assert list(tmp_path.iterdir()), "the writer never started"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_SIGTERM, err
    assert "Traceback" not in err and "terminated by signal 15" in err
    assert list(tmp_path.iterdir()) == []


# --- the reference and simulator APIs refuse nonsense ------------------------------------------

def test_a_read_before_its_write_is_refused(small):
    trace = random_trace(small, 4, seed=2)
    q, k, v = trace.q[:, 0], trace.k[:, 0], trace.v[:, 0]
    wt = np.array([0, 1000, 2000, 3000])
    with pytest.raises(ReferenceModelError, match="step 2 is read at 1500 ps, before its write at 2000 ps"):
        layer_attention(q, k, v, small, write_times_ps=wt, read_times_ps=np.array([0, 1000, 1500, 3000]))
    with pytest.raises(ReferenceModelError, match="ages_ps: expected ages >= 0"):
        layer_attention(q, k, v, small, ages_ps=-np.ones((4, 16)))
    out = layer_attention(q, k, v, small, write_times_ps=wt, read_times_ps=wt + 10).out
    assert np.isfinite(out).all()


def test_integer_dtypes_are_refused(small):
    trace = random_trace(small, 2)
    with pytest.raises(SimError, match=r"ArrayTrace.q: expected a 4-d float array .* found 4-d int64"):
        type(trace)(trace.q.astype(np.int64), trace.k, trace.v)
    with pytest.raises(ReferenceModelError, match="dtype: expected float32 or float64, found int32"):
        layer_attention(trace.q[:, 0], trace.k[:, 0], trace.v[:, 0], small, dtype=np.int32)


def test_validate_json_is_checked_before_the_comparison(tmp_path, capsys):
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "data"}')
    assert cli(["validate", "--steps", "1", "--json", str(mine)]) == EXIT_BAD_INPUT
    assert "is not a validate report gcsim wrote" in capsys.readouterr().err and mine.read_text() == '{"my": "data"}'
    assert cli(["validate", "--steps", "1", "--json", str(tmp_path / "no" / "r.json")]) == EXIT_BAD_INPUT
    assert "does not exist or is not writable" in capsys.readouterr().err
    rep = tmp_path / "r.json"
    assert cli(["validate", "--steps", "1", "--stage-steps", "1", "--json", str(rep)]) == EXIT_OK
    assert cli(["validate", "--steps", "1", "--stage-steps", "1", "--json", str(rep)]) == EXIT_OK  # its own report


def test_a_trace_larger_than_the_file_system_allows(tmp_path, capsys):
    out = tmp_path / "big.gctrace"
    assert cli(["trace", "synth", "--steps", str(10**13), "-o", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{out}: cannot write a trace of " in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no temporary file left
