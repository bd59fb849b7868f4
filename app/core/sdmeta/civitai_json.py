"""Civitai's on-site generator (JPEG): the UserComment is one JSON object holding the ComfyUI
nodes it ran, its models as "resource-stack" nodes (``ckpt_name`` an AIR URN such as
``urn:air:sd1:checkpoint:civitai:4384@128713``), ``extra.airs`` and ``extraMetadata``: a JSON
string with the request as the user gave it (prompt, negativePrompt, steps, cfgScale, sampler,
seed, width, height, clipSkip).

The request wins for what the user typed; the graph's sampler node, when there is one, says the
sampler and schedule type actually run (``euler_ancestral`` + ``karras``).
"""

from __future__ import annotations

import json
from typing import Any

from app.core.sdmeta import comfyui
from app.core.sdmeta.found import Found
from app.core.sdmeta.sources import json_object

_REQUEST = {"prompt": "Prompt", "negativePrompt": "Negative prompt", "steps": "Steps", "cfgScale": "CFG scale",
            "sampler": "Sampler", "seed": "Seed", "width": "Size-1", "height": "Size-2", "clipSkip": "Clip skip",
            "denoise": "Denoising strength"}


def read(texts: dict[str, str]) -> Found | None:
    data = json_object(texts.get("UserComment")) or json_object(texts.get("prompt"))
    if not data or not ("extraMetadata" in data or any(str(k).startswith("resource-stack") for k in data)):
        return None
    extra = data.get("extraMetadata")
    request = json_object(extra) if isinstance(extra, str) else extra if isinstance(extra, dict) else None
    graph = {k: v for k, v in data.items() if isinstance(v, dict) and "class_type" in v}
    nodes = comfyui.read({"prompt": json.dumps(graph)}) if graph else None
    fields: dict[str, Any] = dict(nodes.fields) if nodes and not nodes.problems else {}
    for key, name in _REQUEST.items():
        value = (request or {}).get(key)
        if value in (None, "") or (name == "Sampler" and "Sampler" in fields):
            continue
        fields[name] = value
        if name == "Sampler":
            fields.pop("Schedule type", None)  # the request's name carries its own ("DPM++ 2M Karras")
    fields.pop("ComfyUI sampler node", None)
    airs = (data.get("extra") or {}).get("airs") if isinstance(data.get("extra"), dict) else None
    if isinstance(airs, list) and airs:
        fields["Civitai resources"] = airs
    if not fields:
        return Found("Civitai", {}, problems=["Civitai metadata without generation parameters"])
    return Found("Civitai", fields)
