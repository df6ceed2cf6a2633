"""Constraint expressions of a sweep: a small, safe and bounded language over description fields.

    shape.window % shape.array_size == 0 and periphery.sequences <= 16

Parsed with Python's `ast` and evaluated node by node (never `eval`): fields, numbers,
strings, lists, + - * / // % **, comparisons, and/or/not, in, min/max/abs. Every value is
bounded before it is computed, so no expression can hang, allocate gigabytes or fail
outside ExpressionError: arithmetic takes numbers only (`'a' * 10**10` is refused, not
built), an integer power is refused when its result would pass MAX_INT_BITS (`9 ** 9 ** 9`),
a float overflow (`2.0 ** 10000`) is an error, and the text and its nesting are capped.
"""
from __future__ import annotations

import ast
import math
import operator

MAX_TEXT = 2000          # characters of one expression
MAX_INT_BITS = 256       # integers beyond this are no description's field
MAX_NODES = 2000         # nodes of the parsed expression

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
           ast.NotIn: lambda a, b: a not in b}
_FUNCS = {"min": min, "max": max, "abs": abs}
SUPPORTED = "fields, numbers, + - * / // % **, comparisons, and/or/not, in, min/max/abs"


class ExpressionError(ValueError):
    """The expression is malformed or breaks a bound; the message says which part."""


def parse(text: str) -> ast.Expression:
    """Parse `text` (bounded in length and size); ExpressionError if it is not an expression."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected a string, found {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise ExpressionError(f"longer than {MAX_TEXT} characters ({len(text)})")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{text!r} is not an expression ({exc.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("nested too deeply") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ExpressionError(f"more than {MAX_NODES} terms")
    return tree


def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, complex)


def _bounded(v, what: str):
    if isinstance(v, complex):
        raise ExpressionError(f"{what} is a complex number")
    if isinstance(v, int) and v.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"{what} is an integer of more than {MAX_INT_BITS} bits")
    return v


def _power(a, b, where: str):
    """a ** b, refused before it is computed when an integer result would pass MAX_INT_BITS."""
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        if b * math.log2(abs(a)) > MAX_INT_BITS:
            raise ExpressionError(f"'{where}' would be an integer of more than {MAX_INT_BITS} bits")
    if isinstance(a, float) or isinstance(b, float) or b < 0:
        if abs(float(a)) > 1 and float(b) * math.log2(abs(float(a))) > 1030:
            raise ExpressionError(f"'{where}' is too large for a float")
    return a ** b


def evaluate(tree: ast.AST, resolve):
    """The value of a parsed expression; `resolve(dotted_name)` gives a field's value (raises
    KeyError for an unknown field, turned into ExpressionError here)."""
    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant):
            if not isinstance(n.value, (int, float, str, bool, type(None))):
                raise ExpressionError(f"unsupported constant {ast.unparse(n)[:40]}")
            return _bounded(n.value, "a constant")
        name = _dotted(n)
        if name is not None:
            if name in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[name]
            try:
                return resolve(name)
            except KeyError:
                raise ExpressionError(f"unknown field '{name}'") from None
        if isinstance(n, ast.BoolOp):
            vals = (ev(v) for v in n.values)
            return all(vals) if isinstance(n.op, ast.And) else any(vals)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.Not, ast.USub, ast.UAdd)):
            v = ev(n.operand)
            if isinstance(n.op, ast.Not):
                return not v
            if not _is_number(v):
                raise ExpressionError(f"'{ast.unparse(n)[:60]}': a sign needs a number, found {type(v).__name__}")
            return -v if isinstance(n.op, ast.USub) else +v
        if isinstance(n, ast.BinOp) and type(n.op) in _BINOPS:
            a, b = ev(n.left), ev(n.right)
            where = ast.unparse(n)[:60]
            if not (_is_number(a) and _is_number(b)):
                raise ExpressionError(f"'{where}': arithmetic needs numbers, found {type(a).__name__} and "
                                      f"{type(b).__name__}")
            if isinstance(n.op, ast.Pow):
                return _bounded(_power(a, b, where), f"'{where}'")
            return _bounded(_BINOPS[type(n.op)](a, b), f"'{where}'")
        if isinstance(n, ast.Compare):
            left = ev(n.left)
            for op, comp in zip(n.ops, n.comparators):
                right = ev(comp)
                if type(op) not in _CMPOPS:
                    break
                if not _CMPOPS[type(op)](left, right):
                    return False
                left = right
            else:
                return True
        if isinstance(n, (ast.List, ast.Tuple)):
            return [ev(e) for e in n.elts]
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _FUNCS and not n.keywords \
                and n.args and not any(isinstance(a, ast.Starred) for a in n.args):
            return _FUNCS[n.func.id](*(ev(a) for a in n.args))
        raise ExpressionError(f"unsupported expression '{ast.unparse(n)[:60]}' ({SUPPORTED})")
    try:
        return ev(tree)
    except (TypeError, ZeroDivisionError, OverflowError) as exc:
        raise ExpressionError(str(exc)) from None
    except (RecursionError, MemoryError):
        raise ExpressionError("nested too deeply") from None
