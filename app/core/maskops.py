"""Mask operations on H×W uint8 masks (255 = repaint, 0 = keep). Pure numpy/OpenCV, no Qt.

A 24 MP photo with a few scratches has a mask that is almost all zeros, so every operation
here works inside the bounding box of the masked pixels plus its reach (the grow radius, the
feather width, the inpaint radius) instead of over the whole image: on such masks that is tens
of times faster and the results are identical to the whole-image operation.

Values ≥ 128 count as "repaint" (`binarize`): a mask saved as JPEG carries noise in its black
area that must never mark pixels for repainting.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.core.errors import UserError
from app.core.geometry import Bounds

THRESHOLD = 128


class MaskError(UserError, ValueError):
    """The mask cannot be used as given; the message says what to do."""

    title = "Mask problem"
    field = "mask"


def validate_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return ``mask`` as H×W uint8 (0…255); refuse a mask of another size or layout.

    bool and 0/1 masks are scaled to 0/255, uint16 reduced to 8 bit, floats in [0, 1] scaled.
    """
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
    if mask.dtype == np.uint8:
        if mask.size and mask.max() == 1:
            return mask * np.uint8(255)
        return mask
    arr = np.nan_to_num(np.asarray(mask, np.float32))
    scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
    return np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)


def binarize(mask: np.ndarray) -> np.ndarray:
    """0/255 hard mask: ≥ 128 → 255 (OpenCV's threshold: a few ms on 24 MP)."""
    return cv2.threshold(np.ascontiguousarray(mask, np.uint8), THRESHOLD - 1, 255, cv2.THRESH_BINARY)[1]


def bounds(mask: np.ndarray) -> Bounds | None:
    """Bounding box of the non-zero pixels, or None for an empty mask (two cheap reductions)."""
    rows = mask.any(axis=1)
    ys = np.flatnonzero(rows)
    if ys.size == 0:
        return None
    y0, y1 = int(ys[0]), int(ys[-1]) + 1
    xs = np.flatnonzero(mask[y0:y1].any(axis=0))
    return Bounds(int(xs[0]), y0, int(xs[-1]) + 1 - int(xs[0]), y1 - y0)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _windowed(mask: np.ndarray, reach: int, op) -> np.ndarray:
    """Apply ``op`` to the mask's bounding box padded by ``reach``; the rest stays as it is."""
    box = bounds(mask)
    out = mask.copy()
    if box is None:
        return out
    h, w = mask.shape
    window = box.pad(reach).clamp(w, h)
    out[window.slices] = op(mask[window.slices])
    return out


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate by ``pixels`` with a round brush (a negative value shrinks). Returns a new array."""
    if pixels == 0:
        return mask.copy()
    if pixels < 0:
        return shrink(mask, -pixels)
    return _windowed(mask, pixels, lambda m: cv2.dilate(m, _disk(pixels)))


def shrink(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Erode by ``pixels``. The image border does not eat into the mask (as in other editors)."""
    if pixels <= 0:
        return mask.copy()
    return _windowed(mask, pixels, lambda m: cv2.erode(m, _disk(pixels), borderType=cv2.BORDER_CONSTANT, borderValue=255))


def invert(mask: np.ndarray) -> np.ndarray:
    return cv2.bitwise_not(mask)


def clear(mask: np.ndarray) -> np.ndarray:
    return np.zeros_like(mask)


def feather_reach(blur: int) -> int:
    """Distance from the hard mask at which the feather weight becomes exactly 0."""
    return blur + 1 if blur > 0 else 0


def restrict(hard: np.ndarray, owned: Bounds | None, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``hard`` with every pixel outside ``owned`` cleared; ``offset`` = image (x, y) of
    ``hard[0, 0]`` when ``hard`` is a window of the image. Returns ``hard`` itself if owned is None."""
    if owned is None:
        return hard
    h, w = hard.shape
    local = Bounds(owned.x - offset[0], owned.y - offset[1], owned.width, owned.height).clamp(w, h)
    out = np.zeros_like(hard)
    out[local.slices] = hard[local.slices]
    return out


def distance_to_mask(hard: np.ndarray, limit: float) -> np.ndarray:
    """Exact Euclidean distance (float32) of each pixel to the nearest pixel ≥ 128, capped just
    above ``limit``.

    OpenCV's precise distance transform is exact only up to ~1e-7 and that last bit varies from
    run to run (threads); squared distances are integers, so rounding them and taking the
    (correctly rounded, hence deterministic) square root gives the same value every time.
    """
    outside = cv2.threshold(np.ascontiguousarray(hard, np.uint8), THRESHOLD - 1, 255, cv2.THRESH_BINARY_INV)[1]
    d = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    np.minimum(d, np.float32(limit + 1), out=d)
    np.multiply(d, d, out=d)
    np.rint(d, out=d)
    return np.sqrt(d, out=d)


def feather(hard: np.ndarray, blur: int, crop: Bounds | None = None, owned: Bounds | None = None) -> np.ndarray:
    """Compositing weights in [0, 1] (float32) for ``crop`` (default: the whole mask).

    Weight 1 on every masked pixel (a scratch is fully replaced), then a smoothstep fall-off
    outward by Euclidean distance d: w = 1 − 3t² + 2t³ with t = d/(blur+1), exactly 0 from d = blur + 1
    (`feather_reach`) on: the pixels that stay bit-identical are precisely those at least
    ``blur + 1`` px from the mask. For blur = 4 the weights at d = 1…4 are .90 .65 .35 .10. The fall-off is
    smooth (zero slope at both ends), so the blend itself adds no visible edge. Only a window of
    ``crop`` plus ``blur`` is computed. ``owned`` limits the mask to that rectangle (a region
    repaints only its own part of the mask).
    """
    height, width = hard.shape
    crop = crop or Bounds.of_image(width, height)
    if blur <= 0:
        return (restrict(hard[crop.slices], owned, (crop.x, crop.y)) >= THRESHOLD).astype(np.float32)
    window = crop.pad(blur + 2).clamp(width, height)
    src = restrict(hard[window.slices], owned, (window.x, window.y))
    if not (src >= THRESHOLD).any():
        return np.zeros((crop.height, crop.width), np.float32)
    dist = distance_to_mask(src, limit=blur + 1)
    top, left = crop.y - window.y, crop.x - window.x
    d = dist[top : top + crop.height, left : left + crop.width]
    return weights_from_distance(d, blur)


def weights_from_distance(dist: np.ndarray, blur: int) -> np.ndarray:
    """Feather weights from `distance_to_mask` output (see `feather`)."""
    if blur <= 0:
        return (dist == 0).astype(np.float32)
    # smoothstep, not cos: numpy's SIMD transcendental functions may differ in the last bit
    # with memory alignment, and the same job must give the same pixels every time.
    t = np.minimum(dist * np.float32(1.0 / (blur + 1)), np.float32(1.0))
    weights = np.float32(1.0) - t * t * (np.float32(3.0) - np.float32(2.0) * t)
    weights[dist == 0] = 1.0
    return weights


def feather_full(hard: np.ndarray, blur: int) -> np.ndarray:
    """Whole-image weights (the naive way; kept for the benchmark's comparison and for tests)."""
    return feather(hard, blur, None)


def reach_window(mask: np.ndarray, px: int) -> Bounds | None:
    """Box of the painted mask grown by ``px``: morphology and blur never reach past it.

    Working on this box instead of the whole 24 MP mask is what makes the grow/feather preview
    interactive (tens of ms instead of seconds) and gives the same bytes as a full-image pass.
    """
    b = bounds(mask)
    height, width = mask.shape[:2]
    return None if b is None else b.pad(abs(int(px)) + 1).clamp(width, height)


def feathered_u8(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` feathered by ``px`` as uint8 (a soft edge to look at; a copy when ``px`` <= 0)."""
    if px <= 0:
        return mask.copy()
    out = np.zeros_like(mask)
    win = reach_window(mask, px)
    if win is not None:
        soft = feather(mask, int(px), win)
        out[win.slices] = np.clip(soft * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def classical_fill(rgb: np.ndarray, mask: np.ndarray, radius: int = 3) -> np.ndarray:
    """Fill the masked area from its surround (OpenCV Telea): the "fill" masked-content option.

    Telea only reads pixels within ``radius`` of the mask, so only the mask's bounding box plus
    a margin is processed; the rest of ``rgb`` is returned unchanged (as a copy).
    """
    hard = (mask >= THRESHOLD).astype(np.uint8)
    out = rgb.copy()
    box = bounds(hard)
    if box is None:
        return out
    h, w = hard.shape
    window = box.pad(radius + 2).clamp(w, h)
    out[window.slices] = cv2.inpaint(np.ascontiguousarray(rgb[window.slices]), hard[window.slices], radius, cv2.INPAINT_TELEA)
    return out


def rough_fill(rgb: np.ndarray, mask: np.ndarray, max_side: int = 256) -> np.ndarray:
    """A quick classical fill of the masked pixels (Telea at most ``max_side`` px wide, scaled
    back up), for *context* a model looks at but that is never composited: it costs ~10 ms on
    a 1 MP crop where a full-resolution fill costs ~100 ms. Unmasked pixels are returned as is.
    """
    hard = mask >= THRESHOLD
    h, w = hard.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return classical_fill(rgb, mask)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(hard.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    filled = cv2.inpaint(small, small_mask.astype(np.uint8), 2, cv2.INPAINT_TELEA)
    up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    out = rgb.copy()
    out[hard] = up[hard]
    return out
