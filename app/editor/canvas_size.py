"""Canvases of another size, made for the `Document` to swap in as one undo step: an expansion
(outpainting: new area filled and masked, the original moved by the expansion's offset) and an
upscale made elsewhere (pixels, mask and box already scaled). Each says how a control layer
follows the canvas, so the document keeps every layer at its own size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from app.core import outpaint
from app.core.geometry import Bounds
from app.editor.canvas_delta import CanvasState, PackedArray


@dataclass(frozen=True)
class NewCanvas:
    """A canvas change: the states before and after (for undo), the new arrays, the undo label
    and how a control layer's image becomes the new size."""

    before: CanvasState
    after: CanvasState
    pixels: np.ndarray
    mask: np.ndarray
    label: str
    resize_layer: Callable[[np.ndarray], np.ndarray]


def expanded(pixels: np.ndarray, mask: np.ndarray, box: Bounds | None, offset: tuple[int, int],
             exp: outpaint.Expansion, fill: str, colour: tuple[int, ...] | None) -> NewCanvas:
    """The canvas grown by ``exp``: the new area pre-filled (`outpaint.FILL_MODES`) and masked,
    the context box the new area plus the old border; original pixels keep their exact values."""
    new_pixels = outpaint.expand_pixels(pixels, exp, fill, colour)
    new_mask = outpaint.expand_mask(mask, exp)
    new_box = outpaint.context_box_for(pixels.shape[1], pixels.shape[0], exp)
    before = CanvasState.of(pixels, mask, box, offset)
    after = CanvasState.of(new_pixels, new_mask, new_box, (offset[0] + exp.left, offset[1] + exp.top))
    w, h = exp.new_size(pixels.shape[1], pixels.shape[0])
    return NewCanvas(before, after, new_pixels, new_mask, f"Expand canvas to {w}×{h}",
                     lambda image: outpaint.expand_pixels(image, exp, "solid", (0, 0, 0)))


def resized(current: tuple[np.ndarray, np.ndarray, Bounds | None, tuple[int, int]], original_size: tuple[int, int],
            pixels: np.ndarray, mask: np.ndarray, box: Bounds | None, offset: tuple[int, int], label: str,
            packed: tuple[Any, Any] | None = None) -> NewCanvas:
    """A canvas made elsewhere (an upscale), checked to fit: same type and channels, a mask of
    its size, the original (``original_size`` w×h) inside it at ``offset``. ``packed``: the
    (before, after) pixels as `PackedArray` s made off the GUI thread (packing a ×4 result takes seconds)."""
    old_pixels, old_mask, old_box, old_offset = current
    if pixels.dtype != old_pixels.dtype or pixels.shape[2:] != old_pixels.shape[2:] or mask.shape != pixels.shape[:2]:
        raise ValueError(f"canvas {pixels.shape} {pixels.dtype} (mask {mask.shape}) does not fit {old_pixels.shape} {old_pixels.dtype}")
    ow, oh = original_size
    if not Bounds.of_image(pixels.shape[1], pixels.shape[0]).contains(Bounds(*offset, ow, oh)):
        raise ValueError(f"the original ({ow}×{oh}) does not fit the new canvas at {offset}")
    before_px, after_px = packed if packed is not None else (PackedArray.of(old_pixels), PackedArray.of(pixels))
    before = CanvasState(before_px, PackedArray.of(old_mask), old_box, old_offset)
    after = CanvasState(after_px, PackedArray.of(mask), box, tuple(offset))
    size = (pixels.shape[1], pixels.shape[0])
    return NewCanvas(before, after, pixels, mask, label,
                     lambda image: cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
