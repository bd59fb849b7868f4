"""The path every route shares: request fields → `GenerationRequest` → service check → queue →
(for synchronous routes) wait for the record while watching the client.

Each API names the same parameter differently (``num_inference_steps``, ``steps``, ``num_steps``);
a route passes its `FrontEnd` (its name map), so an error says ``num_inference_steps = 500 is not
valid: must be from 1 to 150`` in the words the client used. Building and checking are the
service's (`app.service.fields`); statuses come from its one table (`app.service.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np
from fastapi import Request

from app.core.errors import EmptyMaskError, UserError
from app.core.imageio import ImageLoadError, LoadedImage, load_mask
from app.core.params import GenerationParams, ParamError
from app.core.records import GenerationRecord
from app.service import Cancelled, LoadOptions
from app.server.auth import owner_of
from app.server.errors import ApiError, bad_field, scrub_paths
from app.server.jobs import JobRecord
from app.server.queue import JobQueue, QueueFull, Slot, Ticket
from app.service.errors import HTTP, outcome
from app.service.fields import FrontEnd, build
from app.service.generation import GenerationRequest

#: How often a waiting synchronous route checks whether its client went away.
DISCONNECT_POLL_S = 0.1
#: The longest prompt (and negative prompt) taken, in characters. A CLIP token covers at least one
#: character, so this bounds a prompt to at most 3000 tokens (40 chunks of 75): encoding it takes
#: well under a second, where an unbounded 1 MB prompt held the one worker for minutes.
MAX_PROMPT_CHARS = 3000


async def make_params(request: Request, front: FrontEnd, **fields: Any) -> GenerationParams:
    """The request's fields (keyed by `GenerationParams` field; None = not given) through the
    service's builder and check (`GenerationService.check_params`, the one place of every
    rule), before any image is fetched: the params to run, or a 400 in ``front``'s names."""
    for key in ("prompt", "negative_prompt"):
        check_prompt(front.of(key), fields.get(key))
    try:
        params = build(front, fields)
        return await asyncio.to_thread(request.app.state.service.check_params, params, LoadOptions(), front)
    except UserError as exc:
        raise user_error(exc, front) from None


def check_prompt(field: str, text: object, status: int = 400) -> None:
    """A 400 for a prompt over `MAX_PROMPT_CHARS`, before it is parsed (the server's own limit;
    every other rule of a prompt is the service's)."""
    if isinstance(text, str) and len(text) > MAX_PROMPT_CHARS:
        raise bad_field(field, text, f"at most {MAX_PROMPT_CHARS} characters (about {MAX_PROMPT_CHARS} CLIP tokens; "
                                     "longer prompts are encoded in chunks of 75 tokens, and few models use more than a few)",
                        status)


def mask_for(image: LoadedImage, mask: LoadedImage | np.ndarray, field: str, grey: bool = False) -> np.ndarray:
    """A mask image (white = repaint) checked against the image's size; ``grey`` keeps its grey
    levels (soft inpainting)."""
    pixels = mask.pixels if isinstance(mask, LoadedImage) else mask
    try:
        return load_mask(pixels, image.pixels.shape[:2], grey=grey)
    except ImageLoadError as exc:
        raise ApiError(400, f"{field}: {exc}", field, f"{pixels.shape[1]}×{pixels.shape[0]}",
                       f"{image.width}×{image.height}, the image's size") from None


def blank_canvas(width: int | None, height: int | None) -> tuple[np.ndarray, np.ndarray]:
    """No image given: a mid-gray canvas, all of it masked (text-to-image as full-canvas inpainting)."""
    w, h = width or 512, height or 512
    return np.full((h, w, 3), 127, np.uint8), np.full((h, w), 255, np.uint8)


def load_options(request: Request, safety_checker: object, model_ref: str, field: str) -> LoadOptions:
    """Off unless asked (the local default, as in the editor); asking for it on a method that has
    none is a 400, never a silent pass. A diffusion model without an installed checker fails
    its load with a message saying so (the loader checks the folder)."""
    if safety_checker in (None, False):
        return LoadOptions()
    if safety_checker is not True:
        raise bad_field(field, safety_checker, "true or false")
    if request.app.state.service.nominal_capabilities(model_ref).prompt_free:  # no file read on the event loop
        raise ApiError(400, f"{field}: the safety checker was asked for, but {model_ref} has none (it is not a "
                            "diffusion model); turn it off or choose a diffusion model", field, True, "false with " + model_ref)
    return LoadOptions(safety_checker=True)


def user_error(exc: UserError | Cancelled, front: FrontEnd, api: str = HTTP) -> ApiError:
    """A service error as an HTTP error: the status of its kind (`app.service.errors.OUTCOMES`),
    the field in the route's own names."""
    status = outcome(exc, api)
    if isinstance(exc, Cancelled):
        return ApiError(status, "the job was canceled")
    if isinstance(exc, ParamError):
        named = front.error(exc)
        return bad_field(named.field, named.value, named.allowed, status)
    message = scrub_paths(exc.message)
    if isinstance(exc, EmptyMaskError):
        return ApiError(status, message, front.of("mask"), "empty", "a mask with at least one pixel to repaint")
    if exc.bad_input:
        return ApiError(status, message, front.of(exc.field or "image"))
    return ApiError(status, message)


def queue_full(exc: QueueFull) -> ApiError:
    return ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)})


@contextlib.asynccontextmanager
async def admitted(request: Request) -> AsyncIterator[Slot]:
    """A place in the queue (429 with Retry-After when there is none), held while the route
    fetches and decodes its images and spent by `start`: a full queue refuses a request before
    it costs a fetch or a decoded image."""
    try:
        slot = request.app.state.queue.reserve()
    except QueueFull as exc:
        raise queue_full(exc) from None
    try:
        yield slot
    finally:
        slot.release()


async def start(request: Request, api: str, generation: GenerationRequest, names: FrontEnd,
                extra: Mapping[str, Any] | None = None, slot: Slot | None = None) -> Ticket:
    """Check the pixels with the service (400 on bad input; the params were checked by
    `make_params`, once), then queue (429 with Retry-After when full)
    in ``slot`` when the route holds one (`admitted`). The job belongs to the caller's token.
    Await ``ticket.recorded`` before telling the client an unfinished job's id (`queued`)."""
    state = request.app.state
    try:
        generation = await asyncio.to_thread(state.service.check, replace(generation, front=names, checked=True))
    except UserError as exc:
        raise user_error(exc, names) from None
    queue: JobQueue = state.queue
    try:
        return queue.submit(api, generation.params.to_dict(), extra or {}, generation, slot, owner_of(request) or "")
    except QueueFull as exc:
        raise queue_full(exc) from None


async def queued(request: Request, api: str, generation: GenerationRequest, names: FrontEnd,
                 extra: Mapping[str, Any] | None = None, slot: Slot | None = None) -> Ticket:
    """`start`, answered once the job's record is on disk: for routes that return the id of a
    job that may still run (a restart must find it)."""
    ticket = await start(request, api, generation, names, extra, slot)
    try:
        await asyncio.wrap_future(ticket.recorded)
    except OSError as exc:
        request.app.state.queue.cancel(ticket.job.id)
        raise ApiError(500, f"the job could not be recorded ({exc.strerror or exc}); it was canceled") from None
    return ticket


async def wait(request: Request, ticket: Ticket, names: FrontEnd) -> GenerationRecord:
    """The record of a synchronous job. A client that disconnects cancels its job."""
    future = asyncio.wrap_future(ticket.future)
    deadline = asyncio.get_running_loop().time() + request.app.state.config.sync_timeout_s
    while not future.done():
        await asyncio.wait({future}, timeout=DISCONNECT_POLL_S)
        if not future.done() and await request.is_disconnected():
            request.app.state.queue.cancel(ticket.job.id)
            raise ApiError(499, "client closed the request; the job was canceled")
        if asyncio.get_running_loop().time() > deadline:
            await asyncio.wrap_future(ticket.recorded)  # the answer names the job
            raise ApiError(504, f"the job did not finish in {request.app.state.config.sync_timeout_s:g} s; "
                                f"it goes on as job {ticket.job.id}")
    try:
        return future.result()
    except (Cancelled, UserError) as exc:
        raise user_error(exc, names) from None
    except Exception as exc:
        raise ApiError(500, scrub_paths(f"the job failed: {type(exc).__name__}: {exc}")) from None


async def run(request: Request, api: str, generation: GenerationRequest, names: FrontEnd,
              extra: Mapping[str, Any] | None = None, slot: Slot | None = None) -> tuple[JobRecord, GenerationRecord]:
    """`start` then `wait`: what the synchronous routes do."""
    ticket = await start(request, api, generation, names, extra, slot)
    return ticket.job, await wait(request, ticket, names)


def candidate(record: GenerationRecord, index: int) -> GenerationParams:
    """The parameters that regenerate one output (the service's rule: seed s+k, batch 1)."""
    from app.service.records import candidate_params

    return candidate_params(record, index)


def output_url(request: Request, name: str) -> str:
    return str(request.url_for("output_file", name=name))
