"""Generation parameters inside image files ("recall parameters from image").

Two records are written into every PNG we save:

* ``parameters`` — AUTOMATIC1111's infotext, the de-facto standard that A1111, Forge, SD.Next,
  InvokeAI's importer, Civitai and most image browsers read::

      a photo of a cat
      Negative prompt: blurry
      Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: sd15, Denoising strength: 1.0, Mask blur: 4

  Values holding ``,`` ``:`` or a newline are JSON-quoted, exactly as A1111's ``quote()`` does.
* ``inpaint-studio`` — our JSON with the full `GenerationParams.to_dict()`, which is lossless.

The sampler is written as A1111 ≥ 1.9 writes it: ``Sampler: DPM++ 2M, Schedule type: Karras``, so
A1111 and Forge pick the scheduler we used. Reading (every tool's format, recognised by content)
lives in `app.core.sdmeta`; `read_params` here is its short form.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from app.core.schedulers import split
from app.core.params import CLASSICAL_MODELS, GenerationParams, ParamError
from app.core.sdmeta import read_metadata
from app.core.sdmeta.a1111 import parse_fields
from app.core.sdmeta.fields import build_params
from app.core.sdmeta.guide_infotext import guide_fields
from app.core.sdmeta.sources import collect_texts

A1111_KEY = "parameters"
JSON_KEY = "inpaint-studio"

#: Sampler names whose A1111 name differs.
_A1111_SAMPLER = {"PNDM": "PLMS"}


def a1111_sampler(scheduler: str) -> tuple[str, str]:
    """Our scheduler (any accepted name) → (A1111 "Sampler", A1111 ≥ 1.9 "Schedule type"): the
    pair we ran, which reading gives back ("Automatic": the sampler's own diffusers schedule)."""
    try:
        sampler, schedule = split(scheduler)
    except ParamError:
        return scheduler, "Automatic"
    return _A1111_SAMPLER.get(sampler, sampler), schedule

#: A1111's fields naming the LoRAs and embeddings of a run with short hashes ("name: hash, …").
NETWORK_HASH_FIELDS = ("Lora hashes", "TI hashes")
#: ``params.extra`` key the diffusion backend fills: {ControlNet model ref: "name [hash]"}.
CONTROLNET_MODELS = "ControlNet models"
_MASKED_CONTENT_TO_A1111 = {"fill": "fill", "latent_noise": "latent noise", "latent_nothing": "latent nothing"}


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def quote(value: Any) -> str:
    """A1111's quoting: JSON-quote a value that holds a comma, a colon or a newline."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _model_name(model: str) -> str:
    if model in CLASSICAL_MODELS:
        return model
    name = Path(model).name if (os.sep in model or model.endswith((".safetensors", ".ckpt"))) else model
    for ext in (".safetensors", ".ckpt"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name or model


def format_a1111(params: GenerationParams, width: int, height: int) -> str:
    """A1111 infotext for ``params``; ``width``×``height`` unless params fix the model size."""
    sampler, schedule = a1111_sampler(params.scheduler)
    fields: dict[str, Any] = {
        "Steps": params.steps,
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": _num(params.guidance),
        "Seed": params.seed,
        "Size": f"{params.width or width}x{params.height or height}",
        "Model": _model_name(params.model),
        "Denoising strength": _num(params.strength),
    }
    if params.is_prompt_free:  # no sampling: seed, steps, sampler, CFG and strength decided nothing
        for key in ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Denoising strength"):
            del fields[key]
    if params.mode == "inpaint" or params.is_prompt_free:  # a classical method (or LaMa) only inpaints
        fields["Mask blur"] = params.mask_blur
        # Written for both values: A1111 omits "Whole picture", but our default is "Only masked",
        # so an omitted field would read back as the other setting.
        fields["Inpaint area"] = "Only masked" if params.inpaint_area == "masked" else "Whole picture"
        if params.inpaint_area == "masked":
            fields["Masked area padding"] = params.padding
        if params.masked_content in _MASKED_CONTENT_TO_A1111:
            fields["Masked content"] = _MASKED_CONTENT_TO_A1111[params.masked_content]
    for key in NETWORK_HASH_FIELDS:  # set by the diffusion backend (network_files.network_hashes)
        fields[key] = params.extra.get(key)
    fields.update(controlnet_fields(params))
    fields.update(guide_fields(params))  # soft inpainting, the reference's IP-Adapter unit
    line = ", ".join(f"{k}: {quote(v)}" for k, v in fields.items() if v is not None and v != "")
    negative = f"\nNegative prompt: {params.negative_prompt}" if params.negative_prompt else ""
    return f"{params.prompt}{negative}\n{line}".strip()


def controlnet_fields(params: GenerationParams) -> dict[str, str]:
    """``ControlNet N`` fields as A1111's extension writes them, each model named ``name [hash]``
    as the backend found it (``extra["ControlNet models"]``, by reference), else by its own name."""
    from app.core.sdmeta.controlnet import format_unit

    labels = params.extra.get(CONTROLNET_MODELS)
    labels = labels if isinstance(labels, dict) else {}
    return {f"ControlNet {i}": format_unit(unit, str(labels.get(unit.model) or _model_name(unit.model)))
            for i, unit in enumerate(params.controls)}


def _num(value: float) -> str:
    """As A1111 prints its float fields: 7.5 → "7.5", 7 → "7.0"."""
    return str(float(value))


def to_json(params: GenerationParams) -> str:
    return json.dumps(params.to_dict(), ensure_ascii=False, sort_keys=True, default=str)


#: Largest text chunk we write. Pillow refuses a PNG whose text chunks pass 64 MB together
#: (``PngImagePlugin.MAX_TEXT_MEMORY``); two of these stay well under it, so whatever we write
#: opens with its parameters. Only a prompt of millions of words comes near.
MAX_TEXT_CHUNK_CHARS = 16 * 1024 * 1024


def png_text_chunks(params: GenerationParams | None, width: int, height: int) -> list[tuple[str, str]]:
    """(key, text) pairs for a PNG: the A1111 infotext and our JSON; a text past
    `MAX_TEXT_CHUNK_CHARS` is left out (the pixels are still written and read back)."""
    if params is None:
        return []
    chunks = [(A1111_KEY, format_a1111(params, width, height)), (JSON_KEY, to_json(params))]
    return [(key, text) for key, text in chunks if len(text) <= MAX_TEXT_CHUNK_CHARS]


def exif_with_params(params: GenerationParams | None, width: int, height: int) -> Image.Exif | None:
    """EXIF with the A1111 text in UserComment (how A1111 stores it in JPEG and WebP)."""
    if params is None:
        return None
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + format_a1111(params, width, height).encode("utf-16-be")
    return exif


# --------------------------------------------------------------------------------------------
# reading: delegated to app.core.sdmeta, which recognises every tool's format by content
# --------------------------------------------------------------------------------------------
def parse_a1111(text: str) -> GenerationParams:
    """A1111 infotext → `GenerationParams` by A1111's parsing rules; never raises (odd values
    are clamped or left out, with a line each in ``params.extra["notes"]``)."""
    params, _, notes = build_params(parse_fields(text))
    return params.replace(extra={**params.extra, "notes": notes}) if notes else params


def read_a1111_text(image: Image.Image) -> str | None:
    """The A1111 infotext of an opened image: PNG chunk or EXIF UserComment; None if absent."""
    texts = collect_texts(image)
    return texts.get(A1111_KEY) or texts.get("UserComment")


def read_params(source: Image.Image | str | os.PathLike[str]) -> GenerationParams | None:
    """Recall generation parameters from an image (opened or a path); None when it has none
    usable. See `app.core.sdmeta.read_metadata` for the formats and the reasons."""
    return read_metadata(source).params
