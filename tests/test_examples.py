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
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_every_example_that_imports_an_extra_names_it():
    scripts = sorted(ROOT.glob("examples/*.py"))
    assert scripts
    missing = [f"{p.name}: imports {m} but does not say pip install -e '.[{EXTRA_OF[m]}]'"
               for p in scripts for m in sorted(_imports(p) & set(EXTRA_OF))
               if f".[{EXTRA_OF[m]}]" not in p.read_text(encoding="utf-8")]
    assert not missing, missing


def test_plot_timeline_without_matplotlib_says_which_extra(tmp_path):
    # matplotlib hidden (None in sys.modules makes `import matplotlib` fail as if absent)
    code = ("import runpy, sys; sys.modules['matplotlib'] = None; "
            f"sys.argv = ['plot_timeline.py', {str(tmp_path / 'timeline.json')!r}]; "
            f"runpy.run_path({str(ROOT / 'examples' / 'plot_timeline.py')!r}, run_name='__main__')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 1
    assert res.stderr == "plot_timeline.py needs matplotlib: pip install -e '.[plot]' (or pip install matplotlib)\n"
