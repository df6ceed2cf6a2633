"""Every command takes --no-progress and --quiet; long loops show a bar on stderr."""
import pytest

from gcsim import progress
from gcsim.cli import build_parser, main as cli

# the least each command needs to parse; a command missing here fails the walk below
MINIMAL = {"run": [], "validate": [], "profile": [], "paper": [], "reference": [],
           "trace record": ["--prompt", "x", "--new", "1", "-o", "x.gctrace"],
           "trace synth": ["--steps", "1", "-o", "x.gctrace"], "trace info": ["x.gctrace"],
           "trace upgrade": ["x.gctrace", "-o", "y.gctrace"], "describe": ["smollm2"],
           "sweep": ["spec.yaml"], "decode": ["--prompt", "x"], "eval": [], "train": ["chip"], "system": [], "serve": [],
           "adapt": []}


def _leaf_commands(parser, prefix=""):
    """Every command a user can run, walking the parser's subcommands."""
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield from _leaf_commands(sub, f"{prefix}{name} ")
                else:
                    yield f"{prefix}{name}"


def test_the_walk_finds_every_command():
    found = set(_leaf_commands(build_parser()))
    assert found == set(MINIMAL), f"new or renamed commands: {found ^ set(MINIMAL)}"


@pytest.mark.parametrize("command", sorted(MINIMAL))
def test_every_command_accepts_the_same_feedback_options(command):
    argv = command.split() + MINIMAL[command]
    for flag in ("--no-progress", "--quiet", "-q"):
        args = build_parser().parse_args(argv + [flag])
        assert progress.wanted(args) is False


def test_describe_and_train_follow_the_options(capsys, tmp_path):
    assert cli(["describe", "smollm2", "-q"]) == 0 and capsys.readouterr().out == ""
    assert cli(["describe", "smollm2"]) == 0 and "name: smollm2" in capsys.readouterr().out
    from gcsim.commands import train
    args = build_parser().parse_args(["train", "chip", "--no-progress"])
    train._log(args, "chip: iter 50/8000 loss 2.1")      # its progress display: off
    train._log(args, "chip: wrote out/train/chipgpt-chip.npz")
    assert capsys.readouterr().out == "chip: wrote out/train/chipgpt-chip.npz\n"
    train._log(build_parser().parse_args(["train", "chip", "-q"]), "chip: wrote x")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("argv, outfile", [
    (["run", "--steps", "2"], "report.json"),
    (["reference", "--steps", "3"], "summary.json"),
    (["profile", "--steps", "2"], "profile.json"),
])
def test_quiet_prints_nothing_and_still_writes(argv, outfile, tmp_path, capsys):
    assert cli(argv + ["-o", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert (tmp_path / "o" / outfile).is_file()


def test_validate_and_reference_show_progress_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_S", 0.0)  # show at once instead of after a second
    assert cli(["validate", "--steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "simulate" in err     # the reference compares block by block during the simulation
    assert cli(["reference", "--steps", "2", "-o", str(tmp_path / "r")]) == 0
    assert "reference (cubic)" in capsys.readouterr().err
    assert cli(["validate", "--steps", "2", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_compiling_kernels_is_said_once_then_not(tmp_path, monkeypatch, capsys):
    """Before a run that would compile the kernels (no marker of a previous compile beside
    numba's cache), 'compiling kernels (once ...)' on stderr; after the run, not again; with the
    progress display off, never."""
    from gcsim.kernels import notice
    monkeypatch.setattr(notice, "_marker", lambda: tmp_path / notice.MARKER)
    notice.announce(False)
    assert capsys.readouterr().err == ""
    notice.announce(True)
    assert capsys.readouterr().err == "gcsim: compiling kernels (once; 10-30 s, then cached for later runs)\n"
    notice.finished()
    notice.announce(True)
    assert capsys.readouterr().err == ""
    (tmp_path / notice.MARKER).write_text("kernels of another version")   # changed source, numba or Python
    notice.announce(True)
    assert "compiling kernels" in capsys.readouterr().err


@pytest.mark.slow
def test_a_fresh_numba_cache_compiles_and_says_so(tmp_path):
    """End to end in a fresh numba cache: the first gcsim run says it compiles, the second does not."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "gcsim", "run", "--steps", "2", "-o", str(tmp_path / "o")]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stderr.count("gcsim: compiling kernels (once") == 1
    assert "compiling" not in second.stderr


def test_a_sweep_shows_its_planning(tmp_path, capsys, monkeypatch):
    """A 10,000-point spec planned for minutes (81 s on the loaded machine, 14 s now:
    benchmarks/bench_sweep_plan.py) with nothing on the screen: the planning has its own bar,
    one tick per combination built and one per point looked up in the cache."""
    from gcsim.sweeps.runner import run_sweep
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    bars, real_bar = [], progress.bar
    monkeypatch.setattr(progress, "bar", lambda *a, **k: bars.append(real_bar(*a, **k)) or bars[-1])
    spec = {"hardware": "paper-gpt2", "mode": "timing-only", "steps": 2,
            "traces": [{"synthetic": {"steps": 2, "seed": 0}}, {"synthetic": {"steps": 2, "seed": 1}}],
            "axes": [{"grid": {"timing.host_ns_per_layer": [0, 1, 2]}}],
            "constraints": [{"require": "timing.host_ns_per_layer < 0", "reason": "none runs"}]}
    result = run_sweep(spec, jobs=1, cache=tmp_path / "cache", progress=True)
    assert [r["status"] for r in result.rows] == ["skipped"] * 6
    err = capsys.readouterr().err
    assert "planning:   0%|          | 0/9" in err      # 3 combinations + 6 points (3 x 2 traces)
    assert [(b.desc, b.n, b.total) for b in bars] == [("planning", 9, 9)]
    run_sweep(spec, jobs=1, cache=tmp_path / "cache", progress=False)
    assert capsys.readouterr().err == ""
