"""GPT-2-style byte-level BPE tokenizer built from a GGUF vocabulary and merge list.

Pre-tokenization reproduces, without the third-party ``regex`` module, the GPT-2 pattern
``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``.
For ``tokenizer.ggml.pre == "smollm"`` (llama.cpp groups it with "starcoder"), every
``\\p{N}`` character is first isolated as its own piece, like HF's
``Digits(individual_digits=True)`` that precedes the byte-level split in SmolLM2.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .weights import LLMError

# Unicode White_Space property (what \s means in the Unicode-aware regex engines).
_WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                        + "".join(map(chr, range(0x2000, 0x200B))))
# Pre-tokenizers that isolate each digit before the GPT-2 split (llama.cpp unicode rules).
_DIGIT_ISOLATING = {"smollm", "starcoder", "refact", "command-r", "codeshell"}
_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


@lru_cache(maxsize=4096)
def char_class(c: str) -> str:
    """'S' whitespace, 'L' letter, 'N' number, 'P' anything else."""
    if c in _WHITESPACE:
        return "S"
    cat = unicodedata.category(c)[0]
    return cat if cat in "LN" else "P"


def gpt2_split(s: str) -> list[str]:
    """Split ``s`` exactly like the GPT-2 pre-tokenizer regex (see module docstring)."""
    out, i, n = [], 0, len(s)
    while i < n:
        if s[i] == "'":
            suf = next((x for x in _CONTRACTIONS if s.startswith(x, i + 1)), None)
            if suf is not None:
                out.append(s[i:i + 1 + len(suf)])
                i += 1 + len(suf)
                continue
        # ` ?X+`: an optional single leading space glued to a run of one class.
        j = i + 1 if s[i] == " " and i + 1 < n and char_class(s[i + 1]) != "S" else i
        cls = char_class(s[j])
        e = j + 1
        if cls != "S":
            while e < n and char_class(s[e]) == cls:
                e += 1
        else:
            while e < n and s[e] in _WHITESPACE:
                e += 1
            # `\s+(?!\S)` backs off one char so the last space can prefix the next word;
            # a lone whitespace char before a non-space falls through to `\s+`.
            if e < n and e - i > 1:
                e -= 1
        out.append(s[i:e])
        i = e
    return out


def pre_tokenize(text: str, pre: str = "gpt2") -> list[str]:
    """Pieces that BPE merges never cross, for llama.cpp pre-tokenizer name ``pre``."""
    if pre not in _DIGIT_ISOLATING:
        return gpt2_split(text)
    out, start = [], 0
    for i, c in enumerate(text):
        if char_class(c) == "N":
            out += gpt2_split(text[start:i])
            out.append(c)
            start = i + 1
    return out + gpt2_split(text[start:])


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-character map (space becomes 'Ġ')."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class BPETokenizer:
    """Byte-level BPE: pre-tokenize, map UTF-8 bytes to symbols, merge by rank, look up ids.

    ``tokens``: vocabulary strings (id = index); ``merges``: "left right" strings in rank
    order; ``token_types``: GGUF token types (3 = control, matched literally in text).
    """

    def __init__(self, tokens: list[str], merges: list[str], pre: str = "gpt2",
                 token_types: list[int] | None = None):
        if pre not in _DIGIT_ISOLATING | {"gpt2", "default"}:
            raise LLMError(f"pre-tokenizer {pre!r} is not implemented (gpt2 or smollm only)")
        self.pre = pre
        self.tokens = list(tokens)
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.byte_char = bytes_to_unicode()
        char_byte = {c: b for b, c in self.byte_char.items()}
        self._token_bytes = [bytes(char_byte[c] for c in t) if all(c in char_byte for c in t)
                             else t.encode("utf-8") for t in self.tokens]
        self.special = {t: i for i, t in enumerate(self.tokens)
                        if token_types is not None and token_types[i] == 3}
        self._special_re = (re.compile("(" + "|".join(
            re.escape(t) for t in sorted(self.special, key=len, reverse=True)) + ")")
            if self.special else None)
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def bpe(self, piece: str) -> list[int]:
        """Token ids of one pre-tokenized piece: repeatedly merge the lowest-rank pair."""
        if piece in self._cache:
            return self._cache[piece]
        word = [self.byte_char[b] for b in piece.encode("utf-8")]
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        try:
            ids = [self.ids[w] for w in word]
        except KeyError as exc:
            raise LLMError(f"BPE symbol {exc} is not in the vocabulary") from None
        if len(self._cache) < 100_000:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str, special: bool = True) -> list[int]:
        """Token ids of ``text``; with ``special`` control tokens like <|im_start|> match literally."""
        chunks = (self._special_re.split(text) if special and self._special_re else [text])
        ids: list[int] = []
        for k, chunk in enumerate(chunks):
            if k % 2:  # odd entries of re.split with one group are the separators
                ids.append(self.special[chunk])
            else:
                for piece in pre_tokenize(chunk, self.pre):
                    ids += self.bpe(piece)
        return ids

    def decode(self, ids) -> str:
        """Text of token ids; bytes that are not valid UTF-8 on their own become U+FFFD."""
        return b"".join(self._token_bytes[int(i)] for i in ids).decode("utf-8", errors="replace")
