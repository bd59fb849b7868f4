"""Which Host and Origin headers the server answers: the defence against DNS rebinding and
cross-site requests from the user's own browser.

A server on 127.0.0.1 without tokens trusts whoever can connect. A web page cannot connect to it
by name, but it can by *rebinding*: ``evil.example`` resolves to the attacker first, then to
127.0.0.1, and the page's requests reach us with ``Host: evil.example``. So on loopback every
request must name a loopback host (``localhost``, ``127.0.0.1``, ``[::1]``, any port) or one the
operator listed with ``--allowed-host`` (a reverse proxy's public name).

A page can also send "simple" cross-site POSTs (``text/plain`` JSON, multipart forms) straight to
``http://127.0.0.1:7860`` without a CORS preflight: the Host is right, but the browser names the
page in ``Origin``. A request whose Origin is not one of the same trusted hosts is refused (403);
clients outside a browser send no Origin. There is no CORS middleware, so no page elsewhere can
read an answer either.

Off loopback (tokens required there) the check applies once ``--allowed-host`` names any host;
``--allowed-host '*'`` turns it off.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from app.server.auth import is_loopback
from app.server.errors import ApiError, render, style_of

ANY_HOST = "*"
LOOPBACK_HINT = "localhost, 127.0.0.1 or [::1] (any port)"


def host_name(header: str) -> str:
    """``Host`` header → the lower-case name without port (``[::1]:7860`` → ``::1``); "" if malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1:]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return ""
        return value[1:end]
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return ""
    return name


def origin_host(origin: str) -> str:
    """``Origin`` header (``scheme://host[:port]``) → its host name; "" for ``null`` or junk."""
    try:
        parts = urlsplit(origin.strip())
        return (parts.hostname or "") if parts.scheme in ("http", "https") else ""
    except ValueError:
        return ""


def checks_hosts(bind_host: str, allowed: Iterable[str]) -> bool:
    """Whether a server listening on ``bind_host`` with these ``--allowed-host`` names checks Host/Origin."""
    allowed = set(allowed)
    if ANY_HOST in allowed:
        return False
    return is_loopback(bind_host) or bool(allowed)


def check_allowed_host(name: str) -> str | None:
    """Why an ``--allowed-host`` value is unusable, or None when it is a plain host name."""
    if name == ANY_HOST:
        return None
    bad = not name or any(c in name for c in "/:@[] \t") or name.startswith(".") or name.endswith(".")
    return (f"--allowed-host {name!r}: give a host name as clients type it, e.g. inpaint.example.com "
            "(no scheme, port or path), or '*' for any") if bad else None


def _shown(value: str) -> str:
    """A header value as an error may repeat it: at most 100 characters."""
    return value if len(value) <= 100 else value[:100] + f"… ({len(value)} characters)"


class HostGuard:
    """Pure ASGI middleware: 400 for an untrusted Host, 403 for an untrusted Origin, in the
    error shape of the route asked for. Trusted: loopback names and addresses, plus ``allowed``."""

    def __init__(self, app: Any, allowed: Iterable[str] = ()):
        self.app = app
        self.allowed = frozenset(a.lower() for a in allowed)
        self.described = LOOPBACK_HINT + "".join(f", {a}" for a in sorted(self.allowed))  # for the messages

    def trusted(self, name: str) -> bool:
        return bool(name) and (name in self.allowed or is_loopback(name))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            error = self._refusal(scope["headers"])
            if error is not None:
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                return await render(error, style_of(scope["path"]))(scope, receive, send)
        await self.app(scope, receive, send)

    def _refusal(self, raw: list[tuple[bytes, bytes]]) -> ApiError | None:
        allowed = self.described
        hosts = [v for k, v in raw if k.lower() == b"host"]
        if len(hosts) > 1:  # the guard and URL building must read the same one
            return ApiError(400, f"{len(hosts)} Host headers: send exactly one", "Host", None, "one Host header")
        headers = dict(raw)
        host = hosts[0].decode("latin-1") if hosts else ""
        if not self.trusted(host_name(host)):
            host = _shown(host)
            return ApiError(400, f"Host {host!r} refused: this server answers only requests addressed to {allowed} "
                                 "(other names are how DNS-rebinding pages reach it); behind a reverse proxy, start it "
                                 "with --allowed-host NAME", "Host", host or None, allowed)
        origin = headers.get(b"origin")
        if origin is not None and not self.trusted(origin_host(origin.decode("latin-1"))):
            text = _shown(origin.decode("latin-1"))
            return ApiError(403, f"requests from web pages at {text} are refused: a page may not use this server "
                                 "through your browser (call it from a script or a server, or list the page's host "
                                 "with --allowed-host)", "Origin", text, "no Origin, or a page on " + allowed)
        return None
