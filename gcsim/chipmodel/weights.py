"""Weights files of the chip model: one .npz with the parameters, the model config, the
vocabulary and how it was trained. The shipped pair lives in gcsim/data/."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GcsimError
from ..readback import integer, mapping, one_of, text, validate
from ..safefile import open_regular
from .data import DATA_DIR
from .model import ModelConfig, init_params

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


MAX_WEIGHTS_BYTES = 1 << 30        # the shipped files are ~1 MB
MAX_PARAMETERS = 50_000_000        # what the numpy forward pass of this model handles
_CONFIG = mapping({"vocab": integer(1, 1 << 16), "layers": integer(1, 64), "heads": integer(1, 64),
                   "d_head": integer(1, 1024), "context": integer(1, 1 << 16),
                   "attention": one_of("softmax", "linear", "cubic"), "hardware": text(max_len=200)})
_HEADER = mapping({"config": _CONFIG, "vocab": text(max_len=1 << 16)}, {"meta": mapping({}, extra=True)})


def load_weights(name_or_path) -> ChipWeights:
    """'chip' or 'softmax' (the shipped weights) or a path to a weights file. Anything that
    is not a whole weights file gcsim wrote (not a zip, a member larger than its cap, a header
    that breaks the schema, parameters of the wrong names, shapes or values) is refused with
    one message naming the file."""
    path = SHIPPED.get(str(name_or_path), Path(name_or_path))
    if not path.exists():
        raise FileNotFoundError(f"{path}: chip-model weights not found (shipped: {', '.join(SHIPPED)})")

    def refuse(why):
        return GcsimError(f"{path}: not a chip-model weights file ({why})")
    f = open_regular(path, "chip-model weights file", MAX_WEIGHTS_BYTES, GcsimError)
    try:
        with f:
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise refuse("a single array, not an .npz archive")
            members = {i.filename.removesuffix(".npy"): i.file_size for i in z.zip.infolist()}
            if sum(members.values()) > 4 * MAX_WEIGHTS_BYTES:
                raise refuse("its arrays unpack to more than 4 GiB")
            head = json.loads(str(z["__header__"]))
            validate(head, _HEADER)
            if len(head["vocab"]) != head["config"]["vocab"]:
                raise refuse(f"field 'config.vocab' is {head['config']['vocab']}, the vocabulary has "
                             f"{len(head['vocab'])} characters")
            cfg = ModelConfig(**head["config"])
            if (cfg.vocab + cfg.context + 12 * cfg.layers * cfg.width) * cfg.width > MAX_PARAMETERS:
                raise refuse(f"a model of more than {MAX_PARAMETERS:,} parameters")
            params = {k: z[k] for k in z.files if k != "__header__"}
            z.close()
    except GcsimError as err:
        raise (err if str(err).startswith(str(path)) else refuse(err)) from None
    except Exception as err:  # noqa: BLE001 - zipfile, numpy and json raise many kinds on a corrupt file
        raise refuse(f"{type(err).__name__}: {' '.join(str(err).split())[:200]}") from None
    expected = {k: v.shape for k, v in init_params(cfg, 0).items()}
    found = {k: v.shape for k, v in params.items()}
    if found != expected:
        bad = sorted(set(found) ^ set(expected)) or sorted(k for k in found if found[k] != expected[k])
        raise refuse(f"parameter '{bad[0]}' is missing, unexpected or of the wrong shape for its config")
    for k, v in params.items():
        if v.dtype.kind != "f" or not np.isfinite(v).all():
            raise refuse(f"parameter '{k}' is not a finite float array")
    return ChipWeights(params, cfg, head["vocab"], head.get("meta", {}), path)
