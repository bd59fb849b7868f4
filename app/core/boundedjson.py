"""JSON from files we did not write, parsed with a nesting limit.

Python's decoder recurses per level: 100,000 nested brackets in a ComfyUI graph or a
safetensors header raise `RecursionError`, which no ``except ValueError`` catches, and even a
structure just under the interpreter's limit breaks every recursive consumer after it (``repr``,
``json.dumps``, a tree walk). No metadata or model config nests anywhere near `MAX_DEPTH`, so
deeper input is refused as one `ValueError` like any other malformed JSON. Linear time: the
decoder runs once and the depth is measured with an explicit stack.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class JsonTooDeep(ValueError):
    """The JSON nests deeper than allowed (a crafted file, not metadata)."""


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` that raises `ValueError` (never `RecursionError`) for over-deep input."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if depth(value, limit=max_depth) > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    return value


def depth(value: Any, *, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of decoded JSON (a scalar is 0), counted up to ``limit + 1``."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level) for child in children if isinstance(child, (dict, list)))
    return deepest
