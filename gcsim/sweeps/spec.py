"""Sweep descriptions: a YAML file that names a base hardware description, traces, a mode and
axes over description fields, expanded into points (docs/sweep.md has the schema).

    hardware: paper-gpt2              # name in models/ or a path (relative to the spec file)
    set: {numerics.retention.mode: "off"}   # fixed changes for every point, as --set
    traces: [{path: long.gctrace}, {synthetic: {steps: 1200, seed: 0}}]
    mode: timing-only                 # timing-only | functional | validate | eval (then `eval:`, no traces)
    steps: 300                        # optional: replay only the first N steps
    seed: 0
    axes:                             # blocks combined as a Cartesian product
      - grid: {shape.window: [256, 1024], numerics.cell_law: [linear, cubic]}
      - zip: {interconnect.links.bank_to_host.gbps: [16, 64], timing.host_ns_per_layer: [0, 50]}
      - random: {samples: 4, seed: 1, fields: {numerics.s_sat: {uniform: [40, 160]}}}
    constraints:
      - require: shape.window % shape.array_size == 0
        reason: the window must be a whole number of sub-tiles

Everything here is checked when the spec is loaded (SpecError names the file and field);
a point whose description the validator rejects is skipped with the validator's message.
"""
from __future__ import annotations

import ast
import copy
import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import safeyaml
from . import expression
from ..errors import GcsimError, HardwareError
from ..hardware import derived, load_hardware, to_dict
from ..safefile import read_bytes

MODES = ("timing-only", "functional", "validate", "eval")
TOP_KEYS = ("name", "description", "hardware", "set", "traces", "mode", "steps", "seed", "eval", "axes",
            "constraints")
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
MAX_POINTS = 10_000      # points of one spec (axes x traces), counted before they are expanded;
                         # planning one (its description built and validated) takes 5-20 ms


class SpecError(GcsimError):
    """A sweep description is malformed; the message names the file and field."""


@dataclass(frozen=True)
class TraceSource:
    """One trace of the sweep: a file, or synthetic settings (shape taken from each point's
    description, so a swept shape gets a trace that fits)."""
    path: str | None = None
    synthetic: dict | None = None

    @property
    def label(self) -> str:
        if self.path is not None:
            return Path(self.path).name
        s = self.synthetic
        return f"synthetic(steps={s['steps']}, seed={s['seed']})"


@dataclass
class Point:
    """One simulation of the sweep: the swept values (dotted field -> value), its trace and,
    once planned, its description or the reason it is skipped."""
    index: int
    values: dict
    trace: int
    hardware: object = None      # gcsim.hardware.Hardware after the overrides, or None if skipped
    skip_reason: str | None = None


@dataclass
class SweepSpec:
    source: str
    data: dict                               # the spec as loaded (for the provenance JSON)
    hardware: object                         # base description with `set` applied
    traces: list                             # TraceSource; in eval mode the one EvalSource
    mode: str
    steps: int | None
    seed: int
    axes: list[dict]                         # [{field: [values...]}...] after expansion
    constraints: list[tuple[str, str, ast.Expression]] = field(default_factory=list)
    eval: object = None                      # gcsim.sweeps.evalpoint.EvalSource in eval mode

    @property
    def fields(self) -> list[str]:
        """Swept fields in spec order."""
        out = []
        for block in self.axes:
            out += [f for f in block if f not in out]
        return out

    def combos(self) -> list[dict]:
        """Every combination of the axis blocks (each block a list of {field: value} rows)."""
        rows = [{}]
        for block in self.axes:
            n = len(next(iter(block.values()))) if block else 0
            block_rows = [{f: vals[i] for f, vals in block.items()} for i in range(n)]
            rows = [{**a, **b} for a, b in itertools.product(rows, block_rows)]
        return rows

    def points(self, planned_one=None) -> list[Point]:
        """All points: every axis combination for every trace, constraints applied and each
        description built and validated (skipped points carry the reason). planned_one() is
        called after each combination (a progress bar: 10,000 take seconds)."""
        base = to_dict(self.hardware)
        planned = []
        for values in self.combos():                       # once, whatever the traces
            planned.append((values, *self._plan(values, base)))
            if planned_one is not None:
                planned_one()
        out = []
        for t in range(len(self.traces)):
            for values, hardware, reason in planned:
                out.append(Point(len(out), dict(values), t, hardware, reason))
        return out

    def _plan(self, values: dict, base: dict):
        """(description, None) for one combination of axis values, or (None, why it is skipped)."""
        reason = self.violated(values, base)
        if reason is not None:
            return None, reason
        try:
            return derived(self.hardware, nested(values), base), None
        except HardwareError as exc:
            msg = str(exc)       # without the "<file> (derived): " the user did not write
            head = msg.find(" (derived): ")
            return None, f"invalid description: {msg[head + len(' (derived): '):] if head >= 0 else msg}"

    def violated(self, values: dict, base: dict | None = None) -> str | None:
        """The reason of the first constraint the point breaks, or None (base: the base
        description as to_dict gives it, when the caller has it already)."""
        base = to_dict(self.hardware) if base is None else base
        for text, reason, expr in self.constraints:
            if not _eval(expr, lambda name: lookup(name, values, base), self.source, text):
                return reason
        return None


def nested(flat: dict) -> dict:
    """{'a.b': 1} -> {'a': {'b': 1}} (the form Hardware.derive takes)."""
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(value)
    return out


_MISSING = object()


def _walk(node, parts):
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def lookup(name: str, values: dict, base: dict):
    """A dotted field's value at a point: the swept value if swept (or inside a swept
    mapping), else the base description's."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in values:
            found = _walk(values[key], parts[i:])
            if found is not _MISSING:
                return found
    found = _walk(base, parts)
    if found is _MISSING:
        raise KeyError(name)
    return found


# --- constraints (gcsim/sweeps/expression.py: the bounded evaluator) --------------------------

def _eval(tree, resolve, source, text):
    """Evaluate a parsed constraint; `resolve(dotted_name)` gives a field's value."""
    try:
        return expression.evaluate(tree, resolve)
    except expression.ExpressionError as exc:
        raise SpecError(f"{source}: constraint {text!r}: {exc}") from None


# --- loading -------------------------------------------------------------------------------

def _fail(source, where, expected, found):
    raise SpecError(f"{source}: field '{where}': expected {expected}, found {found!r}")


def _check_field(name, base: dict, source: str, where: str):
    """A swept or set field must name a field of the description (a new key is allowed only
    inside a mapping field such as interconnect.links)."""
    if not isinstance(name, str) or not name:
        _fail(source, where, "a dotted field name such as shape.window", name)
    parts = name.split(".")
    node = base
    for i, part in enumerate(parts):
        if not isinstance(node, dict):
            break
        if part not in node:
            parent = ".".join(parts[:i])
            if i > 0 and _MAPPING_FIELDS.intersection({parts[i - 1]}):
                return
            known = sorted(k for k in node if k != "source")
            raise SpecError(f"{source}: field '{where}': '{name}' is not a field of the description"
                            f"{' (under ' + parent + ')' if parent else ''}; expected one of {known}")
        node = node[part]


_MAPPING_FIELDS = {"phases_ns", "actions_pj", "static_mw", "items", "links"}


def _finite(x) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:                     # an int beyond any float
        return False


def _sample(rng, dist: dict, n: int, source: str, where: str) -> list:
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        _fail(source, where, f"one of {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}, "
                             f"{{randint: [lo, hi]}} (inclusive), {{choice: [values...]}}", dist)
    kind, arg = next(iter(dist.items()))
    if not isinstance(arg, list) or not arg:
        _fail(source, f"{where}.{kind}", "a non-empty list", arg)
    if kind == "choice":
        return [copy.deepcopy(arg[i]) for i in rng.integers(0, len(arg), n)]
    if kind == "randint":
        if len(arg) != 2 or not all(type(a) is int for a in arg) or not -2**62 <= arg[0] <= arg[1] <= 2**62:
            _fail(source, f"{where}.{kind}", "[lo, hi]: two integers with lo <= hi, within +-2**62", arg)
        return [int(x) for x in rng.integers(arg[0], arg[1] + 1, n)]
    if len(arg) != 2 or not all(type(a) in (int, float) and _finite(a) for a in arg) or not arg[0] < arg[1] \
            or not _finite(float(arg[1]) - float(arg[0])) or (kind == "loguniform" and arg[0] <= 0):
        _fail(source, f"{where}.{kind}", "[lo, hi]: finite numbers with lo < hi"
              + (" and lo > 0" if kind == "loguniform" else " (hi - lo finite too)"), arg)
    lo, hi = float(arg[0]), float(arg[1])
    if kind == "uniform":
        return [float(x) for x in rng.uniform(lo, hi, n)]
    import numpy as np
    return [float(x) for x in np.exp(rng.uniform(np.log(lo), np.log(hi), n))]


def _check_count(n: int, source: str, what: str) -> None:
    """Refuse a sweep larger than MAX_POINTS from the axes' lengths, before expanding it."""
    if n > MAX_POINTS:
        raise SpecError(f"{source}: the sweep has {n:,} points ({what}), more than the {MAX_POINTS:,} one spec may "
                        f"hold; split it into several specs (they share the cache)")


def _axes(raw, base: dict, seed: int, source: str) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        _fail(source, "axes", "a list of blocks (grid, zip or random)", raw)
    blocks = []
    seen: set = set()
    total = 1
    for i, block in enumerate(raw):
        where = f"axes[{i}]"
        if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in ("grid", "zip", "random"):
            _fail(source, where, "a mapping with one key: grid, zip or random", block)
        kind, body = next(iter(block.items()))
        where = f"{where}.{kind}"
        if not isinstance(body, dict) or not body:
            _fail(source, where, "a non-empty mapping", body)
        if kind == "random":
            extra = sorted(set(body) - {"samples", "seed", "fields"})
            if extra:
                _fail(source, where, "keys samples, seed, fields", extra)
            n, fields = body.get("samples"), body.get("fields")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                _fail(source, f"{where}.samples", "a positive integer", n)
            total *= n
            _check_count(total, source, f"up to {where}")
            if not isinstance(fields, dict) or not fields:
                _fail(source, f"{where}.fields", "a mapping of field: distribution", fields)
            rseed = body.get("seed", seed)
            if not isinstance(rseed, int) or isinstance(rseed, bool) or rseed < 0:
                _fail(source, f"{where}.seed", "a non-negative integer", rseed)
            import numpy as np
            rng = np.random.default_rng(rseed)
            values = {f: _sample(rng, d, n, source, f"{where}.fields.{f}") for f, d in fields.items()}
        else:
            values = {}
            for f, vals in body.items():
                if not isinstance(vals, list) or not vals:
                    _fail(source, f"{where}.{f}", "a non-empty list of values", vals)
                values[f] = vals
            if kind == "zip" and len({len(v) for v in values.values()}) > 1:
                lens = {f: len(v) for f, v in values.items()}
                raise SpecError(f"{source}: field '{where}': zipped lists must have the same length, found {lens}")
            total *= len(next(iter(values.values()))) if kind == "zip" else math.prod(len(v) for v in values.values())
            _check_count(total, source, f"up to {where}")
            if kind == "grid":
                combos = list(itertools.product(*values.values()))
                values = {f: [c[j] for c in combos] for j, f in enumerate(values)}
        for f in values:
            _check_field(f, base, source, f"{where}.{f}")
            if f in seen:
                raise SpecError(f"{source}: field '{where}.{f}': swept twice (in two axis blocks)")
            seen.add(f)
        blocks.append(values)
    return blocks


def _traces(raw, source: str, spec_dir: Path) -> list[TraceSource]:
    if raw is None:
        from ..resources import DEFAULT_TRACE
        return [TraceSource(path=str(DEFAULT_TRACE))]
    if not isinstance(raw, list) or not raw:
        _fail(source, "traces", "a non-empty list of {path: FILE} or {synthetic: {steps, seed}}", raw)
    out = []
    for i, t in enumerate(raw):
        where = f"traces[{i}]"
        if isinstance(t, str):
            t = {"path": t}
        if not isinstance(t, dict) or len(t) != 1 or next(iter(t)) not in ("path", "synthetic"):
            _fail(source, where, "{path: FILE} or {synthetic: {steps: N, seed: S}}", t)
        if "path" in t:
            p = Path(str(t["path"])).expanduser()
            p = p if p.is_absolute() else spec_dir / p
            if not p.is_file():
                raise SpecError(f"{source}: field '{where}.path': trace {p} not found")
            out.append(TraceSource(path=str(p)))
            continue
        syn = t["synthetic"]
        if not isinstance(syn, dict) or set(syn) - {"steps", "seed", "dtype"} or "steps" not in syn:
            _fail(source, f"{where}.synthetic", "{steps: N, seed: S (default 0), dtype: float16|float32}", syn)
        steps, s_seed = syn["steps"], syn.get("seed", 0)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            _fail(source, f"{where}.synthetic.steps", "a positive integer", steps)
        if not isinstance(s_seed, int) or isinstance(s_seed, bool) or s_seed < 0:
            _fail(source, f"{where}.synthetic.seed", "a non-negative integer", s_seed)
        dtype = syn.get("dtype", "float16")
        if dtype not in ("float16", "float32"):
            _fail(source, f"{where}.synthetic.dtype", "float16 or float32", dtype)
        out.append(TraceSource(synthetic={"steps": steps, "seed": s_seed, "dtype": dtype}))
    return out


def parse_spec(data, source: str = "<in memory>", spec_dir: Path | None = None) -> SweepSpec:
    """Check a spec given as a dict (as read from YAML) and return a SweepSpec."""
    spec_dir = Path.cwd() if spec_dir is None else spec_dir
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, found {type(data).__name__}")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise SpecError(f"{source}: unknown field '{unknown[0]}'; expected some of {list(TOP_KEYS)}")
    mode = data.get("mode", "timing-only")
    if mode not in MODES:
        _fail(source, "mode", f"one of {list(MODES)}", mode)
    evaluation = None
    if mode == "eval":
        for key in ("traces", "steps"):
            if key in data:
                raise SpecError(f"{source}: field '{key}': not used in eval mode (the model makes the q, k, v; "
                                f"the text and its windows are set under 'eval')")
        from .evalpoint import parse_eval
        evaluation = parse_eval(data.get("eval"), source, spec_dir,
                                lambda where, expected, found: _fail(source, where, expected, found))
    elif "eval" in data:
        raise SpecError(f"{source}: field 'eval': only for mode: eval (mode is {mode})")
    hw_name = data.get("hardware", evaluation.hardware if evaluation else "smollm2")
    if not isinstance(hw_name, str):
        _fail(source, "hardware", "a description name or a path", hw_name)
    p = Path(hw_name).expanduser()
    if p.suffix in (".yaml", ".yml") and not p.is_absolute():
        p = spec_dir / p
    try:
        hw = load_hardware(p if p.suffix in (".yaml", ".yml") else hw_name)
    except (HardwareError, FileNotFoundError) as exc:
        raise SpecError(f"{source}: field 'hardware': {exc}") from None
    base = to_dict(hw)
    fixed = data.get("set") or {}
    if not isinstance(fixed, dict):
        _fail(source, "set", "a mapping of field: value", fixed)
    for f in fixed:
        _check_field(f, base, source, f"set.{f}")
    if fixed:
        try:
            hw = hw.derive(**nested(fixed))
        except HardwareError as exc:
            raise SpecError(f"{source}: field 'set': {exc}") from None
        base = to_dict(hw)
    steps = data.get("steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        _fail(source, "steps", "a positive integer (or absent: the whole trace)", steps)
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        _fail(source, "seed", "a non-negative integer", seed)
    traces = [evaluation] if evaluation else _traces(data.get("traces"), source, spec_dir)
    axes = _axes(data.get("axes"), base, seed, source)
    _check_count(math.prod(len(next(iter(b.values()))) for b in axes) * len(traces), source,
                 f"{len(traces)} trace(s) x the axes")
    spec = SweepSpec(source=source, data=data, hardware=hw, traces=traces, mode=mode, steps=steps, seed=seed,
                     axes=axes, eval=evaluation)
    raw = data.get("constraints") or []
    if not isinstance(raw, list):
        _fail(source, "constraints", "a list of {require: EXPRESSION, reason: TEXT}", raw)
    for i, c in enumerate(raw):
        where = f"constraints[{i}]"
        if isinstance(c, str):
            c = {"require": c}
        if not isinstance(c, dict) or "require" not in c or set(c) - {"require", "reason"} \
                or not isinstance(c["require"], str):
            _fail(source, where, "{require: EXPRESSION, reason: TEXT}", c)
        text = c["require"]
        try:
            expr = expression.parse(text)
        except expression.ExpressionError as exc:
            raise SpecError(f"{source}: field '{where}.require': {exc}") from None
        reason = str(c.get("reason") or f"constraint not met: {text}")
        # evaluate once on the first combination: unknown fields and bad syntax fail now
        first = {f: vals[0] for block in spec.axes for f, vals in block.items()}
        _eval(expr, lambda name: lookup(name, first, base), source, text)
        spec.constraints.append((text, reason, expr))
    return spec


def load_spec(spec) -> SweepSpec:
    """A SweepSpec from a path to a YAML file, a dict, or a SweepSpec (returned as is)."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return parse_spec(spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise SpecError(f"spec: expected a YAML path, a dict or a SweepSpec, found {type(spec).__name__}")
    path = Path(spec)
    if not os.path.lexists(path):
        raise SpecError(f"{path}: sweep description not found")
    raw = read_bytes(path, "sweep description", safeyaml.MAX_BYTES, SpecError)
    try:
        data = safeyaml.load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: not a valid sweep description: {' '.join(str(exc).split())}") from None
    return parse_spec(data, source=str(path), spec_dir=path.resolve().parent)
