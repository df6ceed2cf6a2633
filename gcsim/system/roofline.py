"""Roofline of a decode step on a host device: the operations (kernels) of a layer and of a
step, each costed as max(FLOPs / FLOP rate, bytes / bandwidth) plus a launch overhead.

A decode step of B sequences in flight computes one token per sequence. Its matrix products
are [B, K] x [K, N]: 2 B K N FLOPs, and b (K N + B K + B N) bytes (the weights once for the
whole batch, each sequence's input and output), b bytes per element at the host's precision.
Elementwise kernels read and write their operands once. Conventions (docs/system.md):

- host part of a layer (beside the chip): add+norm, QKV projection (one fused product),
  output projection, add+norm, MLP up (gate and up fused when gated), activation, MLP down:
  7 kernels;
- per step, once: embedding gather, final add+norm, LM head, sampling (argmax): 4 kernels;
- the GPU-only baseline's attention of a layer: the K/V append, then either one fused kernel
  (reads the context's K and V once) or three (Q.K^T, softmax, .V, the scores through memory).

Energy: busy power x time + FLOPs x pJ/FLOP + bytes x pJ/byte (gcsim/system/device.py).
Time is integer picoseconds, each kernel rounded once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .device import Device

NORM_FLOPS = 5      # add + norm per element: the add, square, (sum), scale, weight
GELU_FLOPS = 8      # tanh-approximated GELU per element
SWIGLU_FLOPS = 5    # SiLU(gate) x up per element
SOFTMAX_FLOPS = 5   # max, subtract, exp, sum, divide per score


@dataclass(frozen=True)
class Op:
    """One kernel: its FLOPs and bytes of memory traffic."""
    name: str
    flops: int
    bytes: int


def gemm(name: str, m: int, k: int, n: int, b: int) -> Op:
    """[m, k] x [k, n]: the weights read once, each row's input and output once."""
    return Op(name, 2 * m * k * n, b * (k * n + m * k + m * n))


def elementwise(name: str, n: int, reads: int, writes: int, flops_each: int, b: int, extra_bytes: int = 0) -> Op:
    return Op(name, flops_each * n, b * n * (reads + writes) + extra_bytes)


def add_norm(name: str, batch: int, d_model: int, b: int) -> Op:
    """Residual add and norm: reads the residual and the update, writes both; its weights once."""
    return elementwise(name, batch * d_model, 2, 2, NORM_FLOPS, b, b * d_model)


def layer_ops(shape, batch: int, b: int) -> list[Op]:
    """The host's kernels of one layer beside the chip (everything but attention)."""
    D, F = shape.d_model, shape.d_ff
    q_width, kv_width = shape.heads * shape.d_head, shape.kv_heads * shape.d_head
    gated = shape.mlp == "gated"
    act = elementwise("activation", batch * F, 2, 1, SWIGLU_FLOPS, b) if gated else \
        elementwise("activation", batch * F, 1, 1, GELU_FLOPS, b)
    return [add_norm("add_norm_1", batch, D, b),
            gemm("qkv_proj", batch, D, q_width + 2 * kv_width, b),
            gemm("o_proj", batch, q_width, D, b),
            add_norm("add_norm_2", batch, D, b),
            gemm("mlp_up", batch, D, (2 if gated else 1) * F, b),
            act,
            gemm("mlp_down", batch, F, D, b)]


def step_ops(shape, batch: int, b: int) -> list[Op]:
    """The host's kernels once per decode step: embedding, final norm, LM head, sampling."""
    D, V = shape.d_model, shape.vocab
    return [elementwise("embedding", batch * D, 1, 1, 0, b),
            add_norm("final_norm", batch, D, b),
            gemm("lm_head", batch, D, V, b),
            elementwise("sample", batch * V, 1, 0, 1, b)]


def attention_ops(shape, batch: int, context: int, b: int, fused: bool) -> list[Op]:
    """The GPU-only baseline's attention of one layer: each of `batch` sequences attends to
    `context` tokens (its own K/V cache, the current token included)."""
    H, KV, d = shape.heads, shape.kv_heads, shape.d_head
    kv_read = batch * KV * context * d            # elements of K (or of V) read
    qo = batch * H * d                            # elements of q (or of the output)
    scores = batch * H * context
    append = elementwise("kv_append", 2 * batch * KV * d, 1, 1, 0, b)
    if fused:
        return [append, Op("attention", 4 * batch * H * context * d + SOFTMAX_FLOPS * scores,
                           b * (2 * kv_read + 2 * qo))]
    return [append,
            Op("qk", 2 * batch * H * context * d, b * (kv_read + qo + scores)),
            elementwise("softmax", scores, 1, 1, SOFTMAX_FLOPS, b),
            Op("pv", 2 * batch * H * context * d, b * (kv_read + scores + qo))]


def prefill_attention(shape, tokens: int, b: int) -> Op:
    """Causal attention over a prompt of `tokens` in one kernel (FlashAttention-style: q, k,
    v read once, the output written once): token i attends to i + 1 tokens."""
    H, KV, d = shape.heads, shape.kv_heads, shape.d_head
    pairs = tokens * (tokens + 1) // 2
    return Op("prefill_attention", 4 * H * d * pairs + SOFTMAX_FLOPS * H * pairs,
              b * tokens * (2 * H * d + 2 * KV * d))


def prefill_ops(shape, tokens: int, b: int) -> list[Op]:
    """The host's kernels of a prompt's prefill (serving): the embedding of its `tokens`, every
    layer's kernels at `tokens` rows with the prompt's causal attention, and the LM head and
    sampling of its last token (the request's first output token)."""
    D = shape.d_model
    layer = layer_ops(shape, tokens, b)
    layer.insert(2, prefill_attention(shape, tokens, b))
    return [elementwise("embedding", tokens * D, 1, 1, 0, b), *layer * shape.layers, *step_ops(shape, 1, b)[1:]]


@dataclass
class Cost:
    """Time and energy of some kernels on a device (adds up)."""
    time_ps: int = 0
    kernels: int = 0
    flops: int = 0
    bytes: int = 0
    energy_pj: dict = field(default_factory=lambda: {"busy": 0.0, "flop": 0.0, "byte": 0.0})

    @property
    def total_pj(self) -> float:
        return sum(self.energy_pj.values())

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.time_ps + other.time_ps, self.kernels + other.kernels, self.flops + other.flops,
                    self.bytes + other.bytes, {k: v + other.energy_pj[k] for k, v in self.energy_pj.items()})

    def times(self, n: int) -> "Cost":
        return Cost(self.time_ps * n, self.kernels * n, self.flops * n, self.bytes * n,
                    {k: v * n for k, v in self.energy_pj.items()})


def kernel_ps(op: Op, dev: Device):
    """Roofline time of one kernel, without its launch overhead (ps; an array of them when
    the op's counts are arrays, e.g. an attention over many contexts)."""
    ps = np.rint(np.maximum(np.divide(op.flops, dev.flop_per_s), np.divide(op.bytes, dev.byte_per_s)) * 1e12)
    return int(ps) if np.ndim(ps) == 0 else ps.astype(np.int64)


def cost(ops: list[Op], dev: Device) -> Cost:
    t = sum(kernel_ps(op, dev) + dev.launch_overhead_ps for op in ops)
    flops, nbytes = sum(op.flops for op in ops), sum(op.bytes for op in ops)
    # W x ps = pJ
    return Cost(t, len(ops), flops, nbytes, {"busy": dev.busy_power_w * t, "flop": dev.pj_per_flop * flops,
                                            "byte": dev.pj_per_byte * nbytes})


# -- the decode step of a description on its host -----------------------------------------------

def host_layer(hw, dev: Device, batch: int) -> Cost:
    """The host's part of one layer (beside the chip) for `batch` sequences in flight."""
    return cost(layer_ops(hw.shape, batch, dev.bytes_per_element), dev)


def host_step(hw, dev: Device, batch: int) -> Cost:
    """The host's once-per-step kernels (embedding, final norm, LM head, sampling)."""
    return cost(step_ops(hw.shape, batch, dev.bytes_per_element), dev)


def host_prefill(hw, dev: Device, tokens: int) -> Cost:
    """A prompt's prefill on the host (serving)."""
    return cost(prefill_ops(hw.shape, tokens, dev.bytes_per_element), dev)


def gpu_attention(hw, dev: Device, batch: int, context: int) -> Cost:
    """One layer's attention done by the host itself (the GPU-only baseline)."""
    return cost(attention_ops(hw.shape, batch, context, dev.bytes_per_element, dev.attention == "fused"), dev)


def gpu_only_step(hw, dev: Device, batch: int, context: int) -> Cost:
    """A whole decode step on the host alone: every layer with its attention, plus the step's
    own kernels. Each of the `batch` sequences gets one token per step."""
    layer = host_layer(hw, dev, batch) + gpu_attention(hw, dev, batch, context)
    return layer.times(hw.shape.layers) + host_step(hw, dev, batch)


def footprint_bytes(hw, dev: Device, batch: int = 0, context: int = 0) -> int:
    """Memory the host holds: the weights (the layers' matrices and norms, one d_model x vocab
    table: tied embeddings; an untied model holds one more) and, for the GPU-only baseline,
    the K/V cache of `batch` sequences at `context` tokens."""
    s, b = hw.shape, dev.bytes_per_element
    layer = sum(op.bytes for op in layer_ops(s, 0, b))   # at batch 0: the weights alone
    kv = 2 * s.layers * batch * s.kv_heads * s.d_head * context
    return b * (s.d_model * s.vocab + s.d_model + kv) + s.layers * layer
