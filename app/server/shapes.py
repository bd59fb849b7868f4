"""Small parsing helpers the API modules share: typed JSON fields and a JSON body that is an object."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

from fastapi import Request

from app.server.errors import ApiError, bad_field


#: How deeply a JSON body may nest: the deepest shape any route takes is 3 (``input`` of a
#: prediction holding a list); 32 leaves room for clients' extras without letting a 100,000-deep
#: array reach a recursive walk.
MAX_JSON_DEPTH = 32
#: Bodies larger than this are parsed on a worker thread.
OFF_LOOP_BYTES = 1 << 20


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400 in the route's shape: not JSON, nested deeper than
    `MAX_JSON_DEPTH`, NaN/Infinity (no JSON number; the error echo could not encode it), or text
    with a lone surrogate (no UTF-8; it would fail only after the job ran). Its size is already
    bounded by `app.server.app.BodyLimit`."""
    raw = await request.body()
    if len(raw) > OFF_LOOP_BYTES:  # tens of MB of base64 would stall every other request
        return await asyncio.to_thread(parse_json_object, raw)
    return parse_json_object(raw)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        raise ApiError(400, f"the request body is not valid JSON ({_reason(exc)})", "body", None, "a JSON object") from None
    if not isinstance(body, dict):
        raise bad_field("body", type(body).__name__, "a JSON object")
    _check_tree(body)
    return body


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text[:40]} is beyond a double")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _reason(exc: ValueError) -> str:
    return str(exc)[:120]


def _too_deep() -> ApiError:
    return ApiError(400, f"the request body nests deeper than {MAX_JSON_DEPTH} levels", "body", None,
                    f"JSON nested at most {MAX_JSON_DEPTH} deep")


def _check_tree(root: Any) -> None:
    """Depth and text of every value, without recursion (the walk itself must not overflow)."""
    stack = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _too_deep()
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "the request body holds text with a lone surrogate (\\ud800–\\udfff not in a pair), "
                            "which is not Unicode text", "body", None, "valid Unicode text") from None


def _optional(body: dict[str, Any], key: str, default: Any, fits: Callable[[Any], bool], what: str) -> Any:
    """``body[key]`` if present and ``fits``, ``default`` if absent or null; else a 400 naming it."""
    value = body.get(key)
    if value is None:
        return default
    if not fits(value):
        raise bad_field(key, value, what)
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def optional_int(body: dict[str, Any], key: str, default: Any = None) -> int | None:
    value = _optional(body, key, default, lambda v: _number(v) and float(v).is_integer(), "a whole number")
    return None if value is None else int(value)


def optional_float(body: dict[str, Any], key: str, default: Any = None) -> float | None:
    value = _optional(body, key, default, _number, "a number")
    return None if value is None else float(value)


def optional_str(body: dict[str, Any], key: str, default: Any = None) -> str | None:
    return _optional(body, key, default, lambda v: isinstance(v, str), "text")


def in_range(key: str, value: float | None, lo: float, hi: float) -> None:
    """A range an API documents more narrowly than GenerationParams (e.g. Segmind's steps 20–100)."""
    if value is not None and not lo <= value <= hi:
        raise bad_field(key, value, f"must be from {lo:g} to {hi:g}")


def one_of(key: str, value: Any, allowed: tuple) -> None:
    if value is not None and value not in allowed:
        raise bad_field(key, value, "one of " + ", ".join(str(a) for a in allowed))


def required(body: dict[str, Any], key: str, kind: type = object, what: str = "required") -> Any:
    """``body[key]``: present, not empty, and a ``kind``; else a 400 naming the field."""
    value = body.get(key)
    if value is None or (isinstance(value, (str, list)) and not value) or not isinstance(value, kind):
        raise bad_field(key, value, what)
    return value
