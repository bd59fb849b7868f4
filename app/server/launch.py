"""Run the app under uvicorn: the one blocking call behind ``inpaint-studio serve``, and the
uvicorn settings every server (tests included) runs with.

Those settings bound what a client can make the server hold before any route runs: h11 as the
HTTP parser with a cap on a request's head (`MAX_HEAD_BYTES`: a 20 MB header or 100,000 headers
get 400), a deadline for the head to arrive (`HEAD_TIMEOUT_S`: a socket dripping a header a
minute is closed), and X-Forwarded-* believed only from ``--trusted-proxy`` addresses (uvicorn
trusts loopback by default; a server on loopback has no proxy unless one is named)."""

from __future__ import annotations

import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.server.config import ServerConfig

#: Request line plus headers, at most (browsers send under 8 KB; long tokens fit easily).
MAX_HEAD_BYTES = 64 * 1024
#: A request's head must arrive within this many seconds of the connection (or of the previous
#: response on a kept-alive connection).
HEAD_TIMEOUT_S = 10.0


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not complete in time
    (uvicorn times out only idle kept-alive connections, not a head that trickles in)."""

    head_timeout_s = HEAD_TIMEOUT_S
    _head_timer: Any = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._disarm()  # the head is in: the body has its own limits

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, config: ServerConfig, **overrides: Any):
    """The `uvicorn.Config` of ``app`` served per ``config`` (``overrides`` for tests: host, port)."""
    import uvicorn

    options: dict[str, Any] = dict(
        host=config.host, port=config.port, http=HeadDeadlineProtocol, h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        proxy_headers=bool(config.trusted_proxies), forwarded_allow_ips=list(config.trusted_proxies) or None,
        server_header=False, timeout_graceful_shutdown=5)
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(config: ServerConfig, log_level: str = "info") -> None:
    """Serve until Ctrl+C (uvicorn handles the signal and runs the app's shutdown, which cancels
    queued and running jobs; their records say so, finished ones stay on disk)."""
    import uvicorn

    from app.server.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = create_app(config)
    uvicorn.Server(uvicorn_config(app, config, log_level=log_level)).run()
