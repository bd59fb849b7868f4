"""The backend route: one model-sized region through this server's loaded backend, for editors
whose model is ``remote:`` (`app.inference.remote.RemoteBackend`).

``POST /v1/backend/generate`` takes the work crop, its mask (base64 PNGs), the params and the
seeds, runs the same backend a local run would use (`GenerationService.generate_region`, which
shares the service's lock with every other job, so one model runs one thing at a time), and
streams JSON lines: ``progress`` with a PNG preview when the backend has one, then ``result`` or
``error``. A client that disconnects cancels the run at the backend's next step.
The region goes through the job queue like every other job (its depth, its metrics, cancel;
its progress in ``/sdapi/v1/progress``), with the images' decode budget checked from their
headers before anything is decoded, and the decoding itself on the queue's worker.
``GET /v1/backend/capabilities?model=`` says what a model can do, so the editor checks a request
before sending it. Only models this server lists can be named (never a file path)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from PIL import Image

from app.core.errors import BAD_INPUT, UserError
from app.core.params import SEED_MAX, GenerationParams
from app.server.auth import owner_of, require_token
from app.server.dispatch import check_prompt, queue_full, user_error
from app.server.errors import ApiError, bad_field, scrub_paths
from app.server.fetch import check_header, decode_base64, image_kind
from app.server.queue import QueueFull, Ticket
from app.server.shapes import json_object
from app.service import BackendRequest, Cancelled, png_base64
from app.service.errors import BACKEND, kind_of
from app.service.fields import PARAM_FIELDS, FrontEnd, build

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/backend", tags=["Remote backend (the editor's remote: models)"],
                   dependencies=[Depends(require_token)])


@router.get("/capabilities")
async def capabilities(request: Request, model: str = "") -> dict[str, Any]:
    served = request.app.state.models.resolve(model)
    try:
        caps = request.app.state.service.capabilities(served.ref)
    except UserError as exc:
        raise ApiError(422, scrub_paths(exc.message), "model", model) from None
    return dataclasses.asdict(caps) | {"model": served.id}


#: The largest region taken: the editor sends model-sized crops (at most 2048², sides multiples of 8).
MAX_REGION_PIXELS = 2048 * 2048
MAX_SEEDS = 8
#: The route's names: every parameter is a key of its ``params`` object.
NAMES = FrontEnd("backend", {name: f"params.{name}" for name in PARAM_FIELDS})


def parse_body(body: dict[str, Any], ref: str) -> tuple[GenerationParams, bytes, bytes, tuple[int, ...], dict[str, Any]]:
    """The request's params, seeds, the image's and mask's PNG bytes and the optional ones
    ("controls": one per control unit, "soft_mask", "reference_image"), every field checked and
    every image within the decode budget by its header alone (nothing decoded yet), or
    400/413/422 naming the field."""
    raw = body.get("params")
    if not isinstance(raw, dict):
        raise bad_field("params", raw, "a JSON object of generation parameters", 422)
    for key in ("prompt", "negative_prompt"):
        check_prompt(NAMES.of(key), raw.get(key), 422)
    try:  # built here, checked by the service (`check_region`) before the region is queued
        params = build(NAMES, {k: v for k, v in raw.items() if k in PARAM_FIELDS and k != "model"} | {"model": ref})
    except UserError as exc:
        raise user_error(exc, NAMES, BACKEND) from None
    seeds = body.get("seeds")
    if (not isinstance(seeds, list) or not 1 <= len(seeds) <= MAX_SEEDS
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in seeds)):
        raise bad_field("seeds", seeds, f"1 to {MAX_SEEDS} whole numbers from 0 to {SEED_MAX}", 422)
    controls = body.get("controls") or []
    if not isinstance(controls, list) or len(controls) != len(params.controls):
        raise bad_field("controls", f"{len(controls) if isinstance(controls, list) else controls}",
                        f"one base64 PNG per params.controls unit ({len(params.controls)})", 422)
    for i, unit in enumerate(params.controls):
        _listed_controlnet(f"params.controls[{i}].model", unit.model)
    images = []
    named = [("image", body.get("image")), ("mask", body.get("mask")), *((f"controls[{i}]", c) for i, c in enumerate(controls))]
    for key, value in named:
        if not isinstance(value, str) or not value:
            raise bad_field(key, value, "a base64 PNG", 422)
        data = decode_base64(value, key)
        if image_kind(data) != "png":
            raise bad_field(key, f"{len(data)} bytes", "a base64 PNG", 422)
        images.append((data, check_header(data, key, MAX_REGION_PIXELS)))
    (image, (w, h)), (mask, mask_size), *control_pngs = images
    if (w, h) != mask_size or w % 8 or h % 8 or any(size != (w, h) for _, size in control_pngs):
        raise ApiError(422, f"image {w}×{h}, mask {mask_size[0]}×{mask_size[1]} and control images: same size, sides "
                       "multiples of 8, at most 2048²", "image", f"{w}×{h}", "a model-sized crop")
    # The control images, soft inpainting's grey mask (the crop's size), the reference image (any size).
    optional: dict[str, Any] = {"controls": tuple(data for data, _ in control_pngs)}
    for key in ("soft_mask", "reference_image"):
        value = body.get(key)
        if value is None:
            continue
        data = decode_base64(value, key) if isinstance(value, str) and value else b""
        if image_kind(data) != "png":
            raise bad_field(key, f"{len(data)} bytes", "a base64 PNG", 422)
        size = check_header(data, key, MAX_REGION_PIXELS)
        if key == "soft_mask" and size != (w, h):
            raise bad_field(key, f"{size[0]}×{size[1]}", f"{w}×{h}, the image's size", 422)
        optional[key] = data
    return params, image, mask, tuple(seeds), optional


def _listed_controlnet(field: str, name: str) -> None:
    """A client names ControlNets as this server lists them, never by a path on it."""
    from app.service import ModelLoadError, controlnet

    try:
        controlnet.resolve(name, allow_paths=False)
    except ModelLoadError as exc:
        raise ApiError(422, scrub_paths(exc.message), field, name) from None


def decode_region(params: GenerationParams, image: bytes, mask: bytes, seeds: tuple[int, ...],
                  optional: dict[str, Any] | None = None) -> BackendRequest:
    """The pixels, decoded once the request holds its place in the queue (on the worker)."""
    optional = optional or {}
    try:
        pixels, mask_pixels = _pixels(image, "RGB"), _pixels(mask, "L")
        control_images = tuple(_pixels(c, "RGB") for c in optional.get("controls", ()))
        soft = _pixels(optional["soft_mask"], "L") if "soft_mask" in optional else None
        look = _pixels(optional["reference_image"], "RGB") if "reference_image" in optional else None
    except Exception as exc:  # PIL raises many types for a bad file
        raise ApiError(422, f"image, mask and the other images must be PNGs ({type(exc).__name__})", "image", None) from None
    return BackendRequest(pixels, mask_pixels, params, seeds, control_images=control_images, soft_mask=soft,
                          reference_image=look)


def _pixels(png: bytes, mode: str) -> np.ndarray:
    """As `app.inference.remote.decode_png` reads them, from bytes already checked."""
    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert(mode))


#: The body, for /openapi.json (the route parses it itself, after the token and within the budgets).
REGION_SCHEMA = {"type": "object", "required": ["image", "mask", "params", "seeds"], "properties": {
    "model": {"type": "string", "description": "a model id this server lists; empty = the default"},
    "image": {"type": "string", "description": "the work crop, base64 PNG (RGB8, model-sized, at most 2048²)"},
    "mask": {"type": "string", "description": "its mask, base64 PNG (8-bit, 255 = repaint), the same size"},
    "params": {"type": "object", "description": "GenerationParams as a JSON object"},
    "soft_mask": {"type": "string", "description": "soft inpainting's grey mask, base64 PNG (8-bit), the image's size"},
    "reference_image": {"type": "string", "description": "the reference (IP-Adapter) image, base64 PNG (RGB8)"},
    "seeds": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": SEED_MAX},
              "minItems": 1, "maxItems": MAX_SEEDS},
    "controls": {"type": "array", "items": {"type": "string"}, "description": "one base64 PNG per params.controls "
                 "unit (RGB8, the crop's size), cropped and resized as the image was"}}}


@router.post("/generate", openapi_extra={"requestBody": {"required": True,
                                                         "content": {"application/json": {"schema": REGION_SCHEMA}}}})
async def generate(request: Request) -> StreamingResponse:
    """Checked on the event loop from headers only; queued like every job (429 when full, in the
    metrics); decoded and run on the queue's worker; streamed back."""
    body = await json_object(request)
    served = request.app.state.models.resolve(body.get("model"))
    params, image, mask, seeds, optional = await asyncio.to_thread(parse_body, body, served.ref)
    del body
    service = request.app.state.service
    try:  # the service's rules, once, before the region is queued
        params = await asyncio.to_thread(service.check_params, params, front=NAMES)
    except UserError as exc:
        raise user_error(exc, NAMES, BACKEND) from None
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def emit(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    def task(ticket: Ticket) -> None:
        def progress(step: int, total: int, preview: np.ndarray | None) -> None:
            ticket.step, ticket.total = step, total
            emit({"type": "progress", "step": step, "total": total,
                  "preview": None if preview is None else png_base64(preview)})

        try:
            region = decode_region(params, image, mask, seeds, optional)
            images = service.generate_region(served.ref, region, progress, ticket.cancel.is_set)
            emit({"type": "result", "images": [png_base64(i) for i in images]})
        except Cancelled:
            emit({"type": "cancelled"})
            raise
        except ApiError as exc:
            emit({"type": "error", "title": "Bad request", "message": exc.message, "kind": BAD_INPUT})
            raise
        except UserError as exc:
            emit({"type": "error", "title": exc.title, "message": scrub_paths(exc.message), "kind": kind_of(exc)})
            raise
        except Exception as exc:  # the run fails, the server goes on
            log.error("backend region failed", exc_info=exc)
            emit({"type": "error", "title": "Generation failed", "message": f"internal error: {type(exc).__name__}",
                  "kind": kind_of(exc)})
            raise

    queue = request.app.state.queue
    try:
        ticket = queue.submit_task("backend", task, owner=owner_of(request) or "")
    except QueueFull as exc:
        raise queue_full(exc) from None

    async def stream():
        try:
            while True:
                event = await events.get()
                yield json.dumps(event) + "\n"
                if event["type"] != "progress":
                    return
        finally:  # also when the client went away: stop the run (or drop it from the queue)
            queue.cancel(ticket.job.id)

    return StreamingResponse(stream(), media_type="application/x-ndjson")
