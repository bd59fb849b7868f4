"""The AUTOMATIC1111 web UI API (``/sdapi/v1/*``), which Open WebUI, Krita/Photoshop-era plugins,
the ``webuiapi`` package and many scripts speak: ``img2img`` (with mask: inpainting) →
``{images, parameters, info}``; ``progress``, ``interrupt``, ``png-info``, ``sd-models`` and
``samplers``. A1111's own names map onto `GenerationParams`: ``cfg_scale`` → guidance,
``denoising_strength`` → strength, ``inpainting_fill`` 0/1/2/3 → fill/original/latent noise/latent nothing,
``inpaint_full_res`` → only-masked area with ``inpaint_full_res_padding``, ``batch_size`` ×
``n_iter`` → batch size."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from PIL import Image

from app.core import metadata
from app.core.schedulers import ALIASES, SAMPLER_NAMES, resolve_sampler
from app.core.sigma_schedules import SCHEDULE_TYPES
from app.core.sdmeta.a1111 import parse_fields
from app.core.compositing import to_rgb8
from app.server import controlnet_shape, dispatch, guide_shapes
from app.server.auth import owner_of, require_token
from app.server.errors import bad_field
from app.server.fetch import check_header, decode_base64, image_from_value
from app.server.models import public_record
from app.server.predictions import echo
from app.server.shapes import json_object, optional_float, optional_int, optional_str, required
from app.service.fields import FrontEnd
from app.service.generation import GenerationRequest

router = APIRouter(prefix="/sdapi/v1", tags=["AUTOMATIC1111"], dependencies=[Depends(require_token)])
NAMES = FrontEnd("a1111", dict(guidance="cfg_scale", strength="denoising_strength", scheduler="sampler_name",
                               image="init_images", masked_content="inpainting_fill",
                               padding="inpaint_full_res_padding", model="sd_model_checkpoint"))
FILL = {0: "fill", 1: "original", 2: "latent_noise", 3: "latent_nothing"}


def _sampler(body: dict[str, Any]) -> str | None:
    name = optional_str(body, "sampler_name") or optional_str(body, "sampler_index")
    if not name:
        return None
    schedule = body.get("scheduler") if isinstance(body.get("scheduler"), str) else None
    found = resolve_sampler(name, schedule)
    return found[0] if found else name  # unknown: the scheduler table's error names the valid ones


def _batch(body: dict[str, Any]) -> int:
    """``batch_size`` × ``n_iter``, each at least 1 (two negatives must not multiply into a batch)."""
    batch_size, n_iter = optional_int(body, "batch_size", 1), optional_int(body, "n_iter", 1)
    for key, value in (("batch_size", batch_size), ("n_iter", n_iter)):
        if value < 1:
            raise bad_field(key, value, "a whole number of at least 1")
    return batch_size * n_iter


def _fill(body: dict[str, Any]) -> str | None:
    value = optional_int(body, "inpainting_fill")
    if value is not None and value not in FILL:
        raise bad_field("inpainting_fill", value, "0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing)")
    return None if value is None else FILL[value]


@router.post("/img2img")
async def img2img(request: Request) -> dict[str, Any]:
    body = await json_object(request)
    images = required(body, "init_images", list, "a list with one base64 image")
    settings = body.get("override_settings") if isinstance(body.get("override_settings"), dict) else {}
    served = request.app.state.models.resolve(settings.get("sd_model_checkpoint"), "sd_model_checkpoint")
    has_mask = body.get("mask") not in (None, "")
    full_res = body.get("inpaint_full_res", True)
    controls = controlnet_shape.parse(body)  # alwayson_scripts.controlnet.args
    found_ref = guide_shapes.reference(body)  # (Reference, image value, field) of an IP-Adapter unit
    params = await dispatch.make_params(
        request, NAMES, prompt=optional_str(body, "prompt"), negative_prompt=optional_str(body, "negative_prompt"),
        model=served.ref, mode="inpaint" if has_mask else "img2img", scheduler=_sampler(body),
        steps=optional_int(body, "steps"), guidance=optional_float(body, "cfg_scale"),
        strength=optional_float(body, "denoising_strength"), seed=optional_int(body, "seed"), batch_size=_batch(body),
        width=optional_int(body, "width"), height=optional_int(body, "height"),
        mask_blur=optional_int(body, "mask_blur"), masked_content=_fill(body),
        inpaint_area="masked" if full_res in (True, 1) else "whole",
        padding=optional_int(body, "inpaint_full_res_padding"), controls=tuple(c.unit for c in controls),
        soft_inpainting=guide_shapes.soft_inpainting(body), reference=found_ref[0] if found_ref else None)
    policy = request.app.state.fetch_policy
    async with dispatch.admitted(request) as slot:
        image = await image_from_value(images[0], "init_images", policy)
        mask = None
        if has_mask:
            mask = dispatch.mask_for(image, await image_from_value(body["mask"], "mask", policy), "mask",
                                     grey=params.soft_inpainting is not None)
            if body.get("inpainting_mask_invert") in (1, True):
                mask = (255 - mask).astype(np.uint8)  # grey levels (soft inpainting) inverted too
        control_images = await controlnet_shape.images(controls, image, policy)
        look = None if found_ref is None else to_rgb8((await image_from_value(found_ref[1], found_ref[2], policy)).pixels)
        generation = GenerationRequest(params, image.pixels, mask, control_images=control_images, reference_image=look)
        job, record = await dispatch.run(request, "a1111", generation, NAMES, slot=slot)
    store = request.app.state.store
    encoded = [base64.b64encode(store.output_path(n).read_bytes()).decode() for n in job.outputs]
    public = public_record(record)
    infotexts = [metadata.format_a1111(dispatch.candidate(public, k), *reversed(record.candidates[k].shape[:2]))
                 for k in range(len(job.outputs))]
    sampler, schedule = metadata.a1111_sampler(record.params.scheduler)
    info = {"prompt": record.params.prompt, "negative_prompt": record.params.negative_prompt,
            "seed": job.seeds[0] if job.seeds else None, "all_seeds": job.seeds, "sampler_name": sampler, "scheduler": schedule,
            "steps": record.params.steps, "cfg_scale": record.params.guidance, "sd_model_name": served.id,
            "infotexts": infotexts, "job_id": job.id}
    parameters = {k: v for k, v in body.items() if k not in ("init_images", "mask")}
    return {"images": encoded, "parameters": echo(parameters), "info": json.dumps(info)}


@router.get("/progress")
async def progress(request: Request) -> dict[str, Any]:
    """The caller's own running job (another token's job, and so its id, stays unseen); the
    count of jobs is everyone's, as on A1111 (how busy the server is)."""
    queue = request.app.state.queue
    mine = queue.running(owner_of(request))
    ticket = mine[0] if mine else None
    busy = len(queue.running())
    fraction = ticket.step / ticket.total if ticket and ticket.total else 0.0
    return {"progress": fraction, "eta_relative": 0.0,
            "state": {"skipped": False, "interrupted": bool(ticket and ticket.cancel.is_set()),
                      "job": ticket.job.id if ticket else "", "job_count": queue.waiting() + busy,
                      "sampling_step": ticket.step if ticket else 0, "sampling_steps": ticket.total if ticket else 0},
            "current_image": None, "textinfo": None}


@router.post("/interrupt")
async def interrupt(request: Request) -> dict[str, Any]:
    """Stop the caller's running job (never another token's)."""
    queue = request.app.state.queue
    for ticket in queue.running(owner_of(request))[:1]:
        queue.cancel(ticket.job.id)
    return {}


@router.post("/png-info")
async def png_info(request: Request) -> dict[str, Any]:
    body = await json_object(request)
    value = required(body, "image", str, "a base64 PNG")
    limit = request.app.state.config.max_input_bytes
    async with request.app.state.decodes:
        return await asyncio.to_thread(_png_info, value, limit)


def _png_info(value: str, limit: int) -> dict[str, Any]:
    """Off the event loop, at most two at once: the same budget as every input image (bytes,
    kind, pixels from the header) before Pillow reads anything past the header."""
    data = decode_base64(value, "image", limit)
    check_header(data, "image", max_bytes=limit)
    with Image.open(io.BytesIO(data)) as pil:
        text = metadata.read_a1111_text(pil) or ""
        items = {k: v for k, v in pil.info.items() if isinstance(v, str)}
    return {"info": text, "items": echo(items), "parameters": parse_fields(text) if text else {}}


@router.get("/sd-models")
async def sd_models(request: Request) -> list[dict[str, Any]]:
    return [{"title": i, "model_name": i, "hash": None, "sha256": None, "filename": i, "config": None}
            for i in request.app.state.models.ids()]


@router.get("/samplers")
async def samplers() -> list[dict[str, Any]]:
    aliases: dict[str, list[str]] = {n: [] for n in SAMPLER_NAMES}
    for alias, name in ALIASES.items():
        aliases[name].append(alias)
    return [{"name": n, "aliases": aliases[n], "options": {}} for n in SAMPLER_NAMES]


@router.get("/schedulers")
async def schedule_types() -> list[dict[str, Any]]:
    """A1111's schedule types, for the ``scheduler`` field: any sampler runs with any of them (PLMS: Automatic)."""
    return [{"name": t.casefold().replace(" ", "_"), "label": t, "aliases": None, "default_rho": None,
             "need_inner_model": None} for t in SCHEDULE_TYPES]
