"""ComfyUI graphs kept in EXIF rather than PNG chunks, handed on as the ``prompt`` / ``workflow``
texts the ComfyUI reader reads:

* ComfyUI's SaveAnimatedWEBP: Model (0x0110) = ``prompt:{…}``, Make (0x010F) = ``workflow:{…}``
  (and the tags below it for further extra_pnginfo entries);
* JPEG/WebP save nodes (Save Image Extended, Save-as-webp/jpg and its forks): Make = ``Prompt:{…}``,
  ImageDescription (0x010E) = ``Workflow:{…}``;
* a UserComment holding ``{"prompt": {…}, "workflow": {…}}`` (Extended Image Formats).
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.core.sdmeta.sources import json_object

#: 0th-IFD tags the nodes write: Model, Make, ImageDescription, and the two below (more extra_pnginfo).
_TAGS = (0x0110, 0x010F, 0x010E, 0x010D, 0x010C)
_LABELLED = re.compile(r"\s*(prompt|workflow)\s*:\s*", re.IGNORECASE)


def graph_texts(exif: Any, user_comment: str | None = None) -> dict[str, str]:
    """{"prompt": json, "workflow": json} found in ``exif`` (a Pillow Exif) and the UserComment."""
    found: dict[str, str] = {}
    for tag in _TAGS:
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            label, text = _split(value.strip("\x00").strip())
            if label and json_object(text) is not None:
                found.setdefault(label, text)
    wrapped = json_object(user_comment)
    for label in ("prompt", "workflow"):
        if wrapped and isinstance(wrapped.get(label), dict):
            found.setdefault(label, json.dumps(wrapped[label]))
    return found


def _split(value: str) -> tuple[str | None, str]:
    """``"Prompt:{…}"`` → ("prompt", "{…}"); an unlabelled graph is named by its shape."""
    m = _LABELLED.match(value)
    if m:
        return m.group(1).lower(), value[m.end() :]
    data = json_object(value)
    if data is None:
        return None, value
    if isinstance(data.get("nodes"), list):
        return "workflow", value
    if any(isinstance(v, dict) and "class_type" in v for v in data.values()):
        return "prompt", value
    return None, value
