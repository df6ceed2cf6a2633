"""Fine-tuning SmolLM2-135M with the chip's attention (gcsim/llm/finetune.py, `gcsim adapt --lm
smollm2`): on a CPU only the code path, a few steps on a few tokens (about a minute each: most
of it is XLA compiling the 30 layers)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.weights import needs_weights

pytest.importorskip("jax")
pytestmark = [*needs_weights, pytest.mark.slow]

TEXT = "ROMEO: But soft, what light through yonder window breaks? It is the east, and Juliet is the sun."


def test_jax_forward_matches_numpy_and_two_steps_lower_the_loss(smollm2, tmp_path):
    import jax.numpy as jnp

    from gcsim.adaptation import AdaptationConfig
    from gcsim.llm import finetune as ft
    from gcsim.llm.loop import SmolLM2Model, adapt_loop_scalers, chip_attention, model_hardware, window_logits
    model = SmolLM2Model(smollm2)
    hw = model_hardware(model)
    ids = model.encode(TEXT)[:13]
    scalers, passes = adapt_loop_scalers(model, ids[:12], hw, "cubic", AdaptationConfig(max_passes=2))
    assert len(passes) == 2
    # step 0: the JAX forward (float32, whole-window hardware attention, GQA by repetition)
    # against the numpy decoder with the numeric reference of the chip in its loop (float64
    # attention, GQA by head index): the same logits to float32 precision
    params = ft.params_of(smollm2, scalers)
    got = np.asarray(ft.forward({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(ids[None, :12]),
                                smollm2, hw, "cubic", jnp))[0]
    want = window_logits(model, ids[:12], chip_attention(hw, "cubic", scalers))
    assert got.shape == want.shape == (12, smollm2.vocab_size)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * 30 + 1e-4 * np.abs(want).max())
    assert (got.argmax(-1) == want.argmax(-1)).all()
    # two AdamW steps on one batch (cubic forward, linear surrogate gradient) lower its loss
    batch = ids[None, :13]
    before = ft.batch_loss(smollm2, hw, params, batch)
    trained, history = ft.finetune(smollm2, hw, scalers, lambda it: batch, steps=2, lr=3e-5)
    assert [h["step"] for h in history] == [0, 1]
    assert history[0]["loss"] == pytest.approx(before, rel=1e-4)   # the loss of the step's forward
    after = ft.batch_loss(smollm2, hw, {**params, **trained}, batch)
    assert after < before - 0.05, (before, after)
    assert set(trained) == set(params)                              # --train all: every weight moved
    assert not np.array_equal(trained["l0.wqkv"], params["l0.wqkv"])
    # scalers-only fine-tune keeps the weights out of the optimizer
    only, _ = ft.finetune(smollm2, hw, scalers, lambda it: batch, steps=1, lr=1e-3, trainable="scalers")
    assert set(only) == {"a_q", "b_q", "a_k", "b_k", "a_v", "b_v", "a_out", "b_out"}
    assert only["a_k"].shape == (smollm2.n_layers, smollm2.n_kv_heads)
    path = ft.save_finetuned(tmp_path / "w.npz", only, {"steps": 1})
    back, meta = ft.load_finetuned(path)
    assert meta == {"steps": 1} and np.array_equal(back["a_q"], only["a_q"])


def test_command_writes_weights_with_provenance(tmp_path):
    from gcsim.llm.weights import file_sha256, find_smollm2_gguf
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "gcsim", "adapt", "--lm", "smollm2", "--steps", "2", "--seq-len", "8",
                        "--adapt-passes", "2", "--train", "scalers", "-o", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""                                           # --quiet
    meta = json.loads((out / "smollm2" / "finetune.json").read_text())
    assert meta["source"]["gguf_sha256"] == file_sha256(find_smollm2_gguf())
    assert meta["recipe"]["steps"] == 2 and meta["recipe"]["law"] == "cubic" and meta["recipe"]["grad_law"] == "linear"
    assert meta["adaptation"]["passes"] == 2 and len(meta["history"]) == 2
    assert all(np.isfinite(h["loss"]) for h in meta["history"])
    with np.load(out / "smollm2" / "smollm2-finetuned.npz") as z:
        assert json.loads(str(z["meta"])) == meta
        assert z["a_out"].shape == (30, 9) and z["b_k"].shape == (30, 3)


def test_command_refuses_chip_options_for_smollm2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gcsim", "adapt", "--lm", "smollm2", "--ablation", "-o",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--ablation" in r.stderr and "Traceback" not in r.stderr
