"""Output directories: gcsim replaces only what it wrote, atomically, even when killed or raced."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gcsim.cli import main as cli
from gcsim.outdir import MARKER

ROOT = Path(__file__).resolve().parent.parent


def _run(out, *extra):
    return cli(["run", "--steps", "2", "--no-progress", "-o", str(out), *extra])


def _user_files(d):
    d.mkdir()
    (d / "notes.txt").write_text("my notes")
    (d / "sub").mkdir()
    (d / "sub" / "model.yaml").write_text("mine: 1\n")


def _snapshot(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_a_directory_with_the_users_files_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "o"
    _user_files(out)
    before = _snapshot(out)
    assert _run(out) == 2
    err = capsys.readouterr().err
    assert "holds files gcsim did not write (notes.txt, sub/model.yaml)" in err and "--force" in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]      # no temporary copies left


def test_current_and_parent_directory_are_refused(tmp_path, monkeypatch, capsys):
    work = tmp_path / "w"
    _user_files(work)
    monkeypatch.chdir(work)
    assert _run(".") == 2 and _run("..") == 2
    assert (work / "notes.txt").read_text() == "my notes"


def test_a_gcsim_directory_is_replaced_whole_and_marked(tmp_path):
    out = tmp_path / "o"
    assert cli(["run", "--steps", "3", "--no-progress", "-o", str(out)]) == 0
    mark = json.loads((out / MARKER).read_text())
    assert mark["written_by"] == "gcsim" and mark["state"] == "complete"
    assert sorted(mark["files"]) == ["outputs.npy", "per_step.csv", "report.json", "summary.txt"]
    assert _run(out) == 0
    assert np.load(out / "outputs.npy").shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_a_user_file_added_to_a_gcsim_directory_makes_it_the_users(tmp_path, capsys):
    out = tmp_path / "o"
    assert _run(out) == 0
    (out / "analysis.txt").write_text("keep me")
    assert _run(out) == 2
    assert "analysis.txt" in capsys.readouterr().err
    assert (out / "analysis.txt").read_text() == "keep me" and (out / "outputs.npy").exists()


def test_an_empty_directory_is_used(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    assert _run(out) == 0 and (out / "report.json").exists()


def test_force_writes_beside_the_users_files_and_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    _user_files(out)
    (out / "summary.txt").write_text("old summary")
    assert _run(out, "--force") == 0
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "sub" / "model.yaml").read_text() == "mine: 1\n"
    assert (out / "summary.txt").read_text() != "old summary"        # same name: replaced, as asked
    assert np.load(out / "outputs.npy").shape[0] == 2
    assert _run(out) == 2                                             # still the user's directory


def test_unwritable_output_fails_before_the_simulation(tmp_path, monkeypatch, capsys):
    from gcsim.commands import run as run_cmd

    def boom(*a, **k):
        raise AssertionError("the simulation ran before the output was checked")
    monkeypatch.setattr(run_cmd, "simulate", boom)
    (tmp_path / "file").write_text("x")
    assert _run(tmp_path / "file" / "out") == 2
    assert "file" in capsys.readouterr().err


def _dead_pid():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from gcsim.outdir import _write_marker
    pid = _dead_pid()
    ours = tmp_path / f".o.tmp-{pid}"
    ours.mkdir()
    _write_marker(ours, ["gcsim", "run"], "partial")      # what output_dir leaves when killed
    (ours / "outputs.npy").write_bytes(b"partial")
    theirs = tmp_path / f".o.tmp-{pid + 1}"              # no marker: not ours, never touched
    theirs.mkdir()
    copied = tmp_path / f".o.old-{pid}"                  # a copy of a temporary: its marker names
    shutil.copytree(ours, copied)                        # another folder, so it is not ours
    assert _run(tmp_path / "o") == 0
    assert not ours.exists() and theirs.exists() and (copied / "outputs.npy").exists()


# A shell that starts the suite in the background without job control hands its children SIGINT
# ignored, and Python then installs no Ctrl-C handler: restore it, as an interactive shell would.
SLOW_RUN = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from gcsim.commands import run
real = run.simulate
def slow(*a, **k):
    time.sleep(float(sys.argv[2]))
    return real(*a, **k)
run.simulate = slow
from gcsim.cli import main
sys.exit(main(["run", "--steps", "2", "--no-progress", "-o", sys.argv[1]]))
"""


def _slow_run(out, seconds):
    return subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(out), str(seconds)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(pred, timeout=60):
    end = time.time() + timeout
    while not pred():
        assert time.time() < end, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_leaves_the_previous_output_and_no_temporaries(tmp_path, sig, code):
    out = tmp_path / "o"
    assert _run(out) == 0
    before = _snapshot(out)
    proc = _slow_run(out, 60)
    _wait_for(lambda: any(p.name.startswith(".o.tmp-") for p in tmp_path.iterdir()))
    time.sleep(0.3)                                    # inside the simulation by now
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.count("\n") == 1  # one line: "gcsim run: terminated by signal N"
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_concurrent_writers_both_finish_and_leave_one_complete_output(tmp_path):
    out = tmp_path / "o"
    procs = [_slow_run(out, 1.0) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    mark = json.loads((out / MARKER).read_text())
    assert mark["state"] == "complete" and sorted(os.listdir(out)) == sorted([MARKER, *mark["files"]])
    assert np.load(out / "outputs.npy").shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_trace_output_never_replaces_a_file_that_is_not_a_trace(tmp_path, capsys):
    f = tmp_path / "notes.gctrace"
    f.write_text("my notes")
    args = ["trace", "synth", "--steps", "2", "-o", str(f)]
    assert cli(args) == 2
    assert "not a gcsim trace" in capsys.readouterr().err and f.read_text() == "my notes"
    assert cli(args + ["--force"]) == 0 and f.read_bytes().startswith(b"GCTRACE")
    assert cli(args + ["--seed", "1"]) == 0       # a gcsim trace may be replaced


def test_train_output_dir_follows_the_marker_rule(tmp_path, capsys):
    """`gcsim train -o DIR` writes its fixed names in place: a folder holding a user's file is
    refused before any work (the file untouched), a folder gcsim claimed is reused (resume)."""
    from gcsim.outdir import MARKER, claim_in_place, seal_in_place
    user = tmp_path / "mine"
    user.mkdir()
    (user / "chipgpt-chip.npz").write_bytes(b"user data")
    assert cli(["train", "chip", "-o", str(user), "--iters", "1"]) == 2
    err = capsys.readouterr().err
    assert "chipgpt-chip.npz" in err and "did not write" in err
    assert (user / "chipgpt-chip.npz").read_bytes() == b"user data"
    assert not (user / MARKER).exists()
    # a claimed folder lists the files the training will write, before it writes them
    out = claim_in_place(tmp_path / "run", ["chip.ckpt.npz", "chipgpt-chip.npz"])
    (out / "chip.ckpt.npz").write_bytes(b"ckpt")       # what a killed run leaves
    claim_in_place(out, ["softmax.ckpt.npz"])           # a rerun or the other experiment: accepted
    assert json.loads((out / MARKER).read_text())["pending"] == ["chip.ckpt.npz", "chipgpt-chip.npz",
                                                                 "softmax.ckpt.npz"]
    assert _run(out) == 2          # a pending file is not tied to gcsim yet: never replaced whole
    seal_in_place(out)             # after the training: its size and hash recorded
    mark = json.loads((out / MARKER).read_text())
    assert list(mark["files"]) == ["chip.ckpt.npz"] and mark["pending"] == ["chipgpt-chip.npz", "softmax.ckpt.npz"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        claim_in_place(out, ["chip.ckpt.npz"])
    claim_in_place(out, ["chip.ckpt.npz"], force=True)  # --force: beside the user's file
    assert (out / "notes.txt").read_text() == "mine"


# --- data loss (issue 21): nothing gcsim did not write is deleted or replaced ------------------

def test_a_folder_holding_only_subfolders_or_symlinks_is_not_empty(tmp_path, capsys):
    """`mkdir -p out/keep/inner; gcsim run -o out` deleted out/keep: an empty subfolder, a
    symlink to a folder and a symlink to a file are the user's, like any file."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "data.txt").write_text("precious")
    for make in (lambda o: (o / "keep" / "inner").mkdir(parents=True),
                 lambda o: (o.mkdir(), (o / "link").symlink_to(target)),
                 lambda o: (o.mkdir(), (o / "file-link").symlink_to(target / "data.txt"))):
        out = tmp_path / "o"
        shutil.rmtree(out, ignore_errors=True)
        make(out)
        before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        assert _run(out) == 2
        err = capsys.readouterr().err
        assert "holds files gcsim did not write" in err and "Traceback" not in err
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert (target / "data.txt").read_text() == "precious"
    assert (out / "file-link").read_text() == "precious"


def _gcsim_folder(tmp_path):
    out = tmp_path / "o"
    assert _run(out) == 0
    return out


@pytest.mark.parametrize("forge", ["files-as-string", "format-1-list", "entry-without-hash",
                                   "hash-of-other-content", "not-json", "a-folder"])
def test_a_forged_marker_never_makes_gcsim_delete_the_users_files(tmp_path, capsys, forge):
    """The marker was trusted as written: a marker listing the user's files (forged, or
    copied along with a folder) made gcsim delete them. Now each listed file must match the
    size and sha256 gcsim recorded, and the marker its schema."""
    import hashlib
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    good = {"size": 4, "sha256": hashlib.sha256(b"mine").hexdigest()}
    base = {"written_by": "gcsim", "format": 2, "version": "0.1.0", "state": "complete", "command": ["gcsim"]}
    marker = {"files-as-string": {**base, "files": "notes.txt"},
              "format-1-list": {"written_by": "gcsim", "files": ["notes.txt"]},
              "entry-without-hash": {**base, "files": {"notes.txt": {"size": 4}}},
              "hash-of-other-content": {**base, "files": {"notes.txt": {**good, "sha256": "0" * 64}}},
              "not-json": None, "a-folder": None}[forge]
    if forge == "not-json":
        (out / MARKER).write_text('{"written_by": "gcsim", "files": ["notes.txt"')
    elif forge == "a-folder":
        (out / MARKER).mkdir()
    else:
        (out / MARKER).write_text(json.dumps(marker))
    assert _run(out) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "Traceback" not in err and err.count("\n") == 1
    assert (out / "notes.txt").read_text() == "mine"


def test_a_copied_marker_with_the_users_file_in_place_of_gcsims_is_refused(tmp_path, capsys):
    out = _gcsim_folder(tmp_path)
    mine = tmp_path / "mine"
    shutil.copytree(out, mine)                                   # marker copied along
    (mine / "summary.txt").write_text("my own summary")          # same name, the user's content
    assert _run(mine) == 2
    assert "summary.txt" in capsys.readouterr().err
    assert (mine / "summary.txt").read_text() == "my own summary"
    shutil.copytree(out, tmp_path / "copy")                      # an untouched copy is gcsim's
    assert _run(tmp_path / "copy") == 0


def test_the_marker_lists_size_and_sha256_of_every_file(tmp_path):
    import hashlib
    out = _gcsim_folder(tmp_path)
    mark = json.loads((out / MARKER).read_text())
    assert mark["format"] == 2 and sorted(mark["files"]) == sorted(p.name for p in out.iterdir() if p.name != MARKER)
    for name, entry in mark["files"].items():
        data = (out / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_decode_json_never_replaces_a_file_gcsim_did_not_write(tmp_path, capsys):
    """`echo mine > notes.txt; gcsim decode --prompt 'ROMEO:' -n 2 --json notes.txt` replaced
    notes.txt. Now refused before any work (exit 2); a decode result gcsim wrote is replaced;
    --force replaces anything regular."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    args = ["decode", "--prompt", "ROMEO:", "-n", "2", "--json"]
    assert cli(args + [str(notes)]) == 2
    err = capsys.readouterr().err
    assert "notes.txt: exists and is not a decode result gcsim wrote" in err and "--force" in err
    assert notes.read_text() == "mine\n"
    res = tmp_path / "d.json"
    assert cli(args + [str(res)]) == 0
    data = json.loads(res.read_text())
    assert data["gcsim_output"] == "decode" and len(data["latency_ns_per_step"]) == 7   # 'ROMEO:' + 2 - 1
    assert cli(args + [str(res)]) == 0                            # its own result: replaced
    res.write_text(res.read_text().replace('"first_difference": null', '"first_difference": 0'))
    assert cli(args + [str(res)]) == 2                            # edited since: the user's now
    assert cli(args + [str(notes), "--force"]) == 0 and json.loads(notes.read_text())["gcsim_output"] == "decode"
    assert cli(args + [str(tmp_path)]) == 2                       # a folder: never
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "notes.txt"]   # no temporaries


def test_force_finds_every_name_clash_before_moving_anything(tmp_path, capsys):
    out = tmp_path / "o"
    _user_files(out)
    (out / "report.json").mkdir()                                 # a folder where gcsim writes a file
    (out / "report.json" / "mine.txt").write_text("mine")
    before = _snapshot(out)
    assert _run(out, "--force") == 2
    err = capsys.readouterr().err
    assert "report.json (a folder)" in err and "nothing was changed" in err
    assert _snapshot(out) == before and not (out / "summary.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_a_long_legal_output_name_works(tmp_path):
    """A 250-byte name is legal; `.NAME.tmp-PID` is not: temporaries use a shorter name."""
    out = tmp_path / ("o" * 250)
    assert _run(out) == 0 and _run(out) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
