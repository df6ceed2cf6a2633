"""Weights files of the chip model: one .npz with the parameters, the model config, the
vocabulary and how it was trained. The shipped pair lives in gcsim/data/."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .data import DATA_DIR
from .model import ModelConfig

SHIPPED = {"chip": DATA_DIR / "chipgpt-chip.npz", "softmax": DATA_DIR / "chipgpt-softmax.npz"}


@dataclass
class ChipWeights:
    params: dict[str, np.ndarray]
    cfg: ModelConfig
    vocab: str
    meta: dict
    path: Path


def save_weights(path: Path, params: dict, cfg: ModelConfig, vocab: str, meta: dict) -> Path:
    path = Path(path)
    header = json.dumps({"config": cfg.to_dict(), "vocab": vocab, "meta": meta})
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, __header__=np.array(header), **{k: np.asarray(a, np.float32) for k, a in params.items()})
    os.replace(tmp, path)
    return path


def load_weights(name_or_path) -> ChipWeights:
    """'chip' or 'softmax' (the shipped weights) or a path to a weights file."""
    path = SHIPPED.get(str(name_or_path), Path(name_or_path))
    if not path.exists():
        raise FileNotFoundError(f"{path}: chip-model weights not found (shipped: {', '.join(SHIPPED)})")
    try:
        with np.load(path) as z:
            head = json.loads(str(z["__header__"]))
            params = {k: z[k] for k in z.files if k != "__header__"}
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not a chip-model weights file ({err})") from None
    known = {f.name for f in fields(ModelConfig)}
    cfg = ModelConfig(**{k: v for k, v in head["config"].items() if k in known})
    return ChipWeights(params, cfg, head["vocab"], head.get("meta", {}), path)
