"""A built wheel, installed outside the clone, finds the shipped descriptions and trace.

Builds the wheel without build isolation (setuptools and `wheel` come from the test extra),
installs it with --no-deps into a fresh venv, and runs the console script from an unrelated
directory. The venv's dependencies (numpy, simpy, ...) are those of the interpreter running
the tests, whatever it is (the README's .venv, a CI interpreter): their site-packages folders
are listed in a .pth file of the new venv, so nothing is downloaded. A .pth file lists folders
without running the .pth files inside them, so an editable install of gcsim there (its import
hook) stays out, and the venv's own site-packages, holding the wheel, comes first. (A venv made
with --system-site-packages would see the *base* interpreter's packages instead: from the
README's .venv, none of gcsim's dependencies; on a machine with an editable install there,
the clone's gcsim, not the wheel's.)
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, env=None):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{cmd} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if importlib.util.find_spec("wheel") is None:
        pytest.skip("needs the 'wheel' package (pip install -e '.[test]')")
    tmp = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          str(ROOT), "-w", str(tmp / "dist")], cwd=tmp)
    wheel, = (tmp / "dist").glob("gcsim-*.whl")
    return tmp, wheel


@pytest.fixture(scope="module")
def installed(built):
    tmp, wheel = built
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    py = venv / "bin" / "python"
    site_dir = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # a gcsim there would count as installed
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)], cwd=tmp,
         env=env)
    # after the install: pip would take a gcsim in those folders for this one, already installed
    ours = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (site_dir / "test-dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return wheel, venv, elsewhere, env


@pytest.mark.slow
def test_wheel_holds_every_shipped_file(built):
    wheel = built[1]
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [f"gcsim/data/models/{p.name}" for p in (ROOT / "models").glob("*.yaml")]
    shipped += [f"gcsim/data/models/hosts/{p.name}" for p in (ROOT / "models" / "hosts").glob("*.yaml")]
    shipped += [f"gcsim/data/traces/{p.name}" for p in (ROOT / "traces").iterdir()]
    # the chip model's weights and corpus live in gcsim/data itself (gcsim eval/decode/train)
    shipped += [f"gcsim/data/{p.name}" for p in (ROOT / "gcsim" / "data").iterdir() if p.is_file()]
    assert shipped and not [n for n in shipped if n not in names]
    # files, not links: the wheel's copy of a description is byte-identical to models/
    data = zipfile.ZipFile(wheel).read("gcsim/data/models/paper-gpt2.yaml")
    assert data == (ROOT / "models" / "paper-gpt2.yaml").read_bytes()


@pytest.mark.slow   # a fresh install compiles the numba kernels again (about a minute on 2 busy cores)
def test_installed_gcsim_runs_from_another_directory(installed):
    _, venv, elsewhere, env = installed
    py = str(venv / "bin" / "python")
    where = _run([py, "-c", "import gcsim, gcsim.resources as r; print(gcsim.__file__); print(r.MODELS_DIR)"],
                 cwd=elsewhere, env=env).split()
    assert all(str(venv) in w for w in where), where  # the installed copy, not the clone
    gcsim = str(venv / "bin" / "gcsim")
    out = _run([gcsim, "run", "--steps", "3", "-o", "r", "--no-progress"], cwd=elsewhere, env=env)
    assert "hardware smollm2" in out
    rep = json.loads((elsewhere / "r" / "report.json").read_text())
    assert rep["steps"] == 3 and rep["trace"]["path"].startswith(str(venv))
    out = _run([gcsim, "paper", "--set", "shape.window=64", "--steps", "64", "--tolerance", "100"], cwd=elsewhere, env=env)
    assert "latency per layer (ns)" in out and "65" in out
    out = _run([gcsim, "validate", "--steps", "2"], cwd=elsewhere, env=env)
    assert "(a) exact, the witness's ages: PASS (0 of" in out and "(t) witness (gcsim/witness/): PASS" in out
    out = _run([py, "-m", "gcsim", "--version"], cwd=elsewhere, env=env)  # python -m gcsim = gcsim
    assert out.startswith("gcsim ")
