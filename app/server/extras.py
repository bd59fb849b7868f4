"""A1111's postprocessing routes (``/sdapi/v1``): ``extra-single-image`` (upscale and restore
faces, the fields webuiapi's ``extra_single_image`` sends) → ``{html_info, image}``,
``extra-batch-images`` (the same on ``imageList``) → ``{html_info, images}``; ``upscalers`` and
``face-restorers`` (what this server has).

Only the request shape lives here; the work is `app.service.extras` on the app's
`RestorationService`, which shares the generation service's device lock. A run takes a place in
the one job queue like a generation (admission before the image is decoded, 429 when full, the
same worker in turn with generations, cancel on disconnect, ``/progress``, ``/interrupt``),
as a queue task: it leaves no job record or stored file — the image comes back in the answer.
Upscaler names are A1111's ("None", "Lanczos", "Nearest", "R-ESRGAN 4x+" for
RealESRGAN_x4plus, …) or a found file's name; never a path (nor does a listing show one).
"""

from __future__ import annotations

import asyncio
import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request

from app.core import density
from app.core.decode_budget import MAX_PIXELS
from app.core.errors import UserError
from app.core.imageio import encode_png
from app.server import dispatch
from app.server.auth import owner_of, require_token
from app.service.fields import FrontEnd
from app.server.errors import ApiError, bad_field, scrub_paths
from app.server.fetch import check_header, decode_base64, decode_image, image_from_value
from app.server.queue import QueueFull, Ticket
from app.server.shapes import json_object, optional_float, optional_int, optional_str, required
from app.service import extras
from app.service.restoration import RestorationService

router = APIRouter(prefix="/sdapi/v1", tags=["AUTOMATIC1111"], dependencies=[Depends(require_token)])
NAMES = FrontEnd("a1111-extras", {"model": "upscaler_1", "image": "image", "mask": "image"})

#: A1111's names for the upscaler files it ships or downloads (its Real-ESRGAN list and its
#: ESRGAN/SwinIR defaults) → their usual file names: a client asking for "R-ESRGAN 4x+" gets
#: RealESRGAN_x4plus when that file is installed.
A1111_NAMES = {
    "R-ESRGAN 4x+": "RealESRGAN_x4plus",
    "R-ESRGAN 4x+ Anime6B": "RealESRGAN_x4plus_anime_6B",
    "R-ESRGAN 2x+": "RealESRGAN_x2plus",
    "R-ESRGAN General 4xV3": "realesr-general-x4v3",
    "R-ESRGAN General WDN 4xV3": "realesr-general-wdn-x4v3",
    "R-ESRGAN AnimeVideo": "realesr-animevideov3",
    "ESRGAN_4x": "ESRGAN_4x",
    "SwinIR 4x": "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN",
}
_BY_FILE = {stem.casefold(): name for name, stem in A1111_NAMES.items()}
#: A1111's scale for its resize "upscalers" in the listing.
RESIZE_SCALE = 4
#: The largest ``upscaling_resize`` taken (A1111's slider goes to 8).
MAX_RESIZE = 8.0
#: Images one ``extra-batch-images`` request may carry.
MAX_BATCH = 16


@dataclass(frozen=True)
class Upscaler:
    name: str  # what clients send and see
    model: str | None  # the file's path (None: a plain resize)
    architecture: str | None = None
    scale: float = RESIZE_SCALE


def upscalers(service: RestorationService) -> list[Upscaler]:
    """The resizes, then every upscaling model found (each name once: the first file wins)."""
    listed = [Upscaler(n, None) for n in extras.RESIZES]
    names = {u.name.casefold() for u in listed}
    for summary in service.available("upscale"):
        name = _BY_FILE.get(summary.path.stem.casefold(), summary.path.stem)
        if name.casefold() not in names:
            names.add(name.casefold())
            listed.append(Upscaler(name, str(summary.path), summary.architecture, summary.scale))
    return listed


def face_restorers(service: RestorationService) -> dict[str, Any]:
    """A1111's two face restorer names → the first model found for each: "CodeFormer" for a
    CodeFormer file (spandrel's extra architectures), "GFPGAN" for any other face model
    (GFPGAN first, else RestoreFormer, …)."""
    found = service.available("restore-faces")
    codeformer = [s for s in found if s.architecture == "CodeFormer"]
    others = sorted((s for s in found if s.architecture != "CodeFormer"), key=lambda s: s.architecture != "GFPGAN")
    return {name: group[0] for name, group in (("CodeFormer", codeformer), ("GFPGAN", others)) if group}


def _find(listed: list[Upscaler], field: str, value: str) -> Upscaler:
    """The upscaler ``value`` names: its listed name, or its file's name with or without the
    suffix (any case)."""
    wanted = value.casefold()
    for upscaler in listed:
        names = {upscaler.name}
        if upscaler.model is not None:
            path = Path(upscaler.model)
            names |= {path.name, path.stem}
        if wanted in {n.casefold() for n in names}:
            return upscaler
    raise bad_field(field, value, "one of " + ", ".join(u.name for u in listed) + " (GET /sdapi/v1/upscalers)")


@dataclass(frozen=True)
class Fields:
    """The request's fields, checked as A1111's pydantic model checks them (its ranges)."""

    resize_mode: int
    by: float
    to: tuple[int, int]
    crop: bool
    upscaler_1: str
    upscaler_2: str
    visibility_2: float
    gfpgan: float
    codeformer: float
    codeformer_weight: float

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Fields:
        resize_mode = optional_int(body, "resize_mode", 0)
        if resize_mode not in (0, 1):
            raise bad_field("resize_mode", resize_mode, "0 (scale by upscaling_resize) or 1 (scale to "
                                                        "upscaling_resize_w × upscaling_resize_h)")
        by = optional_float(body, "upscaling_resize", 2.0)
        if not 0 < by <= MAX_RESIZE:
            raise bad_field("upscaling_resize", by, f"more than 0 and at most {MAX_RESIZE:g}")
        size = []
        for key in ("upscaling_resize_w", "upscaling_resize_h"):
            value = optional_int(body, key, 512)
            if value < 1:
                raise bad_field(key, value, "a whole number of at least 1")
            size.append(value)
        shares = {}
        for key in ("extras_upscaler_2_visibility", "gfpgan_visibility", "codeformer_visibility", "codeformer_weight"):
            value = optional_float(body, key, 0.0)
            if not 0 <= value <= 1:
                raise bad_field(key, value, "from 0 to 1")
            shares[key] = value
        return cls(resize_mode, by, (size[0], size[1]), _flag(body, "upscaling_crop", True),
                   optional_str(body, "upscaler_1", extras.NONE) or extras.NONE,
                   optional_str(body, "upscaler_2", extras.NONE) or extras.NONE,
                   shares["extras_upscaler_2_visibility"], shares["gfpgan_visibility"],
                   shares["codeformer_visibility"], shares["codeformer_weight"])


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_field(key, value, "true or false")
    return value


def plan(service: RestorationService, fields: Fields) -> tuple[extras.Upscale | None, tuple[extras.FaceRestore, ...]]:
    """Names → model files (400 naming the field for an unknown one); faces asked for need a
    face model and a face detector (400 naming the visibility field, saying what to install)."""
    upscale = None
    if fields.upscaler_1 != extras.NONE or fields.upscaler_2 != extras.NONE:
        listed = upscalers(service)
        first = _find(listed, "upscaler_1", fields.upscaler_1)
        second = _find(listed, "upscaler_2", fields.upscaler_2)
        upscale = extras.Upscale(_ref(first), fields.by, fields.to if fields.resize_mode == 1 else None, fields.crop,
                                 _ref(second), fields.visibility_2, (first.name, second.name))
    faces = []
    wanted = [(name, key, share) for name, key, share in (("GFPGAN", "gfpgan_visibility", fields.gfpgan),
                                                          ("CodeFormer", "codeformer_visibility", fields.codeformer))
              if share > 0]
    if wanted:
        found = face_restorers(service)
        for name, key, share in wanted:
            if name not in found:
                raise bad_field(key, share, f"0: this server has no {name} face model (GET /sdapi/v1/face-restorers)")
            try:
                service.face_detector or _default_detector()
            except UserError as exc:
                raise ApiError(400, scrub_paths(exc.message), key, share, "0, or a face detector installed") from None
            faces.append(extras.FaceRestore(str(found[name].path), share, name))
    return upscale, tuple(faces)


def _default_detector():
    from app.service import face_detection as detect

    return detect.default_detector()


def _ref(upscaler: Upscaler) -> str:
    return upscaler.model or upscaler.name


@router.post("/extra-single-image")
async def extra_single_image(request: Request) -> dict[str, Any]:
    body = await json_object(request)
    value = required(body, "image", str, "a base64 image")
    pngs, info = await _postprocess(request, body, [(value, "image")])
    return {"html_info": _html(info), "image": base64.b64encode(pngs[0]).decode()}


@router.post("/extra-batch-images")
async def extra_batch_images(request: Request) -> dict[str, Any]:
    """The same on ``imageList`` (``[{data, name}]``, webuiapi's ``extra_batch_images``): at most
    `MAX_BATCH` images, whose pixels together stay within the one pixel limit (from their
    headers, before any is decoded); one queue place, one run after the other."""
    body = await json_object(request)
    items = required(body, "imageList", list, f"a list of 1 to {MAX_BATCH} {{data, name}} objects")
    if len(items) > MAX_BATCH:
        raise bad_field("imageList", items, f"at most {MAX_BATCH} images per request")
    values = []
    for i, item in enumerate(items):
        data = item.get("data") if isinstance(item, dict) else None
        if not isinstance(data, str) or not data:
            raise bad_field(f"imageList[{i}].data", data, "a base64 image")
        values.append((data, f"imageList[{i}].data"))
    pngs, info = await _postprocess(request, body, values)
    return {"html_info": _html(info), "images": [base64.b64encode(p).decode() for p in pngs]}


async def _postprocess(request: Request, body: dict[str, Any],
                       values: list[tuple[str, str]]) -> tuple[list[bytes], dict[str, str]]:
    """Check the fields, hold a queue place, decode the images within the budget, run them as
    one queue task and wait for it: the PNGs (ICC kept, DPI scaled) and what was done."""
    fields = Fields.parse(body)
    state = request.app.state
    service: RestorationService = state.restoration
    upscale, faces = await asyncio.to_thread(plan, service, fields)
    async with dispatch.admitted(request) as slot:
        images = await _images(values, state.fetch_policy)
        works = [extras.ExtrasRequest(image.pixels, upscale, faces) for image in images]
        for work in works:
            try:
                extras.check(work)
            except UserError as exc:
                field, asked = (("upscaling_resize", fields.by) if fields.resize_mode == 0 else
                                ("upscaling_resize_w", f"{fields.to[0]}×{fields.to[1]}"))
                raise ApiError(400, exc.message, field, asked, "a result within the pixel limit") from None
        kept = [(image.info.get("dpi"), image.icc_profile) for image in images]
        del images

        def task(ticket: Ticket) -> tuple[list[bytes], dict[str, str]]:
            pngs, info = [], {}
            for index, (work, (dpi, icc)) in enumerate(zip(works, kept)):
                def progress(step: int, total: int, index: int = index) -> None:
                    ticket.step, ticket.total = index * total + step, len(works) * total

                result = extras.run_extras(service, work, progress, ticket.cancel.is_set)
                png = encode_png(result.pixels, icc_profile=icc, fast=True)
                pngs.append(density.with_dpi(png, "PNG", density.scaled(dpi, *result.scale_from(work.image))))
                info = result.info
            return pngs, info

        try:
            ticket = state.queue.submit_task("a1111-extras", task, slot=slot, owner=owner_of(request) or "")
        except QueueFull as exc:
            raise dispatch.queue_full(exc) from None
    return await dispatch.wait(request, ticket, NAMES)


async def _images(values: list[tuple[str, str]], policy) -> list:
    """One image as any route takes it (base64, data URI, allowed URL); several: base64 only,
    their declared pixels summed from the headers before any is decoded."""
    if len(values) == 1:
        return [await image_from_value(values[0][0], values[0][1], policy)]

    def decode_all() -> list:
        data = [decode_base64(text, field, policy.max_bytes) for text, field in values]
        total = sum(w * h for (w, h) in (check_header(d, field, max_bytes=policy.max_bytes)
                                           for d, (_, field) in zip(data, values)))
        if total > MAX_PIXELS:
            raise ApiError(413, f"the images hold {total:,} pixels together; the limit is {MAX_PIXELS:,}",
                           "imageList", f"{total} pixels", f"at most {MAX_PIXELS} pixels in all")
        return [decode_image(d, field, policy.max_bytes) for d, (_, field) in zip(data, values)]

    return await asyncio.to_thread(decode_all)


def _html(info: dict[str, str]) -> str:
    """A1111's ``html_info``: what was done, as one paragraph."""
    text = ", ".join(f"{k}: {v}" for k, v in info.items())
    return f"<p>{html.escape(text)}</p>" if text else ""


@router.get("/upscalers")
async def list_upscalers(request: Request) -> list[dict[str, Any]]:
    listed = await asyncio.to_thread(upscalers, request.app.state.restoration)
    return [{"name": u.name, "model_name": u.architecture, "model_path": None,
             "model_url": None, "scale": u.scale} for u in listed]


@router.get("/face-restorers")
async def list_face_restorers(request: Request) -> list[dict[str, Any]]:
    """A1111's names for the face models found (``cmd_dir``, a folder on A1111, is never told)."""
    found = await asyncio.to_thread(face_restorers, request.app.state.restoration)
    return [{"name": name, "cmd_dir": None} for name in found]
