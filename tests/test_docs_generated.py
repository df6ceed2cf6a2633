"""The figures in the README and docs/ are what the code computes now (docs/generate.py).

Each cheap section is computed again and compared with the text between its markers; the
expensive ones are checked where a timing-only run gives their columns (the window x cell law
table's latency and energy). A failure means the model changed and the docs did not follow:
run `python docs/generate.py NAME`, read the diff, commit it.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
generate = importlib.util.module_from_spec(_spec)
sys.modules["docs_generate"] = generate
_spec.loader.exec_module(generate)

# sweeps on worker processes and the two functional runs of the charge model: 10-40 s busy
LONGER = {"study-sequences", "study-shared-counters", "study-link-bandwidth", "charge-smollm2"}
CASES = [pytest.param(s.name, marks=[pytest.mark.slow] if s.name in LONGER or not s.cheap else [])
         for s in generate.SECTIONS.values() if s.cheap or s.check]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return generate.Context(tmp_path_factory.mktemp("docs"), jobs=2)


@pytest.mark.parametrize("name", CASES)
def test_section_is_current(name, ctx):
    found = generate.differences(generate.SECTIONS[name], ctx)
    assert not found, (f"{name} in {generate.SECTIONS[name].page.relative_to(ROOT)} is stale; run "
                       f"`python docs/generate.py {name}`:\n" + "\n".join(found))


def test_every_marked_region_has_a_section_and_every_section_a_region():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "traces" / "README.md"]
    marked = {}
    for page in pages:
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("<!-- generated: "):
                marked[line.removeprefix("<!-- generated: ").removesuffix(" -->")] = page
    assert set(marked) == set(generate.SECTIONS)
    assert all(generate.SECTIONS[n].page == p for n, p in marked.items())
    for s in generate.SECTIONS.values():
        generate.region(s.page.read_text(encoding="utf-8"), s.name)     # exactly once, with its end marker


def test_expensive_sections_say_which_commit_and_command_made_them():
    for s in generate.SECTIONS.values():
        if not s.cheap:
            body = generate.current(s)
            assert f"Made by `python docs/generate.py {s.name}` at commit " in body, s.name


def test_a_change_in_the_model_shows(ctx, monkeypatch):
    """The check is not vacuous: with the K column read 1 % dearer, the worked examples differ."""
    from gcsim import costs
    real = costs.action_scale
    monkeypatch.setattr(costs, "action_scale", lambda hw: {**real(hw), "k_column_read": 1.01 * real(hw)["k_column_read"]})
    found = generate.differences(generate.SECTIONS["cost-examples"], ctx)
    assert found and "1,131.2" in found[0]


def test_the_readme_system_paragraph_follows_the_generated_curves():
    """The README sums up docs/system.md's generated table of the end-to-end curves in a
    sentence (its figure is that section's chart): a regenerated table the sentence no longer
    matches fails here, as the window x cell law table's conclusion went stale before."""
    import math
    rows = {r[0]: r for r in generate.table_cells(generate.current(generate.SECTIONS["system-curves"]))[1:]}
    speedup = lambda model: float(rows[model][3].split("×")[0])             # noqa: E731  at the window, 1 sequence
    at_64 = [float(rows[m][5].split("×")[0]) for m in rows]
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    said = (f"{speedup('paper-gpt2'):.2f}× for GPT-2 and SmolLM2" if f"{speedup('paper-gpt2'):.2f}" ==
            f"{speedup('smollm2'):.2f}" else "GPT-2 and SmolLM2 differ")
    assert said in readme
    assert speedup("llama3-8b") < 1.1 and f"under 1.1× below {int(rows['llama3-8b'][4]) // 1024}k tokens" in readme
    assert f"{math.floor(min(at_64))}–{math.ceil(max(at_64))}× at 64" in readme


def test_the_window_law_conclusion_follows_its_table():
    """docs/sweep.md's sentence under the window x cell law table repeats its latencies and
    energies (it once said every window takes 780 ns beside a table that no longer did)."""
    rows = generate.table_cells(generate.current(generate.SECTIONS["study-window-law"]))
    head = rows[0]
    rows = [r for r in rows[1:] if r[head.index("numerics.cell_law")] == "linear"]
    col = lambda name: [r[head.index(name)] for r in rows]                 # noqa: E731
    ns = [int(x.replace(",", "")) for x in col("latency_per_token_ns")]
    pj = [int(x.replace(",", "")) for x in col("energy_per_token_pj")]
    text = " ".join((ROOT / "docs" / "sweep.md").read_text(encoding="utf-8").split())
    layers = 12                                                                 # paper-gpt2
    assert " / ".join(f"{n // layers}" for n in ns) + " ns per layer" in text
    assert " / ".join(f"{n}" for n in ns) + " ns per token for windows of " in text
    assert f"from {round(min(pj) / 1000)} to {round(max(pj) / 1000)} nJ" in text
