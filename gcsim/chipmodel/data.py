"""The tiny-Shakespeare corpus shipped in gcsim/data/, its characters and the 90/10 split."""
from __future__ import annotations

from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA_DIR / "tiny-shakespeare.txt"
TRAIN_FRACTION = 0.9  # the conventional split: first 90 % train, last 10 % validation


def read_corpus(path: Path = CORPUS) -> str:
    return path.read_text(encoding="utf-8")


def vocabulary(text: str) -> str:
    """The sorted characters of the corpus (65 for tiny Shakespeare): id = index."""
    return "".join(sorted(set(text)))


def encode(text: str, vocab: str) -> np.ndarray:
    """Character ids; a character outside `vocab` is an error naming it and its position."""
    index = {c: i for i, c in enumerate(vocab)}
    try:
        return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))
    except KeyError as err:
        pos = next(i for i, c in enumerate(text) if c not in index)
        raise ValueError(f"character {err.args[0]!r} at position {pos} is not in the model's "
                         f"{len(vocab)}-character vocabulary") from None


def decode(ids, vocab: str) -> str:
    return "".join(vocab[int(i)] for i in ids)


def split(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation): the first 90 % of characters and the last 10 %."""
    n = int(len(ids) * TRAIN_FRACTION)
    return ids[:n], ids[n:]


def split_text(text: str) -> tuple[str, str]:
    """The same split on the text itself (training text, held-out text)."""
    n = int(len(text) * TRAIN_FRACTION)
    return text[:n], text[n:]


def batch(ids: np.ndarray, iteration: int, batch_size: int, context: int, seed: int):
    """Inputs and targets [batch, context] at random offsets, a function of (seed, iteration)
    only, so a run resumed from a checkpoint sees the same batches as one that was not."""
    rng = np.random.default_rng([seed, iteration])
    starts = rng.integers(0, len(ids) - context - 1, batch_size)
    x = np.stack([ids[s:s + context] for s in starts])
    y = np.stack([ids[s + 1:s + 1 + context] for s in starts])
    return x, y


def windows(ids: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping evaluation windows: inputs and targets [n, context]."""
    n = (len(ids) - 1) // context
    x = ids[:n * context].reshape(n, context)
    y = ids[1:n * context + 1].reshape(n, context)
    return x, y
