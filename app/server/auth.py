"""API tokens: where they come from and how a request proves it has one.

Tokens come from ``--tokens FILE`` (one per line, ``#`` comments) and/or the environment variable
``INPAINT_STUDIO_TOKENS`` (comma-separated). A request may carry its token the way any of the
imitated APIs does: ``Authorization: Bearer T`` (OpenAI, Replicate), ``x-api-key: T`` (Segmind)
or ``Ocp-Apim-Subscription-Key: T`` (Appypie). Comparison is constant-time (`hmac.compare_digest`
against every token) so response timing reveals nothing about a token's prefix.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path

from fastapi import Request

from app.server.errors import ApiError

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
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for name in TOKEN_HEADERS:
        if request.headers.get(name):
            return request.headers[name].strip()
    return None


def token_matches(given: str, tokens: tuple[str, ...]) -> bool:
    """Compare against every token (no early exit), each in constant time."""
    given_b = given.encode("utf-8", "surrogatepass")
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given_b, token.encode("utf-8", "surrogatepass"))
    return found


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the server has no tokens or the request carries one."""
    tokens: tuple[str, ...] = request.app.state.config.tokens
    if not tokens:
        return
    given = presented_token(request)
    if given is None:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer TOKEN' (or x-api-key / "
                            "Ocp-Apim-Subscription-Key)", "Authorization", None, "a token from the server's --tokens file")
    if not token_matches(given, tokens):
        raise ApiError(401, "invalid API key", "Authorization", "(hidden)", "a token from the server's --tokens file")
