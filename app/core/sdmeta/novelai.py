"""NovelAI: PNG chunks ``Software: NovelAI``, ``Description`` (the prompt) and ``Comment`` (JSON
with steps, sampler, seed, scale, ``uc`` = negative prompt); WebP: the same keys as one JSON
object in EXIF UserComment (or hidden in the pixels, `stealth`), ``Comment`` again a JSON
string inside it."""

from __future__ import annotations

from typing import Any

from app.core.sdmeta.found import Found
from app.core.sdmeta.sources import json_object


def read(texts: dict[str, str]) -> Found | None:
    outer: dict[str, Any] = dict(texts)
    for source in ("UserComment", "stealth"):  # WebP EXIF; NovelAI's pixel-hidden copy
        wrapped = json_object(texts.get(source))
        if wrapped and "Comment" in wrapped:
            outer = wrapped
    comment = outer.get("Comment")
    data = comment if isinstance(comment, dict) else json_object(comment if isinstance(comment, str) else None)
    if not data or not ("NovelAI" in str(outer.get("Software", "")) or {"uc", "scale"} <= set(data)):
        return None
    fields: dict[str, Any] = {
        "Prompt": data.get("prompt", outer.get("Description")), "Negative prompt": data.get("uc"),
        "Steps": data.get("steps"), "CFG scale": data.get("scale"), "Seed": data.get("seed"),
        "Sampler": data.get("sampler"), "Schedule type": data.get("noise_schedule"),
        "Size-1": data.get("width"), "Size-2": data.get("height"), "Model": outer.get("Source")}
    if data.get("request_type", "").lower().startswith("img2img"):
        fields["Denoising strength"] = data.get("strength")
    return Found("NovelAI", {k: v for k, v in fields.items() if v not in (None, "")})
