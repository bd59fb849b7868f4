"""API tokens: where they come from and how a request proves it has one.

Tokens come from ``--tokens FILE`` (one per line, ``#`` comments) and/or the environment variable
``INPAINT_STUDIO_TOKENS`` (comma-separated). A request may carry its token the way any of the
imitated APIs does: ``Authorization: Bearer T`` (OpenAI, Replicate), ``x-api-key: T`` (Segmind)
or ``Ocp-Apim-Subscription-Key: T`` (Appypie). Comparison is constant-time (`hmac.compare_digest`
against every token) so response timing reveals nothing about a token's prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path
from typing import Any

from fastapi import Request

from app.server.errors import ApiError, render, style_of

TOKENS_ENV = "INPAINT_STUDIO_TOKENS"
TOKEN_HEADERS = ("x-api-key", "ocp-apim-subscription-key")


class TokenFileError(ValueError):
    """The tokens file cannot be read or holds no token."""


def load_tokens(path: str | os.PathLike[str] | None, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Tokens from the file (if given) plus the environment variable; empty = no auth."""
    tokens: list[str] = []
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(f"--tokens {path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
        tokens += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if not tokens:
            raise TokenFileError(f"--tokens {path} holds no token: write one token per line")
    env = (os.environ if environ is None else environ).get(TOKENS_ENV, "")
    tokens += [t.strip() for t in env.split(",") if t.strip()]
    return tuple(dict.fromkeys(tokens))


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; anything else (0.0.0.0 included) is exposed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def presented_token(request: Request) -> str | None:
    return _token_in(request.headers)


def _token_in(headers: Any) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for name in TOKEN_HEADERS:
        if headers.get(name):
            return headers[name].strip()
    return None


def token_matches(given: str, tokens: tuple[str, ...]) -> bool:
    """Compare against every token (no early exit), each in constant time."""
    given_b = given.encode("utf-8", "surrogatepass")
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given_b, token.encode("utf-8", "surrogatepass"))
    return found


def refusal(given: str | None, tokens: tuple[str, ...]) -> ApiError | None:
    """The 401 for a request carrying ``given``, or None when it may go on."""
    if not tokens:
        return None
    if given is None:
        return ApiError(401, "missing API key: send 'Authorization: Bearer TOKEN' (or x-api-key / "
                             "Ocp-Apim-Subscription-Key)", "Authorization", None, "a token from the server's --tokens file")
    if not token_matches(given, tokens):
        return ApiError(401, "invalid API key", "Authorization", "(hidden)", "a token from the server's --tokens file")
    return None


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the server has no tokens or the request carries one.
    `TokenGate` has already refused such a request before its body was read; this stays on the
    routers so a router mounted elsewhere is never open."""
    error = refusal(presented_token(request), request.app.state.config.tokens)
    if error is not None:
        raise error


def owner_of(request: Request) -> str | None:
    """The caller as a tenant: a digest of its token (the token itself is never stored), or None
    on a server without tokens, where every client is the one local user and sees every job."""
    if not request.app.state.config.tokens:
        return None
    given = presented_token(request) or ""
    return hashlib.sha256(given.encode("utf-8", "surrogatepass")).hexdigest()[:32]


#: Paths answered without a token: liveness and readiness probes, outputs (capability URLs) and the API page.
PUBLIC_PATHS = ("/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json")
PUBLIC_PREFIXES = ("/files/",)


class TokenGate:
    """Pure ASGI middleware: a request without a valid token gets its 401 before one byte of its
    body is read or parsed (a route's body model is parsed before its dependencies run, so a
    dependency alone let 130 MB bodies and JSON bombs in first)."""

    def __init__(self, app: Any, tokens: tuple[str, ...]):
        self.app, self.tokens = app, tokens

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and self.tokens and not (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            error = refusal(_token_in(headers), self.tokens)
            if error is not None:
                return await render(error, style_of(path))(scope, receive, send)
        await self.app(scope, receive, send)
