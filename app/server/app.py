"""`create_app`: the FastAPI app of ``inpaint-studio serve`` — one generation service, one job
queue, one job store, and a router per API shape. ``/healthz`` (liveness), ``/readyz`` (readiness:
a generator is loaded; `app.server.readiness`), ``/metrics`` (Prometheus text;
needs a token when the server has tokens), ``/files/{name}`` (the outputs behind every returned
URL: capability URLs, see `JobStore.output_path`), ``/openapi.json`` and, with ``--docs``, the
Swagger page at ``/docs`` (it loads scripts from a CDN, so it is off by default). On loopback
`HostGuard` refuses requests addressed to other host names (DNS rebinding) or sent by web pages;
`TokenGate` refuses a request without a valid token before its body is read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response

from app.server import a1111, appypie, backend_route, extras, openai, predictions, segmind
from app.server.auth import TokenGate, require_token
from app.server.config import ServerConfig
from app.server.errors import (ApiError, api_error_handler, render, style_of, unexpected_error_handler,
                               validation_error_handler)
from app.server.fetch import FetchPolicy
from app.server.gather import BatchPolicy
from app.server.hostguard import HostGuard, checks_hosts
from app.server.jobs import JobStore
from app.server.metrics import Metrics
from app.server.models import ModelTable
from app.server.queue import JobQueue
from app.server.readiness import Preload
from app.service.generation import GenerationService
from app.service.restoration import RestorationService

#: Request bodies above this are refused before they are read: two images at the 50 MB cap,
#: base64-encoded (4/3), plus room for the other fields.
def body_limit(max_input_bytes: int) -> int:
    return 2 * (max_input_bytes * 4 // 3) + 1024 * 1024


class BodyLimit:
    """Pure ASGI middleware (a BaseHTTPMiddleware would hide client disconnects from the routes):
    a declared Content-Length over the limit gets 413 before any byte of the body is read; a
    chunked body is cut off at the limit."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send, int(declared))
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError(413, self._message(seen), "body", f"{seen} bytes", f"at most {self.limit} bytes")
            return message

        await self.app(scope, counted, send)

    def _message(self, size: int) -> str:
        return (f"the request body is {size / 2**20:.0f} MB; the limit is {self.limit / 2**20:.0f} MB "
                f"(each image at most 50 MB)")

    async def _refuse(self, scope: dict, receive: Any, send: Any, size: int) -> None:
        error = ApiError(413, self._message(size), "body", f"{size} bytes", f"at most {self.limit} bytes")
        await render(error, style_of(scope["path"]))(scope, receive, send)


#: Outputs are private to whoever holds the URL: no shared cache keeps them, no browser sniffs them.
OUTPUT_HEADERS = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "no-referrer"}


def create_app(config: ServerConfig, service: GenerationService | None = None,
               not_ready: Callable[[], str | None] | None = None, runtime: Callable[..., dict] | None = None) -> FastAPI:
    """``not_ready``: why the server cannot run a job now (None = ready), for ``/readyz``; by
    default the preload of the default model (`Preload`, when ``config.preload``). ``runtime``:
    where a job ran, for its record (`JobQueue`; by default this process)."""
    config.check()
    service = service or GenerationService(compile_step=config.compile)
    metrics = Metrics()
    store = JobStore(config.data_dir)
    models = ModelTable(config.model)
    preload = Preload(service, models.default.ref, config.preload and not_ready is None)
    not_ready = not_ready or preload.not_ready

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        preload.start()
        yield
        app.state.queue.stop()

    app = FastAPI(title="Inpaint Studio server", version=_version(), lifespan=lifespan,
                  docs_url="/docs" if config.docs else None, redoc_url=None,
                  description="Stable Diffusion 1.5 inpainting behind the hosted APIs' request shapes. See docs/API.md.")
    app.state.config = config
    app.state.not_ready = not_ready
    app.state.service = service
    app.state.restoration = restoration_for(service)
    app.state.store = store
    app.state.metrics = metrics
    app.state.queue = JobQueue(service, store, metrics, config.queue_depth, config.concurrency, runtime,
                               BatchPolicy(config.batch_window_ms / 1000, config.max_batch))
    app.state.models = models
    app.state.fetch_policy = FetchPolicy(config.allow_fetch, config.fetch_timeout_s, config.max_input_bytes)
    #: Images decoded outside a job (png-info) at once: each may take up to the pixel cap.
    app.state.decodes = asyncio.Semaphore(2)
    _add_errors_and_guards(app, config)
    for module in (openai, segmind, predictions, appypie, a1111, extras, backend_route):
        app.include_router(module.router)
    app.include_router(server_router)
    return app


def _add_errors_and_guards(app: FastAPI, config: ServerConfig) -> None:
    """Every error rendered in its route's API shape; the body limit, tokens and host check
    in front of every route, outermost first to refuse before a body is read."""
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    app.add_exception_handler(404, _not_found)
    app.add_middleware(BodyLimit, limit=body_limit(config.max_input_bytes))
    app.add_middleware(TokenGate, tokens=config.tokens)  # before the body is read or parsed
    if checks_hosts(config.host, config.allowed_hosts):
        app.add_middleware(HostGuard, allowed=config.allowed_hosts)  # outermost: before any body is read


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return render(ApiError(404, f"no route {request.method} {request.url.path}; see /docs"), style_of(request.url.path))


#: The server's own routes (not an API shape): probes, metrics and the output files.
server_router = APIRouter(tags=["server"])


@server_router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    queue = request.app.state.queue
    return {"status": "ok", "model": request.app.state.models.default.id, "queue_waiting": queue.waiting(),
            "running": queue.current is not None}


@server_router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 once a generator is loaded, else 503 with the reason (a probe takes the pod out of
    rotation, not kills it); never waits behind a job."""
    reason = await asyncio.to_thread(request.app.state.not_ready)
    if reason is None:
        return JSONResponse({"status": "ready", "model": request.app.state.models.default.id})
    return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)


@server_router.get("/metrics", dependencies=[Depends(require_token)])
async def metrics_text(request: Request) -> Response:
    return Response(request.app.state.metrics.text(), media_type="text/plain; version=0.0.4")


@server_router.get("/files/{name}", name="output_file")
async def output_file(name: str, request: Request) -> FileResponse:
    """No token: clients fetch returned URLs without one; the name is the secret."""
    path = request.app.state.store.output_path(name)
    if path is None:
        raise ApiError(404, "no such output", "name", None, "a URL returned by this server")
    return FileResponse(path, media_type="image/png", headers=OUTPUT_HEADERS)


def restoration_for(service: object) -> RestorationService:
    """The generation service's own restoration service (one device lock: a restoration never
    overlaps a generation); a service without one (a cluster's, whose generations run on its
    replicas) gets a separate one for this process."""
    restoration = getattr(service, "restoration", None)
    return restoration if isinstance(restoration, RestorationService) else RestorationService()


def _version() -> str:
    from app import __version__

    return __version__
