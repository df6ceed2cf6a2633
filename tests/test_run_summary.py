"""The run summary (`gcsim run`) says what it costs, how full the window was, and labels run
totals and per-token figures as what they are; checked on the shipped SmolLM2 trace against
figures computed here from the trace's length and the description (41 steps, window 1,024)."""
from __future__ import annotations

import re

import pytest

from gcsim.cli import main as cli


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "o"
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli(["run", "--no-progress", "-o", str(out)]) == 0
    text = buf.getvalue()
    assert text.startswith((out / "summary.txt").read_text().rstrip("\n"))
    return text


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def test_it_says_only_the_attention_is_costed(summary):
    assert ("costed: the attention core on the chip (K/V writes, Q.K^T, activation, .V, readout) and its links;\n"
            "        not the model's projections, MLP, embeddings or LM head") in summary


def test_it_says_how_full_the_window_was(summary):
    # 41 tokens written into a 1,024-slot window: 41 slots at the last step, 4.0 %, never full;
    # over the run 1 + 2 + ... + 41 = 861 slots, 21.0 per step on average
    assert "window: 41 of 1,024 slots written at the last step (4.0 %); 0 of 41 steps at a full window" in summary
    assert "mean over all 41 steps, 21.0 of the window's 1,024 slots written on average" in summary
    assert "paper pJ, full window" in summary


def test_run_totals_and_per_token_figures_are_labelled_and_agree(summary):
    total = re.search(r"run total\s+([\d.]+) uJ over 41 tokens, by component: (.*)", summary)
    parts = [_number(v) for v in re.findall(r" ([\d.]+) nJ", total.group(2))]
    total_nj = 1000 * float(total.group(1))
    assert sum(parts) == pytest.approx(total_nj, abs=0.05 * len(parts))   # components add up to the run's total
    per_token = _number(re.search(r"per token\s+([\d.]+) nJ mean", summary).group(1))
    assert per_token * 41 == pytest.approx(total_nj, rel=1e-4)            # the mean per token is total / tokens
    assert re.search(r"run: [\d.]+ us elapsed", summary) and "\n  elapsed" not in summary


def test_the_trace_is_named_as_seen_from_the_working_directory(monkeypatch, tmp_path):
    """From a clone the summary says `trace traces/...` as the README's quickstart shows it
    (it gave the absolute path); a trace elsewhere keeps its whole path."""
    from gcsim.report import _as_seen_from_here
    trace = tmp_path / "traces" / "x.gctrace"
    monkeypatch.chdir(tmp_path)
    assert _as_seen_from_here(str(trace)) == "traces/x.gctrace"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert _as_seen_from_here(str(trace)) == str(trace)
