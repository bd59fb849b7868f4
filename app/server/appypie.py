"""Appypie/Pixazo shape (seed 004): ``POST /getImage`` (header ``Ocp-Apim-Subscription-Key``)
→ ``{"imageUrl": ..., "job_set_id": ...}``, and ``POST /getGenerationResults {job_set_id}`` →
``{status, results: [{imageUrl, job_id}], job_set_id}``. Errors are ``{"error": "..."}`` as in
that document's table (plus ``field``/``value``/``allowed``). ``imageUrl``/``maskUrl`` may also
be data URIs or base64; without ``imageUrl`` the whole canvas of width × height is painted.
Our extra fields (not in that document): ``scheduler``, ``strength``, ``model``, ``safety_checker``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from app.server import dispatch
from app.server.auth import owner_of, require_token
from app.server.errors import ApiError, bad_field
from app.server.fetch import image_from_value
from app.server.jobs import JobRecord
from app.server.shapes import json_object, optional_float, optional_int, optional_str, required
from app.service.fields import FrontEnd
from app.service.generation import GenerationRequest

router = APIRouter(tags=["Appypie / Pixazo"], dependencies=[Depends(require_token)])
NAMES = FrontEnd("appypie", dict(steps="num_steps", mask="maskUrl", image="imageUrl"))


def _results(request: Request, job: JobRecord) -> list[dict[str, str]]:
    return [{"imageUrl": dispatch.output_url(request, n), "job_id": f"{job.id}-{k}"} for k, n in enumerate(job.outputs)]


@router.post("/getImage")
async def get_image(request: Request) -> dict[str, Any]:
    body = await json_object(request)
    served = request.app.state.models.resolve(body.get("model"))
    params = await dispatch.make_params(
        request, NAMES, prompt=optional_str(body, "prompt"), negative_prompt=optional_str(body, "negative_prompt"),
        model=served.ref, steps=optional_int(body, "num_steps"), guidance=optional_float(body, "guidance"),
        seed=optional_int(body, "seed"), width=optional_int(body, "width"), height=optional_int(body, "height"),
        scheduler=optional_str(body, "scheduler"), strength=optional_float(body, "strength"))
    required(body, "prompt")
    policy = request.app.state.fetch_policy
    options = dispatch.load_options(request, body.get("safety_checker"), params.model, "safety_checker")
    blank = body.get("imageUrl") in (None, "")
    if blank and body.get("maskUrl"):
        raise bad_field("imageUrl", None, "required when maskUrl is given")
    mask_value = None if blank else required(body, "maskUrl")
    async with dispatch.admitted(request) as slot:
        if blank:
            pixels, mask = dispatch.blank_canvas(params.width, params.height)
        else:
            image = await image_from_value(body["imageUrl"], "imageUrl", policy)
            pixels = image.pixels
            mask = dispatch.mask_for(image, await image_from_value(mask_value, "maskUrl", policy), "maskUrl")
        job, _ = await dispatch.run(request, "appypie", GenerationRequest(params, pixels, mask, options=options), NAMES,
                                    slot=slot)
    return {"imageUrl": dispatch.output_url(request, job.outputs[0]), "job_set_id": job.id}


@router.post("/getGenerationResults")
async def get_generation_results(request: Request) -> dict[str, Any]:
    body = await json_object(request)
    job_set_id = required(body, "job_set_id")
    store = request.app.state.store
    job = store.get(job_set_id, owner_of(request)) if isinstance(job_set_id, str) else None
    if job is None or job.api != "appypie":
        raise ApiError(404, f"job_set_id {job_set_id!r} not found", "job_set_id", job_set_id, "an id from /getImage")
    answer: dict[str, Any] = {"status": job.status, "results": _results(request, job), "job_set_id": job.id}
    if job.error:
        answer["error"] = job.error
    return answer
