"""A character-level GPT (nanoGPT style) whose attention is the gain-cell hardware's.

Written once over an array namespace `xp` (numpy for inference on the host, jax.numpy
for training), so the model that is trained is the model that is evaluated. The
attention is composed from `gcsim.physics` (DAC front end, cell-law bit-line charges,
HardSigmoid, output counters); `round_fn` is the rounding of the quantizers: xp.round on
the chip, a straight-through rounding when training.

Parameters are a flat dict of arrays:
  wte [V, C], wpe [context, C], lnf_w/lnf_b [C];
  per layer l: h{l}.ln1_w/_b, h{l}.ln2_w/_b [C], h{l}.w_qkv [C, 3C], h{l}.w_o [C, C],
  h{l}.w_fc [C, 4C], h{l}.w_mlp [4C, C];
  hardware variants: scalers a_q, b_q, a_k, b_k, a_v, b_v, a_out, b_out [L, H] (learned).
C = heads x d_head. The LM head is tied to wte.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .. import physics
from ..datapath import SCALER_KEYS, default_scalers, retention_decay
from ..hardware import Hardware
from ..reference import hardware_for_variant

ATTENTIONS = ("softmax", "linear", "cubic")


@dataclass(frozen=True)
class ModelConfig:
    vocab: int = 65
    layers: int = 4
    heads: int = 2
    d_head: int = 64
    context: int = 256
    attention: str = "cubic"      # softmax | linear | cubic (the cell law in the forward pass)
    hardware: str = "chipgpt"     # description (models/NAME.yaml) the hardware attention follows

    @property
    def width(self) -> int:
        return self.heads * self.d_head

    def to_dict(self) -> dict:
        return asdict(self)


def init_params(cfg: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """nanoGPT initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 L);
    the paper's initial per-head scalers for the hardware variants."""
    rng = np.random.default_rng(seed)
    C, L = cfg.width, cfg.layers
    normal = lambda *shape, std=0.02: (std * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    p = {"wte": normal(cfg.vocab, C), "wpe": normal(cfg.context, C),
         "lnf_w": np.ones(C, np.float32), "lnf_b": np.zeros(C, np.float32)}
    for l in range(L):
        p[f"h{l}.ln1_w"], p[f"h{l}.ln1_b"] = np.ones(C, np.float32), np.zeros(C, np.float32)
        p[f"h{l}.ln2_w"], p[f"h{l}.ln2_b"] = np.ones(C, np.float32), np.zeros(C, np.float32)
        p[f"h{l}.w_qkv"] = normal(C, 3 * C)
        p[f"h{l}.w_o"] = normal(C, C, std=0.02 / np.sqrt(2 * L))
        p[f"h{l}.w_fc"] = normal(C, 4 * C)
        p[f"h{l}.w_mlp"] = normal(4 * C, C, std=0.02 / np.sqrt(2 * L))
    if cfg.attention != "softmax":
        for key, val in default_scalers(L, cfg.heads, cfg.heads).items():
            p[key] = val.astype(np.float32)
    return p


def scalers_of(params) -> dict[str, np.ndarray] | None:
    """The learned per-head scalers [L, H] as float64 numpy arrays (None for softmax)."""
    if "a_q" not in params:
        return None
    return {k: np.asarray(params[k], dtype=np.float64) for k in SCALER_KEYS}


# ---- the pieces of a layer that run on the host ---------------------------------------

def layer_norm(x, w, b, xp, eps: float = 1e-5):
    mu = xp.mean(x, axis=-1, keepdims=True)
    var = xp.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) / xp.sqrt(var + eps) * w + b


def gelu(x, xp):
    """tanh approximation of GELU (GPT-2's). In numpy x * x * x: its x ** 3 takes 100 times as
    long (it was most of the numpy forward's time). The JAX expression is kept as it was, op
    for op: XLA compiles a reordered one differently in the last bit, and training must stay
    bit-identical to the recorded runs."""
    if xp is np:
        return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * (x * x * x))))
    return 0.5 * x * (1.0 + xp.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


def embed(params, ids, positions, xp):
    """Token plus position embeddings: ids, positions [..., T] -> x [..., T, C]."""
    return xp.take(params["wte"], ids, axis=0) + xp.take(params["wpe"], positions, axis=0)


def project_qkv(params, layer: int, x, cfg: ModelConfig, xp):
    """x [..., T, C] -> q, k, v [..., T, H, d] (what the host sends to the chip)."""
    h = layer_norm(x, params[f"h{layer}.ln1_w"], params[f"h{layer}.ln1_b"], xp)
    qkv = h @ params[f"h{layer}.w_qkv"]
    shape = x.shape[:-1] + (cfg.heads, cfg.d_head)
    C = cfg.width
    return (xp.reshape(qkv[..., :C], shape), xp.reshape(qkv[..., C:2 * C], shape),
            xp.reshape(qkv[..., 2 * C:], shape))


def finish_layer(params, layer: int, x, att, xp):
    """Residual stream after the attention output att [..., T, H, d] and the MLP."""
    att = xp.reshape(att, x.shape)
    x = x + att @ params[f"h{layer}.w_o"]
    h = layer_norm(x, params[f"h{layer}.ln2_w"], params[f"h{layer}.ln2_b"], xp)
    return x + gelu(h @ params[f"h{layer}.w_fc"], xp) @ params[f"h{layer}.w_mlp"]


def logits_of(params, x, xp):
    return layer_norm(x, params["lnf_w"], params["lnf_b"], xp) @ params["wte"].T


# ---- attention over a whole window (training and teacher-forced evaluation) -----------

def softmax_attention(q, k, v, xp):
    """Causal softmax attention, scale 1/sqrt(d): q, k, v [B, T, H, d] -> [B, T, H, d]."""
    q, k, v = (xp.permute_dims(a, (0, 2, 1, 3)) for a in (q, k, v))
    T, d = q.shape[-2], q.shape[-1]
    s = q @ xp.matrix_transpose(k) / float(np.sqrt(d))  # a Python float: numpy keeps float32
    causal = np.tril(np.ones((T, T), dtype=bool))
    s = xp.where(xp.asarray(causal), s, -1e30)
    w = xp.exp(s - xp.max(s, axis=-1, keepdims=True))
    w = w / xp.sum(w, axis=-1, keepdims=True)
    return xp.permute_dims(w @ v, (0, 2, 1, 3))


def window_decay(T: int, hw: Hardware) -> np.ndarray:
    """[T, T] retention factor of token u read at step t at the nominal token period
    (0 for u > t): the ages the chip gives a window read from an empty state."""
    t, u = np.arange(T)[:, None], np.arange(T)[None, :]
    age_tok = np.maximum(t - u, 0)
    decay = retention_decay(age_tok * hw.timing.nominal_token_period_ps, age_tok, hw)
    return np.where(u <= t, decay, 0.0)


def hardware_attention(q, k, v, scalers: dict, layer: int, hw: Hardware, xp, round_fn=None,
                       grad_law: str | None = None):
    """Gain-cell attention over a window from an empty state, all heads at once.

    q, k, v [B, T, H, d] with T <= window (no wrap-around: token u sits in slot u,
    sub-tile u // array_size). scalers: arrays [L, H]. The stages are the physics
    functions the reference model and the simulator use: DAC front end, bit-line
    charges through the cell law with retention, HardSigmoid, per-sub-tile output
    codes, digital sum and output scaler. grad_law (JAX only): the cell law whose
    gradient the bit-line charges take (the paper's linear surrogate for the cubic
    cell); None: the forward law's own.
    """
    n, s = hw.numerics, hw.shape
    B, T, H, d = q.shape
    if T > s.window:
        raise ValueError(f"window of {T} tokens exceeds the hardware window {s.window}")
    dt = q.dtype
    col = lambda key: xp.reshape(xp.astype(scalers[key][layer], dt), (1, 1, H, 1))  # noqa: E731
    qd = physics.scale_clip_quantize(q, col("a_q"), col("b_q"), *n.q_range, n.q_levels, round_fn, xp=xp)
    yk = physics.scale_clip_quantize(k, col("a_k"), col("b_k"), *n.kv_range_v, n.kv_levels, round_fn, xp=xp) - physics.V_ZERO_V
    yv = physics.scale_clip_quantize(v, col("a_v"), col("b_v"), *n.kv_range_v, n.kv_levels, round_fn, xp=xp) - physics.V_ZERO_V
    coeffs = physics.law_coefficients(hw.numerics.cell_law)
    a = s.array_size
    Tp = -(-T // a) * a  # whole sub-tile arrays; slots past T are empty
    decay_np = np.zeros((T, Tp))
    decay_np[:, :T] = window_decay(T, hw)
    valid_np = np.zeros((T, Tp), bool)
    valid_np[:, :T] = np.tril(np.ones((T, T), bool))
    decay, valid = xp.asarray(decay_np, dtype=dt), xp.asarray(valid_np)

    def heads_first(x):  # [B, T, H, d] -> [B*H, Tp, d], zero rows for empty slots
        x = xp.reshape(xp.permute_dims(x, (0, 2, 1, 3)), (B * H, T, d))
        return x if Tp == T else xp.concat([x, xp.zeros((B * H, Tp - T, d), dtype=dt)], axis=1)

    qh = xp.reshape(xp.permute_dims(qd, (0, 2, 1, 3)), (B * H, T, d))

    def charges(law_coeffs):  # (S of the K arrays, A of the V arrays) through a cell law
        return (lambda qh, yk: physics.bitline_charges_qk(
                    qh, physics.stored_powers(yk, len(law_coeffs), xp=xp), decay, valid, law_coeffs, xp=xp),
                lambda phi, yv: physics.bitline_charges_av(
                    phi, physics.stored_powers(yv, len(law_coeffs), xp=xp), decay, law_coeffs, a, xp=xp))

    charges_qk, charges_av = charges(coeffs)
    if grad_law is not None and grad_law != hw.numerics.cell_law:
        from .gradients import with_gradient_of
        grad_qk, grad_av = charges(physics.law_coefficients(grad_law))
        charges_qk, charges_av = with_gradient_of(charges_qk, grad_qk), with_gradient_of(charges_av, grad_av)
    S = charges_qk(qh, heads_first(yk))                                              # [BH, T, Tp]
    phi = physics.hard_sigmoid(S, n.s_sat, xp=xp)
    A = charges_av(phi, heads_first(yv))                                             # [BH, T, n_sub, d]
    codes = physics.output_code(A, n.out_sat, n.out_levels, round_fn, xp=xp)
    out = xp.reshape(xp.sum(codes, axis=-2), (B, H, T, d))
    out = xp.permute_dims(out, (0, 2, 1, 3))
    return col("a_out") * out + col("b_out")


def forward(params, ids, cfg: ModelConfig, xp, *, hw: Hardware | None = None, round_fn=None,
            attention=None, grad_law: str | None = None, record: list | None = None):
    """Logits [B, T, V] for ids [B, T] (T <= context), every layer's attention from
    `attention(q, k, v, layer)` if given, else the configured one (softmax or the chip's;
    grad_law: see hardware_attention). record: a list that receives (q, k, v, out) of every
    layer, each [B, T, H, d] (out after the output scaler)."""
    B, T = ids.shape
    if attention is None:
        if cfg.attention == "softmax":
            attention = lambda q, k, v, layer: softmax_attention(q, k, v, xp)  # noqa: E731
        else:
            sc = {key: params[key] for key in SCALER_KEYS}
            hw = hardware_for_variant(hw, cfg.attention)
            attention = lambda q, k, v, layer: hardware_attention(q, k, v, sc, layer, hw, xp, round_fn,  # noqa: E731
                                                                  grad_law)
    x = embed(params, ids, xp.reshape(xp.arange(T), (1, T)), xp)
    for layer in range(cfg.layers):
        q, k, v = project_qkv(params, layer, x, cfg, xp)
        att = attention(q, k, v, layer)
        if record is not None:
            record.append((q, k, v, att))
        x = finish_layer(params, layer, x, att, xp)
    return logits_of(params, x, xp)
