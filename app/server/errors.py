"""One error type for every route, rendered in the body shape each API's clients expect.

A bad request is answered with a 4xx JSON body that names the field, the value and what is
allowed; the *shape* of that body follows the API the route imitates, so the official clients
raise their own error types with our message in them (openai: ``error.message``; replicate:
RFC 7807 ``detail``; Segmind/Appypie/A1111: ``error``)."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)
OPENAI, REPLICATE, PLAIN = "openai", "replicate", "plain"

#: HTTP status → OpenAI's error ``type`` (what its SDK maps to exception classes).
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found",
                 413: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable"}


@dataclass
class ApiError(Exception):
    """A request we refuse (4xx) or could not serve (5xx)."""

    status: int
    message: str
    field: str | None = None
    value: Any = None
    allowed: str | None = None
    headers: dict[str, str] | None = None

    def __str__(self) -> str:
        return self.message


def bad_field(field: str, value: Any, allowed: str, status: int = 400) -> ApiError:
    """The usual 400: ``field = value is not valid: allowed``."""
    return ApiError(status, f"{field} = {_short(value)} is not valid: {allowed}", field, _short(value), allowed)


def _short(value: Any) -> Any:
    """Echo small values back; a 60 MB base64 string (or a 20 MB header) is not worth repeating,
    nor is a nested structure (only its type is named)."""
    if isinstance(value, str) and len(value) > 80:
        return value[:60] + f"… ({len(value)} characters)"
    if isinstance(value, float) and not math.isfinite(value):  # JSON has no NaN or Infinity
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'} of {len(value)} items"
    return value


#: An absolute path (POSIX or Windows) not inside a URL: what `scrub_paths` shortens.
_PATH = re.compile(r"(?<![\w:/.~-])(?:~|[A-Za-z]:)?[\\/](?:[^\s'\"<>|\\/]+[\\/])+")


def scrub_paths(text: str) -> str:
    """``text`` with every absolute folder path cut to its last part (``/home/u/models/x.bin`` →
    ``…/x.bin``): messages from the engine name files, and clients must not learn this
    machine's folders."""
    return _PATH.sub("…/", text)


def style_of(path: str) -> str:
    if path.startswith("/v1/images") or path == "/v1/models" or path.startswith("/v1/models/") and not path.endswith("/predictions"):
        return OPENAI
    if path.startswith("/v1/predictions") or path.endswith("/predictions"):
        return REPLICATE
    return PLAIN


def render(error: ApiError, style: str) -> JSONResponse:
    """The error as JSON in ``style``; nothing a client sends can make it unencodable (NaN,
    lone surrogates and nested values never reach here: `_short`, `app.server.shapes`)."""
    if style == OPENAI:
        body: dict[str, Any] = {"error": {"message": error.message, "type": _OPENAI_TYPES.get(error.status, "server_error"),
                                          "param": error.field, "code": error.status}}
    elif style == REPLICATE:
        body = {"title": _title(error.status), "detail": error.message, "status": error.status}
    else:
        body = {"error": error.message}
    if error.field is not None:
        body.update({"field": error.field, "value": error.value, "allowed": error.allowed})
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _title(status: int) -> str:
    return {400: "Invalid input", 401: "Unauthenticated", 403: "Forbidden", 404: "Not found", 413: "Request too large",
            429: "Too many requests"}.get(status, "Server error")


async def api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    return render(exc, style_of(request.url.path))


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own body/form validation (a missing multipart file, a body that is not JSON)."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "header")]
    field = ".".join(loc) or "body"
    msg = first.get("msg", "invalid request")
    return render(ApiError(400, f"{field}: {msg}", field, None, msg), style_of(request.url.path))


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A bug is still answered in the route's JSON shape, without its details (logged instead)."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return render(ApiError(500, f"internal error ({type(exc).__name__}); the server goes on"), style_of(request.url.path))
