"""The one YAML loader for user input (descriptions, --set values): safe and bounded.

On top of PyYAML's SafeLoader: a size limit, a nesting-depth limit (deep nesting would
exhaust Python's recursion), a limit on the size of the document once aliases are
expanded (a "billion laughs" file is a few hundred bytes that expand to gigabytes), and
duplicate or unhashable mapping keys are errors instead of "the last one wins". Error
messages give the line and column and never quote the file's content (the file may not be
a gcsim file at all, e.g. `-m /etc/shadow`).
"""
from __future__ import annotations

import yaml

MAX_BYTES = 1 << 20        # a description is a few kB
MAX_DEPTH = 32             # descriptions nest 4 levels deep
MAX_EXPANDED_NODES = 100_000  # nodes after alias expansion
MAX_INT_BITS = 256         # no field holds a larger integer; Python cannot even print one of 4300 digits


class YamlLimitError(ValueError):
    """The text breaks a limit of the safe loader or is not valid YAML; message has no content."""


class _Loader(yaml.SafeLoader):
    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimitError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):
        try:
            value = super().construct_object(node, deep=deep)
            if type(value) is int and value.bit_length() > MAX_INT_BITS:
                raise YamlLimitError(f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}: "
                                     f"an integer of more than {MAX_INT_BITS} bits")
            return value
        except YamlLimitError:
            raise
        except (ValueError, OverflowError) as exc:   # e.g. an integer of more than 4300 digits, a bad date
            what = "an integer of more digits than Python reads" if "digits" in str(exc) else \
                f"a value that cannot be read ({_short(exc, 80)})"
            raise YamlLimitError(f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}: {what}") \
                from None

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # `<<` merge keys
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise YamlLimitError(f"line {key_node.start_mark.line + 1}: a mapping key must be a plain "
                                     "value, found a list or mapping") from None
            if key in seen:
                raise YamlLimitError(f"line {key_node.start_mark.line + 1}: duplicate key '{_short(key)}' "
                                     f"(first at line {seen[key] + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)


def _short(value, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _expanded_size(node, memo: dict, budget: int) -> int:
    """Nodes in the document with every alias expanded; stops counting past `budget`."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = budget + 1  # a cycle (recursive alias) counts as over budget
    size = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        size += _expanded_size(child, memo, budget)
        if size > budget:
            break
    memo[key] = size
    return size


def load(text: str | bytes):
    """Parse YAML text within the limits; raises YamlLimitError (no content in the message)."""
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"larger than {MAX_BYTES // 1024} KiB ({len(text)} bytes)")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlLimitError(f"not UTF-8 text (byte {exc.start})") from None
    loader = None
    try:
        loader = _Loader(text)  # the reader rejects control characters here
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
            raise YamlLimitError(f"more than {MAX_EXPANDED_NODES} values once its aliases are expanded")
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise YamlLimitError(f"not valid YAML: {where}{exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        raise YamlLimitError(f"not valid YAML: character #x{exc.character:04x} at position {exc.position} "
                             "is not allowed") from None
    except yaml.YAMLError:
        raise YamlLimitError("not valid YAML") from None
    except RecursionError:  # a recursive alias reached the constructor
        raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()
