"""trace record stops at the end-of-text token, prints the text, prefills long prompts in chunks."""
import numpy as np
import pytest
from weights import needs_weights

from gcsim.cli import main as cli
from gcsim.llm import SmolLM2
from gcsim.traces import open_trace

pytestmark = needs_weights

PROMPT = "It was a bright cold day in April, and the clocks"


@pytest.fixture(scope="module")
def model(smollm2):
    return smollm2


def test_generation_stops_after_a_stop_token_and_keeps_it(model):
    ids = model.tokenizer.encode(PROMPT)
    full = model.generate(ids, n_new=4)
    first = full.generated[0]
    cut = model.generate(ids, n_new=4, stop_ids={first})
    assert cut.generated == [first] and len(cut.token_ids) == len(ids) + 1
    assert cut.q.shape[0] == len(ids) + 1
    np.testing.assert_array_equal(cut.q, full.q[:len(ids) + 1])
    assert {model.tokenizer.decode([i]) for i in model.stop_ids} == {"<|endoftext|>", "<|im_end|>"}


def test_chunked_prefill_equals_one_pass(model, monkeypatch):
    ids = model.tokenizer.encode(PROMPT)
    one = model.generate(ids, n_new=2)
    monkeypatch.setattr(SmolLM2, "PREFILL_CHUNK", 4)  # 12 prompt tokens in 3 passes
    chunked = model.generate(ids, n_new=2)
    assert chunked.generated == one.generated
    for a, b in ((chunked.q, one.q), (chunked.k, one.k), (chunked.attn_out, one.attn_out)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)   # float32, BLAS blocking differs


@pytest.mark.slow
def test_record_command_prints_the_text_and_stops(tmp_path, capsys, monkeypatch):
    # stop at whatever the model says first: make that token the end-of-text token
    real = SmolLM2.load
    first = {}

    def load(*a, **k):
        m = real(*a, **k)
        first["id"] = m.generate(m.tokenizer.encode(PROMPT), n_new=1, record=False).generated[0]
        m.stop_ids = frozenset({first["id"]})
        return m
    monkeypatch.setattr(SmolLM2, "load", load)
    out = tmp_path / "t.gctrace"
    assert cli(["trace", "record", "--prompt", PROMPT, "--new", "5", "-o", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "generated 1 tokens (stopped at the end-of-text token):" in printed
    assert open_trace(out).steps == len(real().tokenizer.encode(PROMPT)) + 1
    assert cli(["trace", "record", "--prompt", PROMPT, "--new", "3", "--no-stop", "-o", str(out),
                "--no-progress"]) == 0
    assert "generated 3 tokens:" in capsys.readouterr().out
