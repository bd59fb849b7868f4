"""OpenAI's images API (seeds 000/001): ``POST /v1/images/generations`` (JSON),
``POST /v1/images/edits`` (multipart, OpenAI's mask convention) and ``GET /v1/models``.

Our extra JSON fields on generations (sent by the SDK with ``extra_body=``): image and mask (data
URI, base64 or an allowed URL; mask white = repaint), negative_prompt, seed, steps, guidance,
strength, scheduler, safety_checker. Without an image, generations paints the whole canvas of
``size`` (full-canvas inpainting: text-to-image). On edits the mask's transparent pixels are what
changes; without a mask, the image's own transparent pixels are.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile

from app.core.imageio import LoadedImage
from app.server import dispatch
from app.server.auth import require_token
from app.server.errors import ApiError, bad_field
from app.server.fetch import decode_image, image_from_value, mask_from_alpha, too_large
from app.server.shapes import json_object, one_of, optional_float, optional_int, optional_str
from app.service.fields import FrontEnd
from app.service.generation import GenerationRequest

router = APIRouter(prefix="/v1", tags=["OpenAI images"], dependencies=[Depends(require_token)])
NAMES = FrontEnd("openai", dict(batch_size="n", width="size", height="size", guidance="guidance", model="model"))
FORMATS = ("url", "b64_json")


def parse_size(value: object) -> tuple[int | None, int | None]:
    """``"512x768"`` → (512, 768); ``"auto"``/None → the image's own size."""
    if value in (None, "auto"):
        return None, None
    try:
        w, h = (int(v) for v in str(value).lower().split("x"))
    except ValueError:
        raise bad_field("size", value, "WIDTHxHEIGHT, e.g. 512x512 (multiples of 8, 256–2048), or auto") from None
    return w, h


async def _params(request: Request, fields: dict[str, Any]):
    served = request.app.state.models.resolve(fields.get("model"))
    one_of("response_format", fields.get("response_format"), FORMATS)
    width, height = parse_size(fields.get("size"))
    return await dispatch.make_params(  # strength not given: the mode's default
        request, NAMES, prompt=fields.get("prompt"), negative_prompt=fields.get("negative_prompt"), model=served.ref,
        mode=served.mode, batch_size=fields.get("n"), width=width, height=height, seed=fields.get("seed"),
        steps=fields.get("steps"), guidance=fields.get("guidance"), strength=fields.get("strength"),
        scheduler=fields.get("scheduler"))


async def _respond(request: Request, generation: GenerationRequest, response_format: str | None,
                   slot: dispatch.Slot) -> dict[str, Any]:
    job, _record = await dispatch.run(request, "openai", generation, NAMES, slot=slot)
    if response_format == "b64_json":
        data = [{"b64_json": base64.b64encode(request.app.state.store.output_path(n).read_bytes()).decode()}
                for n in job.outputs]
    else:
        data = [{"url": dispatch.output_url(request, n)} for n in job.outputs]
    return {"created": int(job.created_at), "data": data}


@router.post("/images/generations")
async def generations(request: Request) -> dict[str, Any]:
    body = await json_object(request)
    for key in ("n", "seed", "steps"):
        optional_int(body, key)
    for key in ("guidance", "strength"):
        optional_float(body, key)
    optional_str(body, "prompt")
    params = await _params(request, body)
    policy = request.app.state.fetch_policy
    options = dispatch.load_options(request, body.get("safety_checker"), params.model, "safety_checker")
    if body.get("image") is None and body.get("mask") is not None:
        raise bad_field("image", None, "required when a mask is given")
    if body.get("image") is not None and body.get("mask") is None and params.mode == "inpaint":
        raise bad_field("mask", None, "required with an image for an inpainting model (white = repaint); "
                                      "use an img2img model id to re-generate the whole image")
    async with dispatch.admitted(request) as slot:
        if body.get("image") is None:
            pixels, mask = dispatch.blank_canvas(params.width, params.height)
        else:
            image = await image_from_value(body["image"], "image", policy)
            pixels, mask = image.pixels, None
            if body.get("mask") is not None:
                mask = dispatch.mask_for(image, await image_from_value(body["mask"], "mask", policy), "mask")
        return await _respond(request, GenerationRequest(params, pixels, mask, options=options),
                              body.get("response_format"), slot)


async def _upload(form, names: tuple[str, ...], limit: int) -> tuple[str, LoadedImage] | None:
    for name in names:
        item = form.get(name)
        if item is None:
            continue
        if not isinstance(item, UploadFile):
            raise bad_field(name, "text", "an uploaded file (multipart)")
        if item.size is not None and item.size > limit:
            raise too_large(name, item.size, limit)
        data = await item.read()
        return name, await asyncio.to_thread(decode_image, data, name, limit)
    return None


@router.post("/images/edits")
async def edits(request: Request) -> dict[str, Any]:
    limit = request.app.state.config.max_input_bytes
    try:
        form = await request.form(max_files=4, max_fields=64)
    except Exception as exc:  # starlette's MultiPartException and friends
        raise ApiError(400, f"the request is not a valid multipart form ({exc})", "body") from None
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    for key in ("n", "seed", "steps"):
        if key in fields:
            fields[key] = _number(key, fields[key], int)
    for key in ("guidance", "strength"):
        if key in fields:
            fields[key] = _number(key, fields[key], float)
    params = await _params(request, fields)
    options = dispatch.load_options(request, _bool(fields.get("safety_checker")), params.model, "safety_checker")
    async with dispatch.admitted(request) as slot:
        image = await _upload(form, ("image", "image[]"), limit)
        if image is None:
            raise bad_field("image", None, "required: the image to edit (a PNG file)")
        name, loaded = image
        mask_upload = await _upload(form, ("mask",), limit)
        if mask_upload is not None:
            alpha_mask = mask_from_alpha(mask_upload[1], "mask")
            mask = dispatch.mask_for(loaded, alpha_mask, "mask")
        else:
            mask = mask_from_alpha(loaded, name)
        pixels = loaded.pixels[:, :, :3] if loaded.pixels.ndim == 3 and mask_upload is None else loaded.pixels
        return await _respond(request, GenerationRequest(params, pixels, mask, options=options),
                              fields.get("response_format"), slot)


def _number(key: str, text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise bad_field(key, text, "a whole number" if kind is int else "a number") from None


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    raise bad_field("safety_checker", text, "true or false")


@router.get("/models")
async def models(request: Request) -> dict[str, Any]:
    created = int(time.time())
    return {"object": "list", "data": [{"id": i, "object": "model", "created": created, "owned_by": "inpaint-studio"}
                                       for i in request.app.state.models.ids()]}
