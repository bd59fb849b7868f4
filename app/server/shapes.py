"""Small parsing helpers the API modules share: typed JSON fields and a JSON body that is an object."""

from __future__ import annotations

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


def optional_int(body: dict[str, Any], key: str, default: Any = None) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
        raise bad_field(key, value, "a whole number")
    return int(value)


def optional_float(body: dict[str, Any], key: str, default: Any = None) -> float | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_field(key, value, "a number")
    return float(value)


def optional_str(body: dict[str, Any], key: str, default: Any = None) -> str | None:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_field(key, value, "text")
    return value


def in_range(key: str, value: float | None, lo: float, hi: float) -> None:
    """A range an API documents more narrowly than GenerationParams (e.g. Segmind's steps 20–100)."""
    if value is not None and not lo <= value <= hi:
        raise bad_field(key, value, f"must be from {lo:g} to {hi:g}")


def one_of(key: str, value: Any, allowed: tuple) -> None:
    if value is not None and value not in allowed:
        raise bad_field(key, value, "one of " + ", ".join(str(a) for a in allowed))


def required(body: dict[str, Any], key: str) -> Any:
    if body.get(key) in (None, ""):
        raise bad_field(key, body.get(key), "required")
    return body[key]
