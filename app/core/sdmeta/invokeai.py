"""InvokeAI, all its generations of metadata:

* 1.x–2.x ``Dream``: the dream command line, ``"prompt [negative]" -s steps -S seed -W -H -C cfg -A sampler -f strength``
* 2.x ``sd-metadata``: JSON with ``model_weights`` and an ``image`` object
* 3.x and later ``invokeai_metadata``: flat JSON (``positive_prompt``, ``cfg_scale``, ``model`` object …)

In 1.x/2.x prompts the negative prompt is written inside square brackets.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from app.core.sdmeta.found import Found
from app.core.sdmeta.sources import json_object

#: A Dream line is a prompt plus a few switches; a longer text is not one.
MAX_DREAM_CHARS = 64 * 1024
_NEGATIVE = re.compile(r"\[([^\[\]]*)\]")
_DREAM_FLAGS = {"-s": "Steps", "-S": "Seed", "-W": "Size-1", "-H": "Size-2", "-C": "CFG scale", "-A": "Sampler",
                "-f": "Denoising strength"}


def split_negative(prompt: str) -> tuple[str, str]:
    """"a cat [blurry, dog]" → ("a cat", "blurry, dog"): InvokeAI 2.x's negative syntax."""
    negative = ", ".join(m.strip() for m in _NEGATIVE.findall(prompt) if m.strip())
    return " ".join(_NEGATIVE.sub("", prompt).split()), negative


def read(texts: dict[str, str]) -> Found | None:
    for reader in (_v3, _sd_metadata, _dream):
        found = reader(texts)
        if found:
            return found
    return None


def _v3(texts: dict[str, str]) -> Found | None:
    data = json_object(texts.get("invokeai_metadata"))
    if not data:
        return None
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    mode = str(data.get("generation_mode", ""))
    fields: dict[str, Any] = {
        "Prompt": data.get("positive_prompt", data.get("prompt")), "Negative prompt": data.get("negative_prompt"),
        "Steps": data.get("steps"), "CFG scale": data.get("cfg_scale"), "Seed": data.get("seed"),
        "Sampler": data.get("scheduler"), "Size-1": data.get("width"), "Size-2": data.get("height"),
        "Model": model.get("model_name") or model.get("name"), "Model hash": model.get("hash"),
        "Generation mode": mode or None}
    if "img2img" in mode or "inpaint" in mode or "outpaint" in mode:
        fields["Denoising strength"] = data.get("strength", data.get("denoising_strength"))
    if "inpaint" in mode or "outpaint" in mode:
        fields["Mask mode"] = mode
    if data.get("hrf_enabled"):
        fields["Hires upscale"] = f"{data.get('hrf_method', 'yes')}"
    return Found("InvokeAI", _present(fields))


def _sd_metadata(texts: dict[str, str]) -> Found | None:
    data = json_object(texts.get("sd-metadata"))
    image = data.get("image") if data else None
    if not isinstance(image, dict):
        return None
    prompt = image.get("prompt")
    if isinstance(prompt, list):  # [{"prompt": "...", "weight": 1.0}, …]
        prompt = " ".join(str(p.get("prompt", "")) for p in prompt if isinstance(p, dict))
    positive, negative = split_negative(str(prompt or ""))
    fields = {"Prompt": positive, "Negative prompt": negative, "Steps": image.get("steps"),
              "CFG scale": image.get("cfg_scale"), "Seed": image.get("seed"), "Sampler": image.get("sampler"),
              "Size-1": image.get("width"), "Size-2": image.get("height"), "Model": data.get("model_weights"),
              "Model hash": data.get("model_hash"), "Version": data.get("app_version")}
    if image.get("type") == "img2img":
        fields["Denoising strength"] = image.get("strength")
    return Found("InvokeAI", _present(fields))


def _dream(texts: dict[str, str]) -> Found | None:
    text = texts.get("Dream")
    if not text:
        return None
    if len(text) > MAX_DREAM_CHARS:  # shlex walks characters in Python: ~1 s per MB
        return Found("InvokeAI", {}, problems=[f"InvokeAI Dream line of {len(text)} characters: too long to be one"])
    try:
        words = shlex.split(text)
    except ValueError:
        return Found("InvokeAI", {}, problems=["InvokeAI Dream line could not be read (unbalanced quotes)"])
    positive, negative = split_negative(words[0] if words else "")
    fields: dict[str, Any] = {"Prompt": positive, "Negative prompt": negative}
    for flag, value in zip(words[1:], words[2:]):
        if flag in _DREAM_FLAGS:
            fields[_DREAM_FLAGS[flag]] = value
    return Found("InvokeAI", fields)


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v not in (None, "")}
