"""A real uvicorn serving `create_app` on 127.0.0.1 and an ephemeral port, in a thread of the
test process (so tests can also reach the app's queue and store), plus small image helpers."""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests
import uvicorn
from PIL import Image

from app.inference.classical import ClassicalBackend
from app.inference.engine import Cancelled
from app.server.app import create_app
from app.server.config import ServerConfig
from app.server.launch import uvicorn_config
from app.service.generation import GenerationService

START_TIMEOUT_S = 20
WAIT_S = 10


@dataclass
class Running:
    url: str
    port: int
    app: Any

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, timeout=60, **kw)


@contextlib.contextmanager
def running_server(config: ServerConfig, service=None, port: int = 0) -> Iterator[Running]:
    app = create_app(config, service)
    server = uvicorn.Server(uvicorn_config(app, config, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (server.started and server.servers):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    running = Running(f"http://127.0.0.1:{port}", port, app)
    while running.get("/healthz").status_code != 200:  # bounded by the start deadline above
        if time.monotonic() > deadline:
            raise RuntimeError("/healthz never answered")
        time.sleep(0.05)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(15)


def scene(size: int = 64) -> np.ndarray:
    """A textured RGB test image (gradients + a square), deterministic."""
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], axis=2).astype(np.uint8)
    img[size // 4: size // 2, size // 4: size // 2] = (200, 30, 30)
    return img


def centre_mask(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[size * 3 // 8: size * 5 // 8, size * 3 // 8: size * 5 // 8] = 255
    return mask


def png_bytes(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "PNG")
    return out.getvalue()


def b64(arr: np.ndarray) -> str:
    return base64.b64encode(png_bytes(arr)).decode()


def data_uri(arr: np.ndarray) -> str:
    return "data:image/png;base64," + b64(arr)


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class GatedBackend:
    """Runs only once ``gate`` is set; honours cancel while it waits."""

    name = "gated"
    native_resolution = True

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()
        self.inner = ClassicalBackend("builtin:telea")

    def generate(self, request, progress, cancelled):
        self.started.set()
        deadline = time.monotonic() + WAIT_S
        while not self.gate.is_set():
            if cancelled():
                raise Cancelled()
            if time.monotonic() > deadline:
                raise RuntimeError("the test never opened the gate")
            time.sleep(0.01)
        return self.inner.generate(request, progress, cancelled)


def gated_server(tmp_path, **config):
    backend = GatedBackend()
    service = GenerationService(loader=lambda ref, options: backend)
    cfg = ServerConfig(data_dir=tmp_path, model="builtin:telea", **config)
    return backend, running_server(cfg, service)


def until(predicate, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def segmind_body():
    return {"prompt": "x", "image": b64(scene()), "mask": b64(centre_mask())}
