"""The README and docs/ as a newcomer uses them: every relative link and anchor resolves, and
every Python snippet runs as written, as a plain script from the repository root (the way a
reader pastes it into a file). A block preceded by `<!-- not run: REASON -->` is a fragment
(a method body, a class to add to gcsim) and is skipped, with its reason in the markdown."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md",
         ROOT / "traces" / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "CHANGELOG.md"]
NOT_RUN = re.compile(r"<!-- not run: .+ -->\s*$")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            out.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
    return out


def test_every_relative_link_and_anchor_resolves():
    bad = []
    for page in PAGES:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, frag = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                bad.append(f"{page.relative_to(ROOT)}: {link} (no such file)")
            elif frag and target.suffix == ".md" and frag not in _anchors(target):
                bad.append(f"{page.relative_to(ROOT)}: {link} (no such heading)")
    assert not bad, "\n".join(bad)


def snippets(page: Path) -> list[tuple[int, str]]:
    """(line, code) of each ```python block of `page` not marked as a fragment."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
            marked = i > 0 and NOT_RUN.search(lines[i - 1].strip())
            indent = len(lines[i]) - len(lines[i].lstrip())
            if not marked:
                out.append((start + 1, "\n".join(l[indent:] for l in lines[start:end]) + "\n"))
            i = end
        i += 1
    return out


# a snippet that starts worker processes takes 10-20 s on a busy machine; tests/test_sweep_scripts.py
# runs the same guarded gcsim.sweep in the default set
CASES = [pytest.param(page, line, code, marks=[pytest.mark.slow] if "gcsim.sweep(" in code else [],
                      id=f"{page.relative_to(ROOT)}:{line}")
         for page in PAGES for line, code in snippets(page)]


def test_the_snippets_are_found():
    names = {case.values[0].name for case in CASES}
    assert {"api.md", "sweep.md"} <= names, names


@pytest.mark.parametrize("page,line,code", CASES)
def test_snippet_runs_as_a_plain_script(page, line, code, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    res = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, f"{page.relative_to(ROOT)} line {line}:\n{code}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]


def _bash_blocks(page: Path, section: str | None = None) -> list[list[str]]:
    """The lines of each ```bash block of `page` (only under the `## SECTION` heading if given)."""
    blocks, inside, current, heading = [], False, None, None
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            heading = line[3:]
        if line.strip() == "```bash" and (section is None or heading == section):
            current = []
        elif line.strip() == "```" and current is not None:
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_the_readme_has_the_two_commands_ci_runs():
    """.ci/run takes the README's two commands from its 'Install and run' section, one line each."""
    install, tests = _bash_blocks(ROOT / "README.md", "Install and run")
    assert install == ["python -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && gcsim run"]
    assert len(tests) == 1 and tests[0].endswith("python -m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_command 1" in ci and "readme_command 2" in ci and 'pytest -q -m slow' in ci


@pytest.mark.slow
def test_the_readmes_gcsim_commands_run(tmp_path):
    """Every `gcsim ...` line of the README's other bash blocks exits 0, run from a folder that
    holds the clone's examples/, models/ and traces/ (so nothing is written into the clone)."""
    for name in ("examples", "models", "traces"):
        (tmp_path / name).symlink_to(ROOT / name)
    lines = [line.split("  #")[0].strip() for block in _bash_blocks(ROOT / "README.md")
             for line in block if line.startswith("gcsim ")]
    assert len(lines) >= 5, lines
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    import shlex
    for line in lines:
        res = subprocess.run([sys.executable, "-m", "gcsim", *shlex.split(line)[1:], "--no-progress"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{line}: exit {res.returncode}\n{res.stderr[-2000:]}"
