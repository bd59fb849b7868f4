"""Pixel format conversion, resizing and compositing into the original pixels.

The original keeps its own dtype and channels (uint8/uint16, gray/RGB/RGBA); only pixels with
a feather weight above zero are written, so everything outside the mask stays bit-identical.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.geometry import Bounds


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Any supported pixel array → H×W×3 uint8 RGB (what the models see)."""
    arr = pixels
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise TypeError(f"unsupported pixel type {arr.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 4:
        return np.ascontiguousarray(arr[:, :, :3])
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return arr


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (width, height): area averaging to shrink, Lanczos to enlarge."""
    width, height = size
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    shrinking = width * height < w * h
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    h, w = mask.shape[:2]
    if (w, h) == (width, height):
        return mask
    out = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA)
    return np.where(out > 0, 255, 0).astype(np.uint8)


def _rgb8_to_native(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Convert generated RGB8 to the colour layout and dtype of ``like`` (without alpha)."""
    channels = 1 if like.ndim == 2 else like.shape[2]
    if channels in (1,):
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        out = out if like.ndim == 2 else out[:, :, None]
    else:
        out = rgb
    if like.dtype == np.uint16:
        return out.astype(np.uint16) * 257
    return out


def composite_into(target: np.ndarray, generated_rgb8: np.ndarray, crop: Bounds, weights: np.ndarray | None) -> None:
    """Blend ``generated_rgb8`` (crop-sized) into ``target[crop]`` in place, by ``weights`` in [0, 1].

    ``weights`` None replaces the crop fully. Alpha is never changed. Pixels of weight 0 are not
    written at all.
    """
    region = target[crop.slices]
    colour = region[:, :, :3] if region.ndim == 3 and region.shape[2] == 4 else region
    gen = _rgb8_to_native(generated_rgb8, colour)
    if weights is None:
        colour[...] = gen
        return
    w = weights if colour.ndim == 2 else weights[:, :, None]
    blended = colour.astype(np.float32) * (1.0 - w) + gen.astype(np.float32) * w
    maximum = 65535 if colour.dtype == np.uint16 else 255
    blended = np.clip(np.rint(blended), 0, maximum).astype(colour.dtype)
    touched = weights > 0
    colour[touched] = blended[touched]
