"""The server's settings, as `inpaint-studio serve` options give them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.server.auth import is_loopback
from app.server.fetch import MAX_INPUT_BYTES
from app.server.hostguard import check_allowed_host


class ConfigError(ValueError):
    """A setting that makes the server unsafe or unable to start; one line for the user."""


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 7860
    model: str | None = None  # None = first installed inpainting model, else builtin:telea
    tokens: tuple[str, ...] = ()
    allow_fetch: frozenset[str] = field(default_factory=frozenset)
    #: Host names requests may be addressed to besides the loopback ones (a reverse proxy's public
    #: name); '*' = any. See `app.server.hostguard`.
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    queue_depth: int = 16
    max_input_bytes: int = MAX_INPUT_BYTES
    fetch_timeout_s: float = 10.0
    #: A synchronous request waits at most this long for its job, then answers 504 (the job goes on).
    sync_timeout_s: float = 600.0
    #: Jobs run at once: 1 for the one local model; ``serve --ray`` sets it from its replicas.
    concurrency: int = 1
    #: Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed (uvicorn's
    #: ``forwarded_allow_ips``); none by default, loopback included.
    trusted_proxies: tuple[str, ...] = ()
    #: Serve the interactive API page at /docs (Swagger UI, which loads its scripts from a CDN);
    #: off by default. /openapi.json is always served.
    docs: bool = False
    #: Load the default model on start (``serve`` does; ``--no-preload`` opts out); ``/readyz``
    #: answers 503 until it is loaded.
    preload: bool = False
    #: How long the queue's worker waits for compatible jobs to batch with the one it took
    #: (`app.server.gather`); 0 = never batch jobs of different requests.
    batch_window_ms: float = 10.0
    #: At most this many candidates (all gathered jobs' batch sizes) per batched call.
    max_batch: int = 8
    #: Run the model's UNet step compiled (prepared in the background while jobs run uncompiled;
    #: `app.inference.diffusers.compiled`): ``serve --compile``.
    compile: bool = False

    def check(self) -> ServerConfig:
        if not is_loopback(self.host) and not self.tokens:
            raise ConfigError(
                f"refusing to listen on {self.host} without API tokens: anyone on the network could use this "
                "machine; give --tokens FILE (or set INPAINT_STUDIO_TOKENS), or listen on 127.0.0.1")
        for name in self.allowed_hosts:
            if (why := check_allowed_host(name)) is not None:
                raise ConfigError(why)
        if not 1 <= self.queue_depth <= 10_000:
            raise ConfigError(f"--queue-depth {self.queue_depth}: give 1–10000")
        if not 0 <= self.batch_window_ms <= 1000:
            raise ConfigError(f"--batch-window-ms {self.batch_window_ms}: give 0–1000")
        if not 1 <= self.max_batch <= 64:
            raise ConfigError(f"--max-batch {self.max_batch}: give 1–64")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: give 0–65535")
        return self
