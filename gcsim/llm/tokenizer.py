"""SmolLM2's byte-level BPE tokenizer, run by the `tokenizers` package (Hugging Face) and
built from a GGUF's vocabulary and merge list.

gcsim wrote this BPE by hand until the library was measured to give identical ids on the
tests' texts and the whole shipped tiny-Shakespeare corpus (341,094 tokens;
tests/test_tokenizer.py keeps that check against a textbook implementation in the tests).
For ``tokenizer.ggml.pre == "smollm"`` (llama.cpp groups it with "starcoder"), every digit
is first isolated as its own piece (HF's ``Digits(individual_digits=True)``) before GPT-2's
byte-level split.
"""
from __future__ import annotations

from .weights import LLMError

# Pre-tokenizers that isolate each digit before the GPT-2 split (llama.cpp unicode rules).
_DIGIT_ISOLATING = {"smollm", "starcoder", "refact", "command-r", "codeshell"}


class Tokenizer:
    """SmolLM2's byte-level BPE, run by the `tokenizers` package (Hugging Face), built from the
    GGUF's vocabulary and merge list: digits isolated (llama.cpp 'smollm' pre-tokenizer, HF's
    Digits(individual_digits=True)), then GPT-2's byte-level split; control tokens (GGUF type
    3, e.g. <|im_start|>) match literally in text."""

    def __init__(self, tokens: list[str], merges: list[str], pre: str = "gpt2",
                 token_types: list[int] | None = None):
        try:
            from tokenizers import AddedToken, decoders, models, pre_tokenizers
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError:
            raise LLMError("the SmolLM2 tokenizer needs the tokenizers package (pip install tokenizers)") from None
        if pre not in _DIGIT_ISOLATING | {"gpt2", "default"}:
            raise LLMError(f"pre-tokenizer {pre!r} is not implemented (gpt2 or smollm only)")
        self.pre = pre
        self.tokens = list(tokens)
        lib = HFTokenizer(models.BPE(vocab={t: i for i, t in enumerate(self.tokens)},
                                     merges=[tuple(m.split(" ", 1)) for m in merges], fuse_unk=False))
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        lib.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                             if pre in _DIGIT_ISOLATING else byte_level)
        lib.decoder = decoders.ByteLevel()
        if token_types is not None:
            lib.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                    for t, ty in zip(self.tokens, token_types) if ty == 3])
        self._lib = lib

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (control tokens like <|im_start|> matched literally)."""
        return self._lib.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        """Text of token ids; bytes that are not valid UTF-8 on their own become U+FFFD."""
        return self._lib.decode([int(i) for i in ids], skip_special_tokens=False)
