"""Synthetic decode traces with GPT-2-like activation statistics.

No model weights are needed: q, k, v are drawn per (layer, head, dim) with the features that
matter to the accelerator's numerics:

- per-layer/per-head scale factors (log-normal), and per-channel mean offsets;
- a few outlier channels per head (``n_outliers``) with a large mean (±5..10 × the head scale)
  and a larger spread, shared by a K/V head and its query heads as in real models;
- a slowly varying AR(1) component over steps (coefficient ``rho``), so consecutive tokens are
  correlated, mixed half and half (in variance) with white noise;
- a first-token attention sink: every query carries a component along a per-K/V-head unit
  direction u (orthogonal to the outlier channels) and token 0's k carries a large one, so the
  score of token 0 exceeds the others by about ``sink_nats`` (5..9 nats), as after a BOS token.

Values are in "model units" (like GPT-2 projection outputs, |x| up to ~10-20); there is no RoPE
(GPT-2 has learned absolute positions). Token ids: 50256 (GPT-2's <|endoftext|>) at step 0, then
uniform over the GPT-2 vocabulary. No attn_out is stored: exact causal softmax outputs cost
O(steps²) per head, which is the reference model's job, not the generator's.

Determinism: static parameters come from one child of ``SeedSequence(seed)``, per-step draws
from another, consumed step by step in a fixed order, so step t is the same whether the steps are
produced one at a time, in chunks or all at once, and the same arguments write the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .calibrate import calibrate
from .format import TraceWriter

GENERATOR = "gcsim.traces.synthetic v1"
GPT2_VOCAB = 50257
GPT2_BOS = 50256


class SyntheticGPT2:
    """Generator of synthetic q, k, v; ``iter_steps(n)`` yields them step by step.

    Shapes per step: q_t [layers, heads, d_head], k_t and v_t [layers, kv_heads, d_head],
    float64, model units.
    """

    def __init__(self, *, layers=12, heads=12, kv_heads=None, d_head=64, seed,
                 n_outliers=2, rho=0.98, sink_nats=(5.0, 9.0)):
        kv_heads = heads if kv_heads is None else kv_heads
        if heads % kv_heads:
            raise ValueError(f"kv_heads ({kv_heads}) must divide heads ({heads})")
        self.layers, self.heads, self.kv_heads, self.d_head = layers, heads, kv_heads, d_head
        self.seed, self.rho = seed, rho
        static_ss, self._step_ss = np.random.SeedSequence(seed).spawn(2)
        rng = np.random.default_rng(static_ss)
        L, H, KV, d = layers, heads, kv_heads, d_head
        group = np.arange(H) // (H // KV)  # K/V head of each query head

        # Per-head scales (log-normal) and per-channel std and mean, in units of the scale.
        self.scale = {"q": rng.lognormal(0.0, 0.35, (L, H)), "k": rng.lognormal(0.0, 0.35, (L, KV)),
                      "v": rng.lognormal(-0.3, 0.35, (L, KV))}
        chan_std = {n: rng.lognormal(0.0, 0.2, s.shape + (d,)) for n, s in self.scale.items()}
        chan_mean = {n: rng.normal(0.0, m, s.shape + (d,))
                     for (n, s), m in zip(self.scale.items(), (0.5, 0.5, 0.2))}

        # Outlier channels: chosen per K/V head, shared by its query heads (q and k); v has its own.
        self.outliers = np.stack([np.stack([rng.choice(d, n_outliers, replace=False)
                                            for _ in range(KV)]) for _ in range(L)])  # [L, KV, n]
        v_out = np.stack([np.stack([rng.choice(d, n_outliers, replace=False)
                                    for _ in range(KV)]) for _ in range(L)])
        for name, chans in (("k", self.outliers), ("v", v_out), ("q", self.outliers[:, group])):
            mag = rng.uniform(5.0, 10.0, chans.shape) * rng.choice([-1.0, 1.0], chans.shape)
            np.put_along_axis(chan_mean[name], chans, mag, axis=-1)
            np.put_along_axis(chan_std[name], chans,
                              np.take_along_axis(chan_std[name], chans, -1) * 1.5, axis=-1)

        # Attention sink: unit direction u per K/V head, orthogonal to the outlier channels.
        u = rng.normal(size=(L, KV, d))
        np.put_along_axis(u, self.outliers, 0.0, axis=-1)
        u /= np.linalg.norm(u, axis=-1, keepdims=True)
        bonus = rng.uniform(*sink_nats, (L, H))  # extra score of token 0, in nats
        c_q = 3.0 * self.scale["q"]  # query component along u
        self._q_sink = (c_q[..., None] * u[:, group])  # [L, H, d]
        # Token 0: k component along u giving `bonus` on average over the heads of the group.
        c_k = (bonus * np.sqrt(d) / c_q).reshape(L, KV, H // KV).mean(axis=-1)
        self._k_sink = c_k[..., None] * u  # [L, KV, d]
        self.sink_direction = u
        self._mean = {n: chan_mean[n] * self.scale[n][..., None] for n in chan_mean}
        self._std = {n: chan_std[n] * self.scale[n][..., None] for n in chan_std}

    @property
    def model_shape(self) -> tuple:
        return self.layers, self.heads, self.kv_heads, self.d_head

    def iter_steps(self, steps: int):
        """Yield (q_t, k_t, v_t, token_id) for t = 0 .. steps-1 (float64 arrays, int id)."""
        rng = np.random.default_rng(self._step_ss)  # fresh each call: restartable
        names = ("q", "k", "v")
        z = {n: rng.standard_normal(self._mean[n].shape) for n in names}  # stationary start
        a = self.rho
        for t in range(steps):
            out = []
            for n in names:
                z[n] = a * z[n] + np.sqrt(1.0 - a * a) * rng.standard_normal(z[n].shape)
                white = rng.standard_normal(z[n].shape)
                out.append(self._mean[n] + self._std[n] * np.sqrt(0.5) * (z[n] + white))
            q_t, k_t, v_t = out
            q_t += self._q_sink
            token = int(rng.integers(0, GPT2_VOCAB))
            if t == 0:
                k_t += self._k_sink
                token = GPT2_BOS
            yield q_t, k_t, v_t, token


def make_synthetic(*, layers=12, heads=12, kv_heads=None, d_head=64, steps, seed,
                   name="synthetic-gpt2") -> dict:
    """Whole synthetic trace in memory (for small sizes and tests).

    Returns {"q": [steps, layers, heads, d_head] float32, "k", "v": [steps, layers, kv_heads,
    d_head] float32, "token_ids": [steps] int32, "model": {name, layers, heads, kv_heads,
    d_head}, "seed", "outlier_channels": [layers, kv_heads, n] (q/k outlier dims),
    "sink_direction": [layers, kv_heads, d_head]}.
    """
    gen = SyntheticGPT2(layers=layers, heads=heads, kv_heads=kv_heads, d_head=d_head, seed=seed)
    L, H, KV, d = gen.model_shape
    q = np.empty((steps, L, H, d), np.float32)
    k = np.empty((steps, L, KV, d), np.float32)
    v = np.empty((steps, L, KV, d), np.float32)
    tok = np.empty(steps, np.int32)
    for t, (q_t, k_t, v_t, token) in enumerate(gen.iter_steps(steps)):
        q[t], k[t], v[t], tok[t] = q_t, k_t, v_t, token
    model = {"name": name, "layers": L, "heads": H, "kv_heads": KV, "d_head": d}
    return {"q": q, "k": k, "v": v, "token_ids": tok, "model": model, "seed": seed,
            "outlier_channels": gen.outliers, "sink_direction": gen.sink_direction}


def write_synthetic(path, *, layers=12, heads=12, kv_heads=None, d_head=64, steps, seed,
                    name="synthetic-gpt2", dtype="float16", calib_steps=256) -> Path:
    """Stream a synthetic trace to ``path`` (memory does not grow with ``steps``).

    Scalers are calibrated on the first min(steps, calib_steps) steps as they will be stored
    (after conversion to ``dtype``); the generator is then restarted and streamed to disk.
    """
    gen = SyntheticGPT2(layers=layers, heads=heads, kv_heads=kv_heads, d_head=d_head, seed=seed)
    L, H, KV, d = gen.model_shape
    n_cal = min(steps, calib_steps)
    cal = {n: [] for n in "qkv"}
    for q_t, k_t, v_t, _ in gen.iter_steps(n_cal):
        for n, x in zip("qkv", (q_t, k_t, v_t)):
            cal[n].append(x.astype(dtype).astype(np.float32))
    scalers, clip = calibrate(*(np.stack(cal[n]) for n in "qkv"), max_steps=None)
    del cal
    provenance = {
        "source": "synthetic", "source_sha256": None, "prompt": None, "seed": seed,
        "synthetic": True, "generator": GENERATOR,
        "command": (f"gcsim.traces.synthetic.write_synthetic(layers={L}, heads={H}, "
                    f"kv_heads={KV}, d_head={d}, steps={steps}, seed={seed}, name={name!r}, "
                    f"dtype={dtype!r}, calib_steps={calib_steps})"),
    }
    model = {"name": name, "layers": L, "heads": H, "kv_heads": KV, "d_head": d}
    with TraceWriter(path, model=model, steps=steps, scalers=scalers, clip_fraction=clip,
                     provenance=provenance, dtype=dtype) as w:
        for q_t, k_t, v_t, token in gen.iter_steps(steps):
            w.append_step(q_t, k_t, v_t, token)
    return Path(path)
