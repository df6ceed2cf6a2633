"""A textbook SmolLM2 BPE, the oracle of tests/test_tokenizer.py: gcsim's former hand-written
pre-tokenizer (GPT-2's pattern without the `regex` module, digits isolated for 'smollm')
and the plainest BPE (merge the leftmost lowest-rank pair, one at a time). gcsim itself
tokenizes with the `tokenizers` package (gcsim/llm/tokenizer.py)."""
import unicodedata
from functools import lru_cache

_DIGIT_ISOLATING = {"smollm", "starcoder", "refact", "command-r", "codeshell"}
# Unicode White_Space property (what \s means in the Unicode-aware regex engines).
_WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                        + "".join(map(chr, range(0x2000, 0x200B))))
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



class TextbookBPE:
    """encode(text) -> ids, control tokens (GGUF type 3) matched literally."""

    def __init__(self, tokens, merges, pre, token_types):
        import re
        self.pre, self.tokens = pre, list(tokens)
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.special = {t: i for i, t in enumerate(self.tokens) if token_types[i] == 3}
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in sorted(self.special, key=len, reverse=True)) + ")")
        self._table = bytes_to_unicode()
        self.piece = lru_cache(maxsize=None)(self._piece)

    def _piece(self, piece):
        word = [self._table[b] for b in piece.encode("utf-8")]
        while True:
            cands = [(self.ranks[p], i) for i, p in enumerate(zip(word, word[1:])) if p in self.ranks]
            if not cands:
                return tuple(self.ids[w] for w in word)
            _, i = min(cands)
            word[i:i + 2] = [word[i] + word[i + 1]]

    def encode(self, text):
        ids = []
        for k, chunk in enumerate(self._special_re.split(text)):
            if k % 2:
                ids.append(self.special[chunk])
            else:
                for p in pre_tokenize(chunk, self.pre):
                    ids += self.piece(p)
        return ids
