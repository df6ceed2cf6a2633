"""Every command takes --no-progress and --quiet; long loops show a bar on stderr."""
import pytest

from gcsim import progress
from gcsim.cli import build_parser, main as cli

COMMANDS = [["run"], ["validate"], ["profile"], ["paper"], ["reference"],
            ["trace", "record", "--prompt", "x", "--new", "1", "-o", "x.gctrace"],
            ["trace", "synth", "--steps", "1", "-o", "x.gctrace"], ["trace", "info", "x.gctrace"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_command_accepts_the_same_feedback_options(argv):
    for flag in ("--no-progress", "--quiet", "-q"):
        args = build_parser().parse_args(argv + [flag])
        assert progress.wanted(args) is False


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
