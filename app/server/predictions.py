"""Replicate-style predictions (seed 002), close enough to Replicate's HTTP API that the official
``replicate`` package pointed at this server (``replicate.Client(base_url=...)``) can create,
wait for and cancel one.

``POST /v1/predictions`` (``version`` or ``model`` + ``input``) or
``POST /v1/models/{owner}/{name}/predictions`` → 201 with the prediction (``Prefer: wait=N``
holds the answer up to N s); ``GET /v1/predictions/{id}`` (``?wait=N`` long-polls);
``POST /v1/predictions/{id}/cancel``; ``GET /v1/predictions``. Status goes starting →
processing → succeeded | failed | canceled; ``output`` holds URLs served by us, ``logs`` the
progress in tqdm's format (which the package parses), ``metrics.predict_time`` the run time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from app.server import dispatch
from app.server.auth import owner_of, require_token
from app.server.errors import ApiError
from app.server.fetch import image_from_value
from app.server.jobs import JobRecord
from app.server.models import INPAINT_ALIASES
from app.server.shapes import in_range, json_object, one_of, optional_float, optional_int, optional_str, required
from app.service.fields import FrontEnd
from app.service.generation import GenerationRequest

router = APIRouter(tags=["Predictions (Replicate-style)"], dependencies=[Depends(require_token)])
SCHEDULERS = ("DDIM", "K_EULER", "DPMSolverMultistep", "K_EULER_ANCESTRAL", "PNDM", "KLMS")
NAMES = FrontEnd("predictions", dict(steps="num_inference_steps", guidance="guidance_scale",
                                     batch_size="num_outputs", strength="prompt_strength"))
MAX_WAIT_S = 60
_WAIT = re.compile(r"wait(?:=(\d+))?")


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat().replace("+00:00", "Z")


#: Bounds of the input echo, at every depth: it is stored with the job and returned on every GET.
ECHO_TEXT, ECHO_ITEMS, ECHO_DEPTH = 200, 32, 4


def echo(value: Any, depth: int = 0) -> Any:
    """The input as given, bounded: long text (a 10 MB data URI) shortened, at most `ECHO_ITEMS`
    items per list or object and `ECHO_DEPTH` levels, so a record stays a few KB whatever is sent."""
    if isinstance(value, str):
        return value if len(value) <= ECHO_TEXT else value[:64] + f"…({len(value)} chars)"
    if isinstance(value, (dict, list)) and depth >= ECHO_DEPTH:
        return f"…({type(value).__name__} nested too deep to echo)"
    if isinstance(value, dict):
        items = list(value.items())
        kept = {echo(k, depth + 1): echo(v, depth + 1) for k, v in items[:ECHO_ITEMS]}
        if len(items) > ECHO_ITEMS:
            kept["…"] = f"{len(items) - ECHO_ITEMS} more keys"
        return kept
    if isinstance(value, list):
        kept_list = [echo(v, depth + 1) for v in value[:ECHO_ITEMS]]
        return kept_list + ([f"…({len(value) - ECHO_ITEMS} more items)"] if len(value) > ECHO_ITEMS else [])
    return value


def prediction_json(request: Request, job: JobRecord) -> dict[str, Any]:
    get_url = str(request.url_for("get_prediction", prediction_id=job.id))
    return {
        "id": job.id,
        "model": job.extra.get("model", ""),
        "version": job.extra.get("version", ""),
        "status": job.status,
        "input": job.extra.get("input", {}),
        "output": [dispatch.output_url(request, n) for n in job.outputs] if job.outputs else None,
        "logs": job.logs,
        "error": job.error,
        "metrics": {"predict_time": job.predict_time} if job.predict_time is not None else {},
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.completed_at),
        "urls": {"get": get_url, "cancel": get_url + "/cancel"},
        "data_removed": False,
    }


async def _settle(request: Request, job: JobRecord, seconds: float) -> None:
    """Long-poll: wait until the job finishes or ``seconds`` pass (or the client leaves)."""
    ticket = request.app.state.queue.ticket(job.id)
    if ticket is None or seconds <= 0:
        return
    future = asyncio.wrap_future(ticket.future)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(seconds, MAX_WAIT_S)
    while not future.done() and loop.time() < deadline and not await request.is_disconnected():
        await asyncio.wait({future}, timeout=min(0.25, max(0.0, deadline - loop.time())))
    if future.done():
        future.exception()  # retrieved: the outcome is in the job record


def _wait_seconds(request: Request) -> float:
    match = _WAIT.search(request.headers.get("prefer", ""))
    if match:
        return float(match.group(1) or MAX_WAIT_S)
    try:
        return float(request.query_params.get("wait", 0))
    except ValueError:
        return 0.0


async def _create(request: Request, model_name: str | None) -> JSONResponse:
    body = await json_object(request)
    version = optional_str(body, "version")
    requested = model_name or optional_str(body, "model") or (version.split(":")[0] if version and "/" in version else None)
    served = request.app.state.models.resolve(requested or INPAINT_ALIASES[2], "model" if model_name is None else "path")
    fields = body.get("input")
    if not isinstance(fields, dict):
        raise ApiError(400, "input: required, a JSON object of the model's inputs", "input", fields, "a JSON object")
    one_of("scheduler", fields.get("scheduler"), SCHEDULERS)
    num_outputs = optional_int(fields, "num_outputs")
    in_range("num_outputs", num_outputs, 1, 4)
    strength = optional_float(fields, "prompt_strength", optional_float(fields, "strength"))
    params = await dispatch.make_params(
        request, NAMES, prompt=optional_str(fields, "prompt"), negative_prompt=optional_str(fields, "negative_prompt"),
        model=served.ref, mode=served.mode, scheduler=fields.get("scheduler"),
        steps=optional_int(fields, "num_inference_steps"), guidance=optional_float(fields, "guidance_scale"),
        strength=strength, seed=optional_int(fields, "seed"), batch_size=num_outputs,
        width=optional_int(fields, "width"), height=optional_int(fields, "height"))
    policy = request.app.state.fetch_policy
    safety = fields.get("safety_checker")
    if safety is None and fields.get("disable_safety_checker") is False:
        safety = True  # asked for explicitly
    options = dispatch.load_options(request, safety, params.model, "safety_checker")
    extra = {"model": served.id, "version": version or "", "input": echo(fields)}
    image_value = required(fields, "image")
    with_mask = fields.get("mask") is not None or served.mode != "img2img"
    mask_value = required(fields, "mask") if with_mask else None
    async with dispatch.admitted(request) as slot:
        image = await image_from_value(image_value, "image", policy)
        mask = None
        if with_mask:
            mask = dispatch.mask_for(image, await image_from_value(mask_value, "mask", policy), "mask")
        ticket = await dispatch.queued(request, "predictions",
                                       GenerationRequest(params, image.pixels, mask, options=options), NAMES, extra, slot)
    await _settle(request, ticket.job, _wait_seconds(request))
    return JSONResponse(prediction_json(request, ticket.job), status_code=201)


@router.post("/v1/predictions", status_code=201)
async def create_prediction(request: Request) -> JSONResponse:
    return await _create(request, None)


@router.post("/v1/models/{owner}/{name}/predictions", status_code=201)
async def create_model_prediction(owner: str, name: str, request: Request) -> JSONResponse:
    return await _create(request, f"{owner}/{name}")


def _job(request: Request, prediction_id: str) -> JobRecord:
    """The caller's prediction; another token's is as unknown as one that never existed."""
    job = request.app.state.store.get(prediction_id, owner_of(request))
    if job is None:
        raise ApiError(404, f"prediction {prediction_id} not found", "id", prediction_id, "an id from POST /v1/predictions")
    return job


@router.get("/v1/predictions/{prediction_id}", name="get_prediction")
async def get_prediction(prediction_id: str, request: Request) -> dict[str, Any]:
    job = _job(request, prediction_id)
    await _settle(request, job, _wait_seconds(request))
    return prediction_json(request, job)


@router.post("/v1/predictions/{prediction_id}/cancel")
async def cancel_prediction(prediction_id: str, request: Request) -> dict[str, Any]:
    job = _job(request, prediction_id)
    if request.app.state.queue.cancel(job.id):
        await _settle(request, job, 10)  # a running job stops at its next step
    return prediction_json(request, job)


@router.get("/v1/predictions")
async def list_predictions(request: Request) -> dict[str, Any]:
    jobs = [j for j in request.app.state.store.all(owner_of(request)) if j.api == "predictions"][:100]
    return {"next": None, "previous": None, "results": [prediction_json(request, j) for j in jobs]}
