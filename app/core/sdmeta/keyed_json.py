"""Tools whose metadata is one JSON object of named values: Fooocus, SwarmUI, Easy Diffusion,
and the JSON Hugging Face Spaces (diffusers demos) write with the pipeline's argument names.
Each is a key table onto A1111's names; the content, not the chunk name, tells them apart."""

from __future__ import annotations

import re
from typing import Any, Callable

from app.core.sdmeta.found import Found
from app.core.sdmeta.sources import json_object

_RESOLUTION = re.compile(r"\s*[(\[]\s*(\d+)\s*,\s*(\d+)\s*[)\]]\s*$")

_FOOOCUS = {"prompt": "Prompt", "negative_prompt": "Negative prompt", "steps": "Steps", "guidance_scale": "CFG scale",
            "sampler": "Sampler", "scheduler": "Schedule type", "seed": "Seed", "base_model": "Model",
            "base_model_hash": "Model hash", "version": "Version"}
_SWARM = {"prompt": "Prompt", "negativeprompt": "Negative prompt", "steps": "Steps", "cfgscale": "CFG scale",
          "sampler": "Sampler", "scheduler": "Schedule type", "seed": "Seed", "width": "Size-1", "height": "Size-2",
          "model": "Model", "initimagecreativity": "Denoising strength", "swarm_version": "Version"}
#: Easy Diffusion writes snake_case keys (PNG: one chunk each) or, in newer versions, titles.
_EASY = {"prompt": "Prompt", "negative_prompt": "Negative prompt", "num_inference_steps": "Steps",
         "guidance_scale": "CFG scale", "sampler_name": "Sampler", "seed": "Seed", "width": "Size-1",
         "height": "Size-2", "use_stable_diffusion_model": "Model", "prompt_strength": "Denoising strength",
         "Prompt": "Prompt", "Negative Prompt": "Negative prompt", "Steps": "Steps", "Guidance Scale": "CFG scale",
         "Sampler": "Sampler", "Seed": "Seed", "Width": "Size-1", "Height": "Size-2",
         "Stable Diffusion model": "Model", "Prompt Strength": "Denoising strength"}
_DIFFUSERS = {"prompt": "Prompt", "negative_prompt": "Negative prompt", "num_inference_steps": "Steps",
              "steps": "Steps", "guidance_scale": "CFG scale", "scheduler": "Sampler", "sampler": "Sampler",
              "seed": "Seed", "width": "Size-1", "height": "Size-2", "model": "Model", "model_id": "Model",
              "strength": "Denoising strength"}


def _mapped(data: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    return {table[k]: v for k, v in data.items() if k in table and v not in (None, "")}


def _fooocus(texts: dict[str, str]) -> Found | None:
    data = json_object(texts.get("parameters")) or json_object(texts.get("UserComment"))
    if not data or not (data.get("metadata_scheme") == "fooocus" or "fooocus_scheme" in texts or "full_prompt" in data):
        return None
    fields = _mapped(data, _FOOOCUS)
    size = _RESOLUTION.match(str(data.get("resolution"))[:64])  # "(768, 1280)"; a regex, not literal_eval: no nesting
    if size:
        fields["Size-1"], fields["Size-2"] = int(size.group(1)), int(size.group(2))
    notes = ["Fooocus expands the prompt with styles; recalled: the prompt as typed"] if data.get("styles") else []
    return Found("Fooocus", fields, notes)


def _swarmui(texts: dict[str, str]) -> Found | None:
    data = json_object(texts.get("parameters")) or json_object(texts.get("UserComment"))
    params = data.get("sui_image_params") if data else None
    if not isinstance(params, dict):
        return None
    fields = _mapped(params, _SWARM)
    if "Denoising strength" in fields and "initimage" not in str(params).lower():
        del fields["Denoising strength"]
    for model in (data.get("sui_models") or []) if isinstance(data.get("sui_models"), list) else []:
        if isinstance(model, dict) and model.get("param") == "model" and model.get("hash"):
            fields["Model hash"] = model["hash"]
    return Found("SwarmUI", fields)


def _easy_diffusion(texts: dict[str, str]) -> Found | None:
    data = json_object(texts.get("UserComment")) or json_object(texts.get("parameters")) or texts
    keys = set(data)
    if not ({"use_stable_diffusion_model", "num_inference_steps"} <= keys or {"Stable Diffusion model", "Steps"} <= keys):
        return None
    return Found("Easy Diffusion", _mapped(data, _EASY))


def _diffusers_json(texts: dict[str, str]) -> Found | None:
    for source in ("parameters", "UserComment", "Comment", "metadata"):
        data = json_object(texts.get(source))
        if data and isinstance(data.get("prompt"), str) and ({"num_inference_steps", "guidance_scale"} & set(data)):
            return Found("Hugging Face Space (diffusers JSON)", _mapped(data, _DIFFUSERS))
    return None


READERS: tuple[Callable[[dict[str, str]], Found | None], ...] = (_swarmui, _fooocus, _easy_diffusion, _diffusers_json)
