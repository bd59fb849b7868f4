"""Control layers in project files: one PNG per layer plus its settings in the manifest.

Manifest key ``controls`` (absent in files written before control layers; such files open with
none)::

    "controls": [{"image": "controls/c0.png", "module": "canny", "model": "…", "weight": 1.0,
                  "start": 0.0, "end": 1.0, "enabled": true, "visible": true, "opacity": 0.5}, …]

Each image is H×W×3 8-bit RGB of the project's image size; its PNG header is checked against that
layout before it is decoded, like every member (`app.storage.project_archive.decode_png`). At most
`MAX_CONTROLS` layers; every other value is checked and bounded here, failing as a one-line
`ProjectError`. The format version is unchanged: an older Inpaint Studio ignores the key (and so
drops the layers on its next save), which is better than refusing the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.guides import CONTROL_MODULES, MAX_CONTROLS, ControlUnit
from app.storage.project_archive import Archive, decode_png
from app.storage.project_format import ProjectError


@dataclass(frozen=True)
class SavedControl:
    """One control layer as saved: its image (its own copy, never edited) and settings. ``model``
    may be "" (not chosen yet); `unit` is what a generation gets."""

    image: np.ndarray  # H×W×3 uint8, the document's size
    module: str = "none"
    model: str = ""
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    enabled: bool = True
    visible: bool = True
    opacity: float = 0.5

    @property
    def unit(self) -> ControlUnit:
        return ControlUnit(self.module, self.model, self.weight, self.start, self.end)


def control_members(controls: tuple[SavedControl, ...] | list[SavedControl], shape: tuple[int, int]) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """(member name, image, manifest entry) per layer, each image checked against ``shape`` (H, W)."""
    if len(controls) > MAX_CONTROLS:
        raise ValueError(f"{len(controls)} control layers, at most {MAX_CONTROLS}")
    out = []
    for index, c in enumerate(controls):
        image = np.asarray(c.image)
        if image.shape != (*shape, 3) or image.dtype != np.uint8:
            raise ValueError(f"control layer {index + 1} is {image.shape} {image.dtype}, the image is {shape}")
        name = f"controls/c{index}.png"
        entry = {"image": name, "module": c.module, "model": c.model, "weight": float(c.weight), "start": float(c.start),
                 "end": float(c.end), "enabled": bool(c.enabled), "visible": bool(c.visible), "opacity": float(c.opacity)}
        out.append((name, image, entry))
    return out


def raw_controls(manifest: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The manifest's control entries, checked for shape and count before any image is read."""
    raw = manifest.get("controls", [])
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_CONTROLS or not all(isinstance(e, dict) for e in raw):
        raise ProjectError(f"{name}: the control layers are not valid (at most {MAX_CONTROLS}); the file is damaged.")
    return raw


def control_image_members(raw: list[dict[str, Any]]) -> list[Any]:
    return [e.get("image") for e in raw]


def read_controls(archive: Archive, raw: list[dict[str, Any]], layout: dict[str, Any]) -> tuple[SavedControl, ...]:
    """Decode and check each control layer (RGB 8-bit of the image's size)."""
    name = archive.name
    image_layout = {"width": layout["width"], "height": layout["height"], "channels": 3, "dtype": "uint8"}
    out = []
    for index, entry in enumerate(raw):
        where = f"control layer {index + 1}"
        member = entry.get("image")
        if not isinstance(member, str):
            raise ProjectError(f"{name}: {where} has no image; the file is damaged.")
        module = entry.get("module", "none")
        if module not in CONTROL_MODULES:
            raise ProjectError(f"{name}: {where} has an unknown module {str(module)[:40]!r}.")
        model = entry.get("model", "")
        if not isinstance(model, str) or len(model) > 4096:
            raise ProjectError(f"{name}: {where} model is not valid text.")
        numbers = {key: _number(entry.get(key, default), f"{where} {key}", lo, hi, name)
                   for key, default, lo, hi in (("weight", 1.0, 0.0, 2.0), ("start", 0.0, 0.0, 1.0), ("end", 1.0, 0.0, 1.0),
                                                ("opacity", 0.5, 0.0, 1.0))}
        flags = {key: _flag(entry.get(key, True), f"{where} {key}", name) for key in ("enabled", "visible")}
        image = decode_png(archive, member, image_layout, where)[0]
        out.append(SavedControl(image=image, module=module, model=model, **numbers, **flags))
    return tuple(out)


def _number(value: Any, what: str, lo: float, hi: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise ProjectError(f"{name}: {what} = {str(value)[:40]!r} is not valid (a number from {lo:g} to {hi:g}).")
    return float(value)


def _flag(value: Any, what: str, name: str) -> bool:
    if not isinstance(value, bool):
        raise ProjectError(f"{name}: {what} = {str(value)[:40]!r} is not true or false.")
    return value
