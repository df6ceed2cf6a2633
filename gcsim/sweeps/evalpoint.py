"""The `eval` mode of a sweep: each point evaluates a language model with the chip of the
point's description in its loop, through the code of `gcsim eval` (gcsim.llm.evaluate), and
gives perplexity, top-1 agreement and KL next to the chip's latency and energy per token.

    mode: eval
    eval:
      lm: chip              # chip (default) | softmax | smollm2 | a chip-model weights file
      text: story.txt       # UTF-8 file (relative to the spec); default: the held-out 10 % of tiny Shakespeare
      start: 0              # first character of the excerpt
      chars: 2000           # excerpt length in characters (default: to the end of the text)
      window: 64            # tokens per window, each from an empty state (default: min(256, context))
      windows: 2            # at most this many windows (default: every whole window of the excerpt)
      chip: simulator       # simulator (functional, in the loop: accuracy and cost) | reference (accuracy only)
      chip_layers: all      # or a list of layer numbers (the others run the model's own attention)
      scalers: learned      # learned | prompt | a .gctrace (default: learned if the model has them)

The settings are checked when the spec is loaded (the model is loaded and the excerpt
tokenized once, so a text too short for one window fails before anything runs). A point's
cache key holds, in place of a trace checksum, the sha256 of the model's weights file, of the
excerpt's characters and of these settings.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

EVAL_KEYS = ("lm", "text", "start", "chars", "window", "windows", "chip", "chip_layers", "scalers")
CHIPS = ("simulator", "reference")
ACCURACY = ("perplexity", "nll", "top1_agreement", "kl", "tokens", "windows")   # table columns, in order


class ModelMismatch(ValueError):
    """A point's description cannot run the model (its shape differs, or several sequences)."""


@dataclass(frozen=True)
class EvalSource:
    """What every point of an eval sweep evaluates (the settings above, resolved), with the
    checksums that go into the cache key."""
    lm: str
    text: str | None
    start: int
    chars: int | None
    window: int
    windows: int | None
    chip: str
    chip_layers: tuple | None
    scalers: str | None
    hardware: str                # the model's own description: the software model runs with it
    model_shape: dict
    weights_sha256: str
    text_sha256: str
    tokens: int

    @property
    def label(self) -> str:
        name = Path(self.text).name if self.text else "held-out tiny-shakespeare"
        end = "" if self.chars is None else self.start + self.chars
        return f"{name}[{self.start}:{end}]"

    def task(self) -> dict:
        """The settings a worker needs (plain data)."""
        d = asdict(self)
        d["chip_layers"] = None if self.chip_layers is None else list(self.chip_layers)
        return d

    def inputs_sha256(self) -> str:
        """Stands for the trace checksum in the cache key: weights, excerpt and settings."""
        return hashlib.sha256(json.dumps(self.task(), sort_keys=True).encode()).hexdigest()

    def for_point(self, point):
        """(no trace path, the inputs' checksum) for a point whose description fits the model."""
        s = point.hardware.shape
        bad = {k: v for k, v in self.model_shape.items() if getattr(s, k) != v}
        if bad:
            raise ModelMismatch(", ".join(f"shape.{k} is {getattr(s, k)}, the model has {v}" for k, v in bad.items()))
        if point.hardware.periphery.sequences != 1:
            raise ModelMismatch(f"periphery.sequences is {point.hardware.periphery.sequences}; the model in the "
                                f"loop drives one sequence")
        return None, self.inputs_sha256()


@lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    from ..llm.weights import file_sha256
    return file_sha256(Path(path))


def weights_sha256(lm) -> str:
    """sha256 of the file the model's weights come from (a chip-model .npz, SmolLM2's GGUF)."""
    if hasattr(lm, "weights"):
        path = Path(lm.weights.path)
    else:
        from ..llm.weights import find_smollm2_gguf
        path = find_smollm2_gguf()
    st = os.stat(path)
    return _file_sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


def excerpt(text: str, start: int, chars: int | None) -> str:
    return text[start:] if chars is None else text[start:start + chars]


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _int(raw, where, fail, low, allow_none=True):
    if raw is None and allow_none:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < low:
        fail(where, f"an integer >= {low}", raw)
    return raw


def parse_eval(raw, source: str, spec_dir: Path, fail) -> EvalSource:
    """Check the spec's `eval` block; fail(field, expected, found) raises the SpecError."""
    from ..llm.evaluate import read_text
    from ..llm.loop import load_loop_model
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        fail("eval", f"a mapping with some of {list(EVAL_KEYS)}", raw)
    unknown = sorted(set(raw) - set(EVAL_KEYS))
    if unknown:
        fail(f"eval.{unknown[0]}", f"one of {list(EVAL_KEYS)}", unknown[0])
    lm_name = raw.get("lm", "chip")
    if not isinstance(lm_name, str):
        fail("eval.lm", "chip, softmax, smollm2 or a chip-model weights file", lm_name)
    if lm_name not in ("chip", "softmax", "smollm2"):
        p = Path(lm_name).expanduser()
        lm_name = str(p if p.is_absolute() else (spec_dir / p).resolve())
    try:
        lm = load_loop_model(lm_name)
    except Exception as exc:   # not found, not a weights file, SmolLM2's package not installed
        raise _spec_error(source, "eval.lm", exc) from None
    text_path = raw.get("text")
    if text_path is not None:
        if not isinstance(text_path, str):
            fail("eval.text", "a path to a UTF-8 text file", text_path)
        p = Path(text_path).expanduser()
        p = p if p.is_absolute() else spec_dir / p
        if not p.is_file():
            raise _spec_error(source, "eval.text", f"{p} not found")
        text_path = str(p.resolve())
    try:
        text = read_text(text_path)
    except ValueError as exc:
        raise _spec_error(source, "eval.text", exc) from None
    start = _int(raw.get("start", 0), "eval.start", fail, 0, allow_none=False)
    chars = _int(raw.get("chars"), "eval.chars", fail, 2)
    if start >= len(text):
        fail("eval.start", f"a character offset below the text's length {len(text)}", start)
    part = excerpt(text, start, chars)
    try:
        ids = lm.encode(part)
    except ValueError as exc:
        raise _spec_error(source, "eval.text", exc) from None
    window = _int(raw.get("window"), "eval.window", fail, 1)
    window = min(256, lm.context) if window is None else window
    if window > lm.context:
        fail("eval.window", f"at most the model's context, {lm.context} tokens", window)
    windows = _int(raw.get("windows"), "eval.windows", fail, 1)
    if len(ids) < window + 1:
        raise _spec_error(source, "eval.chars", f"the excerpt has {len(ids)} tokens; one window of {window} needs "
                                                f"{window + 1}")
    chip = raw.get("chip", "simulator")
    if chip not in CHIPS:
        fail("eval.chip", f"one of {list(CHIPS)}", chip)
    layers = raw.get("chip_layers", "all")
    if layers == "all":
        layers = None
    elif (not isinstance(layers, list) or not layers
          or any(not isinstance(l, int) or isinstance(l, bool) or not 0 <= l < lm.layers for l in layers)):
        fail("eval.chip_layers", f"'all' or a list of layer numbers in 0..{lm.layers - 1}", layers)
    else:
        layers = tuple(sorted(set(layers)))
    scalers = raw.get("scalers")
    if scalers is not None:
        if not isinstance(scalers, str):
            fail("eval.scalers", "learned, prompt or a .gctrace file", scalers)
        if scalers not in ("learned", "prompt"):
            p = Path(scalers).expanduser()
            p = p if p.is_absolute() else spec_dir / p
            if not p.is_file():
                raise _spec_error(source, "eval.scalers", f"trace {p} not found")
            scalers = str(p.resolve())
        elif scalers == "learned" and lm.scalers is None:
            fail("eval.scalers", f"prompt or a trace ({lm.name} has no learned scalers)", scalers)
    shape = {"layers": lm.layers, "heads": lm.heads, "kv_heads": lm.kv_heads, "d_head": lm.d_head}
    return EvalSource(lm=lm_name, text=text_path, start=start, chars=chars, window=window, windows=windows,
                      chip=chip, chip_layers=layers, scalers=scalers, hardware=lm.hardware, model_shape=shape,
                      weights_sha256=weights_sha256(lm), text_sha256=text_sha256(part), tokens=int(len(ids)))


def _spec_error(source, where, exc):
    from .spec import SpecError
    return SpecError(f"{source}: field '{where}': {' '.join(str(exc).split())}")


def merge_windows(per_window: list[dict]) -> dict:
    """One row of cost columns from the report rows of several windows of equal length:
    counts and times summed, maxima the max, throughput over the whole, the rest the mean
    (every window has the same number of steps and full-window steps, so a mean of per-window
    means is the mean over all tokens)."""
    if len(per_window) == 1:
        return dict(per_window[0])
    out = {}
    for col in per_window[0]:
        vals = [m.get(col, 0.0) for m in per_window]
        if col in ("steps", "full_window_steps", "elapsed_ns"):
            out[col] = sum(vals)
        elif col in ("sequences", "area_mm2", "gain_cells", "gain_cells_mm2"):
            out[col] = vals[0]
        elif col.endswith("_max"):
            out[col] = max(vals)
        else:
            out[col] = sum(vals) / len(vals)
    if out.get("elapsed_ns"):
        out["throughput_tokens_per_s"] = out["steps"] * out["sequences"] / (out["elapsed_ns"] * 1e-9)
    return out


def eval_metrics(task: dict) -> dict:
    """The table columns of one eval point (raises on failure): the accuracy of the chip
    variant over the windows against the model as trained, and with the simulator the cost
    columns of the other modes."""
    from ..hardware import from_dict, load_hardware
    from ..llm.evaluate import Variant, evaluate, read_text, resolve_scalers
    from ..llm.loop import load_loop_model, model_hardware
    from ..report import build_report
    from .point import report_metrics
    e = task["eval"]
    lm = load_loop_model(e["lm"])
    if weights_sha256(lm) != e["weights_sha256"]:
        raise ValueError(f"the weights of {e['lm']} on this worker differ from those the sweep was planned with")
    part = excerpt(read_text(e["text"]), e["start"], e["chars"])
    if text_sha256(part) != e["text_sha256"]:
        raise ValueError("the evaluation text on this worker differs from the one the sweep was planned with")
    ids = lm.encode(part)
    hw = model_hardware(lm, from_dict(task["description"], source=task.get("label", "<sweep point>")))
    soft_hw = model_hardware(lm, load_hardware(e["hardware"]))       # the model as trained
    scalers, _ = resolve_scalers(e["scalers"], lm, hw, ids[:e["window"]])
    layers = None if e["chip_layers"] is None else tuple(e["chip_layers"])
    variant = Variant(e["chip"], e["chip"], hw.numerics.cell_law, layers)
    sims: list = []
    res = evaluate(lm, ids, hw, [variant], window=e["window"], scalers=scalers, max_windows=e["windows"],
                   progress=False, soft_hw=soft_hw, sim_results=sims)
    row = res["rows"][0]
    metrics = {k: row[k] for k in ACCURACY if k in row}
    metrics["windows"] = res["windows"]
    if sims:
        metrics.update(merge_windows([report_metrics(build_report(r, values=True)) for r in sims]))
    return metrics
