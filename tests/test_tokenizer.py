"""The SmolLM2 tokenizer (the `tokenizers` package built from the GGUF) gives the ids of a
textbook BPE (tests/bpe_oracle.py: gcsim's former hand-written one) on the test prompts and
long texts, the whole shipped tiny-Shakespeare corpus included, and decodes them back."""
from pathlib import Path

import pytest
from bpe_oracle import TextbookBPE, pre_tokenize
from weights import needs_weights

pytestmark = needs_weights
ROOT = Path(__file__).resolve().parents[1]
PROMPT = "The capital of France is"
TEXTS = [
    PROMPT,
    "It was a bright cold day in April, and the clocks",                     # trace record's test prompt
    "Hello,  world!!  I'm here; you'll see they've 3 cats & 12,345.67 dogs.",
    "naïve café — Ελληνικά, 日本語のテキスト, emoji 🤖👍🏽 and ½ ² ٣",
    "tabs\tand\nnewlines\n\n  indented   \r\n trailing   ",
    "  leading spaces, 'quotes' and don't/can't/WON'T",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>",
]


def test_oracle_pre_tokenizer_examples():
    assert pre_tokenize("I'm  12 cats", "smollm") == ["I", "'m", "  ", "1", "2", " cats"]
    assert pre_tokenize("a  \nb", "gpt2") == ["a", "  ", "\n", "b"]
    assert pre_tokenize("x   y ", "gpt2") == ["x", "  ", " y", " "]
    assert pre_tokenize("?'s é!", "gpt2") == ["?'", "s", " é", "!"]


def test_oracle_pre_tokenizer_matches_regex_module():
    regex = pytest.importorskip("regex", reason="optional cross-check against the regex module")
    gpt2 = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"
                         r"|\s+(?!\S)|\s+")
    for s in TEXTS:
        want = []
        for part in regex.split(r"(\p{N})", s):  # smollm: isolate every digit first
            want += gpt2.findall(part)
        assert pre_tokenize(s, "smollm") == want, s


@pytest.fixture(scope="module")
def gguf():
    from gcsim.llm.weights import find_smollm2_gguf, load_gguf
    return load_gguf(find_smollm2_gguf())


@pytest.fixture(scope="module")
def pair(gguf):
    from gcsim.llm import Tokenizer
    return (Tokenizer(gguf.tokens, gguf.merges, gguf.pre, gguf.token_types),
            TextbookBPE(gguf.tokens, gguf.merges, gguf.pre, gguf.token_types))


def test_prompt_ids(pair):
    tok, _ = pair
    ids = tok.encode(PROMPT)
    assert [tok.tokens[i] for i in ids] == ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]
    assert ids == [504, 3575, 282, 4649, 314]
    assert tok.encode("<|im_start|>") == [1]


def test_library_ids_equal_the_textbook_bpe_and_round_trip(pair):
    tok, oracle = pair
    for s in TEXTS:
        ids = tok.encode(s)
        assert ids == oracle.encode(s), s
        assert tok.decode(ids) == s


def test_long_texts_identical(pair):
    """The whole tiny-Shakespeare corpus (1.1 M characters, 341,094 tokens) and README.md."""
    tok, oracle = pair
    for path in (ROOT / "gcsim" / "data" / "tiny-shakespeare.txt", ROOT / "README.md"):
        text = path.read_text()
        ids = tok.encode(text)
        assert ids == oracle.encode(text), path.name
        assert tok.decode(ids) == text


def test_a_partial_utf8_token_decodes_to_the_replacement_character(pair):
    tok, _ = pair
    ids = tok.encode("🤖")
    assert len(ids) == 3 and [tok.decode([i]) for i in ids] == ["\ufffd"] * 3
    assert tok.decode(ids) == "🤖"
