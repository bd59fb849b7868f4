"""Small parsing helpers the API modules share: typed JSON fields and a JSON body that is an object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from app.server.errors import ApiError, bad_field


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "the request body is not valid JSON", "body", None, "a JSON object") from None
    if not isinstance(body, dict):
        raise bad_field("body", type(body).__name__, "a JSON object")
    return body


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
