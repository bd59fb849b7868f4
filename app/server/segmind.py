"""Segmind's ``POST /v1/sd1.5-inpainting`` (seed 003): its field names, ranges and defaults
exactly as documented (tighter than ours: steps 20–100, guidance 0.1–25, img_width/img_height
512 or 768), header ``x-api-key``; the answer is the image itself (PNG with the editor's
metadata; ``samples`` > 1 answers JSON ``{"images": [base64, ...]}``). The seeds used are in the
``X-Seeds`` header."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from app.server import dispatch
from app.server.auth import require_token
from app.server.fetch import image_from_value
from app.server.models import INPAINT_ALIASES
from app.server.shapes import in_range, json_object, one_of, optional_float, optional_int, optional_str, required
from app.service.fields import FrontEnd
from app.service.generation import GenerationRequest

router = APIRouter(tags=["Segmind"], dependencies=[Depends(require_token)])
SCHEDULERS = ("DDIM", "DPM Multi", "DPM Single", "Euler a", "Euler", "Heun", "DPM2 a Karras", "DPM2 Karras", "LMS",
              "PNDM", "UniPC")
SIZES = (512, 768)
NAMES = FrontEnd("segmind", dict(steps="num_inference_steps", guidance="guidance_scale", batch_size="samples",
                                 width="img_width", height="img_height"))


@router.post("/v1/sd1.5-inpainting")
async def sd15_inpainting(request: Request) -> Response:
    body = await json_object(request)
    prompt = optional_str(body, "prompt")
    required(body, "prompt")
    samples = optional_int(body, "samples", 1)
    in_range("samples", samples, 1, 4)
    scheduler = body.get("scheduler", "DDIM")
    one_of("scheduler", scheduler, SCHEDULERS)
    steps = optional_int(body, "num_inference_steps", 20)
    in_range("num_inference_steps", steps, 20, 100)
    guidance = optional_float(body, "guidance_scale", 7.5)
    in_range("guidance_scale", guidance, 0.1, 25)
    strength = optional_float(body, "strength", 1.0)
    in_range("strength", strength, 0.1, 1)
    width, height = optional_int(body, "img_width", 512), optional_int(body, "img_height", 512)
    one_of("img_width", width, SIZES)
    one_of("img_height", height, SIZES)
    seed = optional_int(body, "seed")
    served = request.app.state.models.resolve(body.get("model") or INPAINT_ALIASES[0])
    params = await dispatch.make_params(request, NAMES, prompt=prompt, negative_prompt=optional_str(body, "negative_prompt"),
                                  model=served.ref, scheduler=scheduler, steps=steps, guidance=guidance,
                                  strength=strength, seed=seed, batch_size=samples, width=width, height=height)
    policy = request.app.state.fetch_policy
    options = dispatch.load_options(request, body.get("safety_checker"), params.model, "safety_checker")
    image_value, mask_value = required(body, "image"), required(body, "mask")
    async with dispatch.admitted(request) as slot:
        image = await image_from_value(image_value, "image", policy)
        mask = dispatch.mask_for(image, await image_from_value(mask_value, "mask", policy), "mask")
        job, _ = await dispatch.run(request, "segmind", GenerationRequest(params, image.pixels, mask, options=options),
                                    NAMES, slot=slot)
    store = request.app.state.store
    headers = {"X-Seeds": ",".join(str(s) for s in job.seeds), "X-Job-Id": job.id}
    if len(job.outputs) == 1:
        return Response(store.output_path(job.outputs[0]).read_bytes(), media_type="image/png", headers=headers)
    images = [base64.b64encode(store.output_path(n).read_bytes()).decode() for n in job.outputs]
    return JSONResponse({"images": images, "seeds": job.seeds}, headers=headers)
