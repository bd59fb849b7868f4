"""The backend route: one model-sized region through this server's loaded backend, for editors
whose model is ``remote:`` (`app.inference.remote.RemoteBackend`).

``POST /v1/backend/generate`` takes the work crop, its mask (base64 PNGs), the params and the
seeds, runs the same backend a local run would use (`GenerationService.generate_region`, which
shares the service's lock with every other job, so one model runs one thing at a time), and
streams JSON lines: ``progress`` with a PNG preview when the backend has one, then ``result`` or
``error``. A client that disconnects cancels the run at the backend's next step.
``GET /v1/backend/capabilities?model=`` says what a model can do, so the editor checks a request
before sending it. Only models this server lists can be named (never a file path)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app.core.errors import UserError
from app.core.params import GenerationParams
from app.inference.engine import BackendRequest, Cancelled
from app.inference.remote import decode_png, encode_png
from app.server.auth import require_token
from app.server.errors import ApiError

router = APIRouter(prefix="/v1/backend", tags=["Remote backend (the editor's remote: models)"],
                   dependencies=[Depends(require_token)])


class RegionBody(BaseModel):
    model: str = ""
    image: str = Field(description="the work crop, base64 PNG (RGB8, model-sized)")
    mask: str = Field(description="its mask, base64 PNG (8-bit, 255 = repaint)")
    params: dict[str, Any]
    seeds: list[int] = Field(min_length=1, max_length=8)


@router.get("/capabilities")
async def capabilities(request: Request, model: str = "") -> dict[str, Any]:
    served = request.app.state.models.resolve(model)
    try:
        caps = request.app.state.service.capabilities(served.ref)
    except UserError as exc:
        raise ApiError(422, exc.message, "model", model) from None
    return dataclasses.asdict(caps) | {"model": served.id}


def parse_region(body: RegionBody, ref: str) -> BackendRequest:
    """The body as a `BackendRequest` on ``ref``, or 422 naming the bad field."""
    try:
        params = GenerationParams.from_dict(body.params).replace(model=ref)
    except UserError as exc:
        raise ApiError(422, exc.message, "params", None) from None
    try:
        image, mask = decode_png(body.image, "RGB"), decode_png(body.mask, "L")
    except Exception as exc:  # PIL raises many types for a bad file
        raise ApiError(422, f"image and mask must be base64 PNGs ({exc})", "image", None) from None
    if image.shape[:2] != mask.shape or image.shape[0] % 8 or image.shape[1] % 8 or image.size > 3 * 2048 * 2048:
        raise ApiError(422, f"image {image.shape} and mask {mask.shape}: same size, sides multiples of 8, "
                       "at most 2048²", "image", None)
    return BackendRequest(image, mask, params, tuple(body.seeds))


@router.post("/generate")
async def generate(body: RegionBody, request: Request) -> StreamingResponse:
    served = request.app.state.models.resolve(body.model)
    region = parse_region(body, served.ref)
    service = request.app.state.service
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    cancel = threading.Event()

    def emit(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    def progress(step: int, total: int, preview: np.ndarray | None) -> None:
        emit({"type": "progress", "step": step, "total": total,
              "preview": None if preview is None else encode_png(preview)})

    def run() -> None:
        try:
            images = service.generate_region(served.ref, region, progress, cancel.is_set)
            emit({"type": "result", "images": [encode_png(i) for i in images]})
        except Cancelled:
            emit({"type": "cancelled"})
        except UserError as exc:
            emit({"type": "error", "title": exc.title, "message": exc.message})
        except Exception as exc:  # the run fails, the server goes on
            emit({"type": "error", "title": "Generation failed", "message": f"internal error: {type(exc).__name__}: {exc}"})

    async def stream():
        worker = threading.Thread(target=run, name="inpaint-backend-region", daemon=True)
        worker.start()
        try:
            while True:
                event = await events.get()
                yield json.dumps(event) + "\n"
                if event["type"] != "progress":
                    return
        finally:  # also when the client went away: stop the run at its next step
            cancel.set()

    return StreamingResponse(stream(), media_type="application/x-ndjson")
