"""record_trace: a real SmolLM2-135M decode written as a .gctrace."""

import numpy as np
import pytest
from weights import needs_weights

from gcsim.llm import LLMError, SmolLM2
from gcsim.traces import TraceError, open_trace
from gcsim.traces.record import GENERATOR, record_trace
from test_trace_cli import assert_attn_matches


pytestmark = needs_weights

PROMPT = "It was a bright cold day in April, and the clocks"
N_NEW = 6


@pytest.fixture(scope="module")
def model(smollm2):
    return smollm2


@pytest.fixture(scope="module")
def recorded(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "a.gctrace"
    return record_trace(path, PROMPT, n_new=N_NEW, model=model)


def test_shapes_tokens_and_provenance(model, recorded):
    ids = model.tokenizer.encode(PROMPT)
    expect = model.generate(ids, n_new=N_NEW, record=False).token_ids
    with open_trace(recorded) as t:
        T = len(ids) + N_NEW
        assert t.steps == T and t.dtype == "float16"
        assert t.model == {"name": model.name, "layers": 30, "heads": 9, "kv_heads": 3,
                           "d_head": 64}
        assert t.q.shape == t.attn_out.shape == (T, 30, 9, 64)
        assert t.k.shape == t.v.shape == (T, 30, 3, 64)
        np.testing.assert_array_equal(t.token_ids, expect)
        p = t.provenance
        assert p["source"] == model.path.name and p["source_sha256"] == model.sha256
        assert p["prompt"] == PROMPT and p["seed"] is None and p["synthetic"] is False
        assert p["generator"] == GENERATOR and "n_new=6" in p["command"]
        assert p["gcsim_version"]


def test_attn_out_is_causal_softmax_of_stored_qkv(recorded):
    with open_trace(recorded) as t:
        assert_attn_matches(t)


def test_float32_recording_matches_tightly(model, tmp_path):
    path = record_trace(tmp_path / "f32.gctrace", PROMPT, n_new=2, model=model, dtype="float32")
    with open_trace(path) as t:
        assert t.dtype == "float32"
        assert_attn_matches(t)


def test_calibrated_q_fills_the_pwm_range(recorded):
    # Calibration maps the 0.05 % / 99.95 % quantiles of each head's stored q onto 0 and 1.
    with open_trace(recorded) as t:
        q = np.asarray(t.q, dtype=np.float64)
        y = q * t.scalers["a_q"][..., None] + t.scalers["b_q"][..., None]
        y = y.transpose(1, 2, 0, 3).reshape(30, 9, -1)  # [layers, heads, steps*d]
        lo, hi = np.quantile(y, [0.0005, 0.9995], axis=-1)
        good = (np.abs(lo) < 1e-6) & (np.abs(hi - 1) < 1e-6)
        assert good.mean() > 0.95, f"{(~good).sum()} heads do not fill [0, 1]"
        assert np.all(y.min(axis=-1) <= 1e-6) and np.all(y.max(axis=-1) >= 1 - 1e-6)
        assert t.clip_fraction["q"].max() < 0.01


def test_same_prompt_gives_identical_bytes(model, recorded, tmp_path):
    again = record_trace(tmp_path / "b.gctrace", PROMPT, n_new=N_NEW, model=model)
    assert again.read_bytes() == recorded.read_bytes()


def test_bad_arguments(model, tmp_path):
    with pytest.raises(TraceError, match="dtype"):
        record_trace(tmp_path / "x.gctrace", PROMPT, n_new=1, model=model, dtype="int8")
    with pytest.raises(TraceError, match="n_new"):
        record_trace(tmp_path / "x.gctrace", PROMPT, n_new=-1, model=model)
    with pytest.raises(LLMError, match="at least one prompt token"):
        record_trace(tmp_path / "x.gctrace", "", n_new=1, model=model)
    assert list(tmp_path.iterdir()) == []
