"""Examples name the extra they need and, without it, say so in one line instead of a
traceback (a newcomer installs only the [test] extra)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRA_OF = {"matplotlib": "plot", "pandas": "parquet", "pyarrow": "parquet", "ray": "ray", "jax": "train"}


def _imports(path: Path) -> set[str]:
    return _imports_of(ast.parse(path.read_text(encoding="utf-8")))


def _library_functions_needing_extras() -> dict[tuple[str, str], str]:
    """(module, function) of gcsim that imports an extra in its body -> the extra's module:
    an example calling one needs the extra as much as one importing it."""
    found = {}
    for path in sorted((ROOT / "gcsim").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef):
                needs = _imports_of(node) & set(EXTRA_OF)
                if needs:
                    found[(module, node.name)] = sorted(needs)[0]
    return found


def _imports_of(tree) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _extras_used(path: Path, library: dict) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    used = _imports(path) & set(EXTRA_OF)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            used |= {library[(node.module, a.name)] for a in node.names if (node.module, a.name) in library}
    return used


def test_every_example_that_imports_an_extra_names_it():
    scripts = sorted(ROOT.glob("examples/*.py"))
    library = _library_functions_needing_extras()
    assert scripts and ("gcsim.system.curves", "plot") in library      # the scan finds what it should
    missing = [f"{p.name}: needs {m} but does not say pip install -e '.[{EXTRA_OF[m]}]'"
               for p in scripts for m in sorted(_extras_used(p, library))
               if f".[{EXTRA_OF[m]}]" not in p.read_text(encoding="utf-8")]
    assert not missing, missing


def _run_without_matplotlib(script: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run examples/SCRIPT as __main__ with matplotlib hidden (None in sys.modules makes
    `import matplotlib` fail as if absent)."""
    code = ("import runpy, sys; sys.modules['matplotlib'] = None; "
            f"sys.argv = {[script] + argv!r}; "
            f"runpy.run_path({str(ROOT / 'examples' / script)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_system_curves_without_matplotlib_says_which_extra_before_any_work(tmp_path):
    """It computed the curves (10-20 s) and then stopped with a ModuleNotFoundError traceback."""
    res = _run_without_matplotlib("system_curves.py", ["-o", str(tmp_path / "c.png")])
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == "system_curves.py needs matplotlib: pip install -e '.[plot]' (or pip install matplotlib)\n"


def test_plot_timeline_without_matplotlib_says_which_extra(tmp_path):
    res = _run_without_matplotlib("plot_timeline.py", [str(tmp_path / "timeline.json")])
    assert res.returncode == 1
    assert res.stderr == "plot_timeline.py needs matplotlib: pip install -e '.[plot]' (or pip install matplotlib)\n"
