"""`gcsim describe`: a hardware description as gcsim resolves it, or the reference of its fields.

    gcsim describe MODEL [--set FIELD=VALUE ...]   the description with its `extends:` chain
                                                   and any --set applied, validated, as YAML
    gcsim describe --fields [--markdown]           every field: type, unit, allowed range,
                                                   default, meaning (docs/description-fields.md)

The field reference is generated from the dataclasses in gcsim/hardware.py, the same
definitions that validate a description, so it cannot drift from what gcsim accepts.
"""
from __future__ import annotations

import dataclasses
import typing

import yaml

from ..errors import UsageError
from ..hardware import Hardware, Link, load_hardware, parse_overrides, to_dict
from ..progress import add_feedback, say
from .common import add_overrides


def register(sub):
    p = sub.add_parser("describe", help="print a resolved hardware description, or the reference of its fields",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="a name in models/ or a YAML path")
    p.add_argument("--fields", action="store_true", help="print every field with unit, range and default")
    p.add_argument("--markdown", action="store_true", help="with --fields: a Markdown table (docs/)")
    add_overrides(p)
    add_feedback(p)       # the same options as every command (describe has no progress bar)
    p.set_defaults(func=main)


def _type_text(tp) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        inner = [a for a in args if a is not type(None)]
        return f"{_type_text(inner[0])} or null"
    if origin is tuple:
        return f"[{', '.join(_type_text(a) for a in args)}]"
    if origin is dict:
        return f"mapping of {_type_text(args[1])}"
    if origin is list:
        return "list"
    return getattr(tp, "__name__", str(tp))


def _default_text(f) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if dataclasses.is_dataclass(value):
            return "(section)"
    else:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, tuple):
        return str(list(value))
    return "{}" if value == {} else str(value)


def field_rows(cls=Hardware, prefix: str = "") -> list[dict]:
    """One row per field of the description, sections expanded, in file order."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "source":
            continue
        path = f"{prefix}{f.name}"
        tp = hints[f.name]
        meta = f.metadata
        rng = meta.get("range") or meta.get("value_range")
        allowed = rng.text() if rng else ""
        if meta.get("choices"):
            allowed = " | ".join(meta["choices"])
        if rng is not None and typing.get_origin(tp) in (typing.Union, type(int | None)):
            allowed += " (or null)"
        if meta.get("value_range"):
            allowed = "each value " + allowed
        if meta.get("policy"):  # a plug-in choice: NAME or {impl: NAME, ...params}
            from ..sim.policies import names
            rows.append({"field": path, "type": "policy", "unit": "", "allowed": " | ".join(names(meta["policy"])),
                         "default": str(_default_text(f)), "meaning": meta.get("doc", "")})
            continue
        if dataclasses.is_dataclass(tp):
            rows.append({"field": path, "type": "section", "unit": "", "allowed": "", "default": "",
                         "meaning": meta.get("doc", tp.__doc__.splitlines()[0] if tp.__doc__ else "")})
            rows.extend(field_rows(tp, path + "."))
            continue
        if path == "interconnect.links":
            rows.append({"field": path, "type": "mapping of sections", "unit": "", "allowed":
                         "keys host_to_controller, bank_to_host", "default": "{}", "meaning": meta.get("doc", "")})
            rows.extend(field_rows(Link, path + ".NAME."))
            continue
        rows.append({"field": path, "type": _type_text(tp), "unit": rng.unit if rng else "",
                     "allowed": allowed, "default": _default_text(f), "meaning": meta.get("doc", "")})
    return rows


def format_fields(markdown: bool = False) -> str:
    rows = field_rows()
    cols = ("field", "type", "allowed", "default", "meaning")
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            lines.append("| " + " | ".join(f"`{r[c]}`" if c == "field" else r[c].replace("|", "\\|")
                                           for c in cols) + " |")
        return "\n".join(lines)
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols[:-1]}
    lines = ["  ".join(c.ljust(width[c]) for c in cols[:-1]) + "  meaning"]
    for r in rows:
        lines.append("  ".join(r[c].ljust(width[c]) for c in cols[:-1]) + "  " + r["meaning"])
    return "\n".join(lines)


def format_description(hw: Hardware) -> str:
    data = to_dict(hw)
    source = data.pop("source")
    data = _plain(data)
    return f"# resolved from {source}\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def main(args) -> int:
    if args.fields:
        if args.model or args.set:
            raise UsageError("describe --fields takes no MODEL or --set")
        say(args, format_fields(args.markdown))
        return 0
    if not args.model:
        raise UsageError("describe: give a MODEL (a name in models/ or a YAML path), or --fields")
    hw = load_hardware(args.model)
    changes = parse_overrides(args.set)
    say(args, format_description(hw.derive(**changes) if changes else hw).rstrip("\n"))
    return 0
