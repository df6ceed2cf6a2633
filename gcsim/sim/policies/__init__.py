"""Policies: plug-in classes chosen by name in a description (`NAME` or `{impl: NAME,
...params}`), each registered under a kind and validating its own parameters.

Kinds and the shipped choices:
- `gqa` (periphery.gqa_mapping): time_multiplexed | pipelined | replicated (gqa.py);
- `counters` (periphery.counters): turns | double_buffered (counters.py);
- `refresh` (numerics.retention.refresh): none | periodic (refresh.py);
- `issue` (periphery.issue): serial | overlap_write (issue.py);
- `batching` (periphery.batching): per_sequence | lockstep (batching.py);
- `admission` (periphery.admission): fcfs | shortest_first (admission.py).

A new policy is a small class with `PARAMS` (name -> (type, default, check text or None))
decorated with `@register(kind, name)`; see docs/architecture.md.
"""
from __future__ import annotations

REGISTRY: dict[str, dict[str, type]] = {"gqa": {}, "counters": {}, "refresh": {}, "issue": {}, "batching": {}, "admission": {}}


def register(kind: str, name: str):
    def deco(cls):
        cls.NAME, cls.KIND = name, kind
        REGISTRY[kind][name] = cls
        return cls
    return deco


class Policy:
    """Base: parameters from `PARAMS` = {name: (type, default, check or None)}."""
    NAME = KIND = ""
    PARAMS: dict = {}

    def __init__(self, hw, **params):
        self.hw = hw
        for key, (_, default, _) in self.PARAMS.items():
            setattr(self, key, params.get(key, default))

    @classmethod
    def check_params(cls, params: dict) -> str | None:
        for key, val in params.items():
            if key not in cls.PARAMS:
                return f"policy {cls.NAME!r} has no parameter {key!r}; expected some of {sorted(cls.PARAMS)}"
            tp, _, check = cls.PARAMS[key]
            if tp is float and isinstance(val, int) and not isinstance(val, bool):
                val = float(val)
            if not isinstance(val, tp) or isinstance(val, bool) and tp is not bool:
                return f"policy {cls.NAME!r} parameter {key!r}: expected {tp.__name__}, found {val!r}"
            if check is not None and not check[0](val):
                return f"policy {cls.NAME!r} parameter {key!r}: value {val!r} is out of range (expected {check[1]})"
        return None


def check_policy(kind: str, choice) -> str | None:
    """None if `choice` (a hardware.Policy) names a registered policy with valid parameters."""
    _load()
    cls = REGISTRY[kind].get(choice.impl)
    if cls is None:
        return f"expected one of {sorted(REGISTRY[kind])}, found {choice.impl!r}"
    return cls.check_params(choice.params)


def names(kind: str) -> list[str]:
    _load()
    return sorted(REGISTRY[kind])


def make(kind: str, choice, hw):
    _load()
    return REGISTRY[kind][choice.impl](hw, **choice.params)


def _load():
    from . import admission, batching, counters, gqa, issue, refresh  # noqa: F401  (registers the shipped policies)
