"""`RemoteBackend`: a backend whose model runs on an ``inpaint-studio serve`` machine.

The engine still plans regions, crops, resizes and composites here; only the model-sized work
crop, its mask, the params and the seeds cross the network (``POST /v1/backend/generate``), so the
full-size original never leaves this machine, pixels outside the mask stay bit-exact, and the same
seed on the same model gives the same pixels as a local run (PNG both ways: lossless). The server
streams one JSON object per line: ``progress`` (step, total, optional PNG preview), then ``result``
or ``error``. Leaving the stream early (cancel) closes the connection, which cancels the server's
run. Needs httpx, numpy and PIL; never torch.

Model refs: ``remote:http://host:port`` (the server's default model) or
``remote:http://host:port#<model id>`` (an id the server's ``GET /v1/models`` lists).
A server with tokens needs one: the editor's Settings → Generation server…, the CLI's
``--token``, or the ``INPAINT_STUDIO_TOKEN`` environment variable (used when neither gives one).
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable, Iterator

import numpy as np

from app.core.errors import BAD_INPUT, FAILED, KINDS, UNAVAILABLE, UserError
from app.core.imageio import encode_png
from app.inference.engine import BackendRequest, Cancelled, CancelFn

PREFIX = "remote:"
GENERATE_PATH = "/v1/backend/generate"
CAPABILITIES_PATH = "/v1/backend/capabilities"
#: Connecting should be quick; a step on a busy server may take long (the read timeout is per line).
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0
#: The environment variable a ``remote:`` model's token comes from when none is given.
TOKEN_ENV = "INPAINT_STUDIO_TOKEN"


#: A reference image larger than this is shrunk before it is sent (the encoder sees 224² anyway).
MAX_REFERENCE_PIXELS = 2048 * 2048


def fit_pixels(rgb: np.ndarray, limit: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    if height * width <= limit:
        return rgb
    import cv2

    scale = (limit / (height * width)) ** 0.5
    return cv2.resize(rgb, (max(1, int(width * scale)), max(1, int(height * scale))), interpolation=cv2.INTER_AREA)


class ServerUnreachable(UserError, ConnectionError):
    """The generation server did not answer or went away mid-run. Nothing local changed."""

    title = "Generation server unreachable"
    kind = UNAVAILABLE


class RemoteGenerationError(UserError):
    """The server answered, but refused the request or failed to run it; its message says why."""

    title = "The generation server refused the request"

    def __init__(self, message: str, kind: str = BAD_INPUT):
        super().__init__(message)
        self.kind = kind if kind in KINDS else FAILED


def is_remote(model_ref: str) -> bool:
    return isinstance(model_ref, str) and model_ref.startswith(PREFIX)


def split_ref(model_ref: str) -> tuple[str, str]:
    """``remote:URL#model`` → (URL without trailing slash, model id or "" for the default)."""
    url, _, model = model_ref[len(PREFIX):].partition("#")
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise RemoteGenerationError(f"{model_ref!r} is not a server address: use remote:http://HOST:PORT#MODEL "
                                    "(Settings → Generation server…)")
    return url, model


def make_ref(url: str, model: str = "") -> str:
    return PREFIX + url.rstrip("/") + (f"#{model}" if model else "")


def png_base64(array: np.ndarray) -> str:
    """An RGB8 image or 8-bit mask as a base64 PNG (the one PNG writer, fast level: it travels once)."""
    return base64.b64encode(encode_png(np.ascontiguousarray(array), level=1)).decode("ascii")


def decode_png(data: str, mode: str) -> np.ndarray:
    """A base64 PNG as an RGB8 ("RGB") or 8-bit mask ("L") array."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as img:
        return np.asarray(img.convert(mode))


def _headers(token: str | None) -> dict[str, str]:
    token = token or os.environ.get(TOKEN_ENV, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _client(timeout_s: float = READ_TIMEOUT_S):
    import httpx

    return httpx.Client(timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S))


def _transport_errors() -> tuple[type[BaseException], ...]:
    import httpx

    return (httpx.TransportError,)


def _unreachable(url: str, exc: BaseException) -> ServerUnreachable:
    return ServerUnreachable(f"The generation server at {url} did not answer ({type(exc).__name__}: {exc}). "
                             "Your image, mask and prompt are unchanged; check that the server runs and try again, "
                             "or pick a local model.")


def _check_status(url: str, status: int, body: str) -> None:
    if status == 200:
        return
    try:
        detail = json.loads(body).get("error", {})
        message = detail.get("message") if isinstance(detail, dict) else str(detail)
    except (ValueError, AttributeError):
        message = body[:300]
    if status == 401:
        message = (f"{message}. Give the server's API token: from the command line with --token or the {TOKEN_ENV} "
                   "environment variable; in the editor in Settings → Generation server…")
    raise RemoteGenerationError(f"The generation server at {url} answered {status}: {message}")


def get_json(url: str, path: str, token: str | None = None, params: dict | None = None,
             timeout_s: float = CONNECT_TIMEOUT_S) -> dict:
    """GET ``url + path`` as JSON, with this module's typed errors (the settings dialog's Test uses it)."""
    try:
        with _client(timeout_s) as client:
            response = client.get(url + path, headers=_headers(token), params=params)
    except _transport_errors() as exc:
        raise _unreachable(url, exc) from None
    _check_status(url, response.status_code, response.text)
    return response.json()


def remote_capabilities(model_ref: str, token: str | None = None):
    """The server's `Capabilities` for the model ``model_ref`` names."""
    from app.inference.registry import Capabilities

    url, model = split_ref(model_ref)
    data = get_json(url, CAPABILITIES_PATH, token, {"model": model})
    data["schedulers"] = tuple(data.get("schedulers", ()))
    return Capabilities(**{k: data[k] for k in Capabilities.__dataclass_fields__ if k in data})


class RemoteBackend:
    """The engine's `Backend` over HTTP: one request per region, progress streamed back."""

    native_resolution = False

    def __init__(self, model_ref: str, token: str | None = None):
        self.url, self.model = split_ref(model_ref)
        self.token = token
        self.name = model_ref

    def generate(self, request: BackendRequest, progress: Callable[[int, int, np.ndarray | None], None],
                 cancelled: CancelFn) -> list[np.ndarray]:
        body = {"model": self.model, "image": png_base64(request.image), "mask": png_base64(request.mask),
                "params": request.params.to_dict(), "seeds": list(request.seeds),
                "controls": [png_base64(c) for c in request.control_images]}  # work-size, as the image
        if request.soft_mask is not None:
            body["soft_mask"] = png_base64(request.soft_mask)
        if request.reference_image is not None:
            body["reference_image"] = png_base64(fit_pixels(request.reference_image, MAX_REFERENCE_PIXELS))
        try:
            with _client() as client, client.stream("POST", self.url + GENERATE_PATH, json=body,
                                                    headers=_headers(self.token)) as response:
                if response.status_code != 200:
                    _check_status(self.url, response.status_code, response.read().decode("utf-8", "replace"))
                # Leaving this block (a cancel, an error) closes the connection: the server stops.
                return self._read(response.iter_lines(), progress, cancelled)
        except _transport_errors() as exc:
            raise _unreachable(self.url, exc) from None

    def _read(self, lines: Iterator[str], progress: Callable[[int, int, np.ndarray | None], None],
              cancelled: CancelFn) -> list[np.ndarray]:
        for line in lines:
            if cancelled():
                raise Cancelled()
            if not line.strip():
                continue
            event = json.loads(line)
            kind = event.get("type")
            if kind == "progress":
                preview = event.get("preview")
                progress(int(event["step"]), int(event["total"]), None if preview is None else decode_png(preview, "RGB"))
            elif kind == "result":
                return [decode_png(image, "RGB") for image in event["images"]]
            elif kind == "cancelled":
                raise Cancelled()
            elif kind == "error":
                raise RemoteGenerationError(event.get("message") or "the server's run failed", event.get("kind", FAILED))
        raise ServerUnreachable(f"The generation server at {self.url} closed the connection before the result. "
                                "Your image, mask and prompt are unchanged; try again when it is back.")
