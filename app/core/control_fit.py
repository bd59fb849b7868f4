"""Fitting a control image to the document's size, with A1111's ControlNet resize modes, so a
control image of another size means the same thing from the CLI, the API and the editor."""

from __future__ import annotations

import numpy as np

from app.core import compositing

RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")
#: The extension's API also takes the modes by number (their order) and these old names.
_ALIASES = {"0": "Just Resize", "1": "Crop and Resize", "2": "Resize and Fill", "Inner Fit (Scale to Fit)":
            "Crop and Resize", "Outer Fit (Shrink to Fit)": "Resize and Fill", "Envelope (Outer Fit)": "Resize and Fill",
            "Scale to Fit (Inner Fit)": "Crop and Resize"}


def resize_mode(value: object) -> str | None:
    """The canonical mode for ``value`` (a name, an alias or 0/1/2), or None when unknown."""
    text = str(value).strip()
    return text if text in RESIZE_MODES else _ALIASES.get(text)


def fit(image: np.ndarray, size: tuple[int, int], mode: str = "Crop and Resize") -> np.ndarray:
    """``image`` (any supported pixels) as H×W×3 uint8 of ``size`` (width, height): stretched
    ("Just Resize"), scaled to cover and centre-cropped ("Crop and Resize"), or scaled to fit
    and padded with its edge pixels ("Resize and Fill"). The same size: the pixels as they are."""
    rgb = compositing.to_rgb8(image)
    width, height = size
    h, w = rgb.shape[:2]
    if (w, h) == (width, height) or mode == "Just Resize":
        return compositing.resize(rgb, size)
    cover = mode == "Crop and Resize"
    scale = (max if cover else min)(width / w, height / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = compositing.resize(rgb, (sw, sh))
    if cover:
        x, y = (sw - width) // 2, (sh - height) // 2
        return np.ascontiguousarray(scaled[y:y + height, x:x + width])
    x, y = (width - sw) // 2, (height - sh) // 2
    return np.pad(scaled, ((y, height - sh - y), (x, width - sw - x), (0, 0)), mode="edge")
