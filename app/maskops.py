"""Mask operations on H×W uint8 masks (255 = repaint, 0 = keep). Pure numpy/OpenCV, no Qt."""

from __future__ import annotations

import cv2
import numpy as np

from app.geometry import Bounds


class MaskError(ValueError):
    """The mask cannot be used as given; the message says what to do."""


def validate_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return ``mask`` as H×W uint8 (0/255 or soft values); refuse a mask of another size."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.ndim != 2:
        raise MaskError(f"The mask must be a single-channel image, got an array of shape {mask.shape}.")
    if mask.shape != tuple(shape):
        h, w = mask.shape
        raise MaskError(
            f"The mask is {w}×{h} but the image is {shape[1]}×{shape[0]}: use a mask of the same size as the image."
        )
    if mask.dtype == bool:
        return mask.astype(np.uint8) * 255
    if mask.dtype == np.uint16:
        return (mask >> 8).astype(np.uint8)
    if mask.dtype != np.uint8:
        return np.clip(np.asarray(mask, np.float32) * (255.0 if mask.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return mask


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate by ``pixels`` (a negative value shrinks)."""
    if pixels == 0:
        return mask
    if pixels < 0:
        return shrink(mask, -pixels)
    return cv2.dilate(mask, _disk(pixels))


def shrink(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask
    return cv2.erode(mask, _disk(pixels))


def invert(mask: np.ndarray) -> np.ndarray:
    return 255 - mask


def feather(hard: np.ndarray, blur: int, crop: Bounds | None = None) -> np.ndarray:
    """Soft compositing weights in [0, 1] (float32) for ``crop`` (default: whole mask).

    The soft edge spreads ``blur`` pixels to each side of the hard edge; beyond that the weight
    is exactly 0, which is what keeps outside pixels bit-identical.
    """
    height, width = hard.shape
    crop = crop or Bounds.of_image(width, height)
    if blur <= 0:
        return (hard[crop.slices] > 0).astype(np.float32) if hard.dtype != np.float32 else hard[crop.slices]
    # Blur a window larger than the crop by the kernel radius so the crop's edge is exact.
    window = crop.pad(blur).clamp(width, height)
    src = (hard[window.slices] > 0).astype(np.float32)
    soft = cv2.GaussianBlur(src, (2 * blur + 1, 2 * blur + 1), sigmaX=blur / 2.0, borderType=cv2.BORDER_REPLICATE)
    soft[soft < 1e-3] = 0.0
    top, left = crop.y - window.y, crop.x - window.x
    return soft[top : top + crop.height, left : left + crop.width]


def classical_fill(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the masked area from its surround (OpenCV Telea): the "fill" masked-content option."""
    return cv2.inpaint(rgb, (mask > 0).astype(np.uint8), 3, cv2.INPAINT_TELEA)
