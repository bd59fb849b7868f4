"""Seamless results: colour matching of a generated region to its surround, and a seam score.

Colour drift. A diffusion model (its VAE round trip above all) returns the unmasked surround of
the region slightly off in tone and colour; the new content inside the mask carries the same
drift, which shows as a step where the feather ends. `match_colour` measures the drift where it
can be measured without guessing — on a ring of pixels just *outside* the mask, which the
backend was asked to keep and the original still has — and removes it from the whole generated
region (per-channel mean and standard deviation, Reinhard-style). Comparing the ring *inside*
the mask with the ring outside (``reference="boundary"``) is offered too, for backends whose
output outside the mask means nothing, but it pulls genuinely new content (a dark object on a
light wall) toward its surround, so it is not the default.

Seam score. `seam_score` = mean colour-gradient magnitude of the result on a ring across the mask
boundary (the hard edge and the whole feather band), divided by the same on the original.
1.0 means the edit's edge is no more visible than the picture already was there; a colour step
across the feather raises it; a smoothing fill (Telea) can bring it below 1.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.core import maskops
from app.core.geometry import Bounds


def _ring_outside(hard: np.ndarray, start: int, width: int) -> np.ndarray:
    """Pixels whose distance to the mask lies in (start, start + width] (bool)."""
    dist = maskops.distance_to_mask(hard, start + width)
    return (dist > start) & (dist <= start + width)


def _ring_inside(hard: np.ndarray, width: int) -> np.ndarray:
    inside = hard >= maskops.THRESHOLD
    dist = maskops.distance_to_mask(np.where(inside, 0, 255).astype(np.uint8), width)
    return inside & (dist <= width)


def match_colour(
    generated: np.ndarray,
    original: np.ndarray,
    hard: np.ndarray,
    *,
    ring: int = 8,
    reference: str = "surround",
    max_gain: float = 2.0,
    min_pixels: int = 16,
    distance: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Return ``generated`` (crop-sized RGB8) with its colour drift against ``original`` removed.

    ``hard`` is the crop's hard mask. The statistics come from a ``ring``-pixel band outside the
    mask (``reference="surround"``: generated vs original on the same pixels) or from the band
    inside against the band outside (``"boundary"``). Gains are clamped to [1/max_gain, max_gain];
    with too few ring pixels, or no drift at all, ``generated`` itself is returned.
    ``distance`` = `maskops.distance_to_mask(hard, ≥ ring)` when the caller already has it.
    ``exclude`` (a mask, ≥ 128 = excluded) keeps other masked pixels — damage the region does
    not own — out of the statistics. The correction is a per-channel affine map, applied as a
    256-entry lookup table.
    """
    if reference not in ("surround", "boundary"):
        raise ValueError(f"reference must be 'surround' or 'boundary', not {reference!r}")
    dist = distance if distance is not None else maskops.distance_to_mask(hard, ring)
    outer = (dist > 0) & (dist <= ring)
    if exclude is not None:
        outer &= exclude < maskops.THRESHOLD
    if np.count_nonzero(outer) < min_pixels:
        return generated
    mu_r, sd_r = _stats(original, outer)
    if reference == "surround":
        mu_s, sd_s = _stats(generated, outer)
    else:
        inner = _ring_inside(hard, ring)
        if np.count_nonzero(inner) < min_pixels:
            return generated
        mu_s, sd_s = _stats(generated, inner)
    gain = np.where(sd_s > 1.0, sd_r / np.maximum(sd_s, 1e-6), 1.0)
    gain = np.clip(gain, 1.0 / max_gain, max_gain)
    if np.allclose(gain, 1.0, atol=1e-3) and np.allclose(mu_s, mu_r, atol=0.25):
        return generated
    levels = np.arange(256, dtype=np.float64)[:, None]
    lut = np.clip(np.rint((levels - mu_s) * gain + mu_r), 0, 255).astype(np.uint8)  # 256×3
    return cv2.LUT(np.ascontiguousarray(generated), lut.reshape(1, 256, 3))


def _stats(rgb: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over ``where`` (OpenCV: one pass, no copies)."""
    mean, std = cv2.meanStdDev(np.ascontiguousarray(rgb), mask=where.view(np.uint8))
    return mean.ravel(), std.ravel()


def _gradient(pixels: np.ndarray) -> np.ndarray:
    """Colour gradient magnitude: sqrt of the summed squared Sobel responses of all colour
    channels (8-bit scale), so a pure hue shift counts as much as a brightness step."""
    arr = pixels.astype(np.float32)
    if pixels.dtype == np.uint16:
        arr = arr / 257.0
    if arr.ndim == 3:
        arr = arr[:, :, : min(3, arr.shape[2])]
    gx = cv2.Sobel(arr, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(arr, cv2.CV_32F, 0, 1, ksize=3)
    sq = gx * gx + gy * gy
    if sq.ndim == 3:
        sq = sq.sum(axis=2)
    return np.sqrt(sq)


def seam_ring(hard: np.ndarray, blur: int, width: int = 2) -> np.ndarray:
    """The band the seam score looks at: ``width`` px inside the hard edge to
    ``feather_reach(blur) + width`` px outside it (bool, same shape as ``hard``)."""
    outside = _ring_outside(hard, 0, maskops.feather_reach(blur) + width)
    return outside | _ring_inside(hard, width)


def seam_score(original: np.ndarray, result: np.ndarray, mask: np.ndarray, blur: int, width: int = 2) -> float:
    """Mean gradient magnitude across the mask boundary in ``result`` over the same in ``original``.

    ``mask`` is the mask the result was composited with (grown, if ``mask_grow`` was used).
    Works on the mask's bounding box (plus reach), so it is cheap on large photos.
    """
    hard = maskops.binarize(mask)
    box = maskops.bounds(hard)
    if box is None:
        raise ValueError("the mask is empty: there is no seam to score")
    h, w = hard.shape
    window = box.pad(maskops.feather_reach(blur) + width + 3).clamp(w, h)
    ring = seam_ring(hard[window.slices], blur, width)
    g_res = _gradient(result[window.slices])[ring]
    g_org = _gradient(original[window.slices])[ring]
    return float(g_res.mean() / max(float(g_org.mean()), 1e-6))


def seam_step(original: np.ndarray, result: np.ndarray, mask: np.ndarray, ring: int = 4) -> float:
    """Colour jump across the boundary: the distance between the mean colours of the ``ring``-px
    bands just inside and just outside the mask, in the result minus the same in the original,
    in 8-bit levels (0 = no step added; negative = the edit is smoother than the original)."""
    hard = maskops.binarize(mask)
    box = maskops.bounds(hard)
    if box is None:
        raise ValueError("the mask is empty: there is no seam to measure")
    h, w = hard.shape
    window: Bounds = box.pad(ring + 2).clamp(w, h)
    sub = hard[window.slices]
    inner, outer = _ring_inside(sub, ring), _ring_outside(sub, 0, ring)

    def jump(pixels: np.ndarray) -> float:
        arr = pixels[window.slices].astype(np.float64)
        if pixels.dtype == np.uint16:
            arr /= 257.0
        if arr.ndim == 3:
            arr = arr[:, :, : min(3, arr.shape[2])]
        return float(np.linalg.norm(np.atleast_1d(arr[inner].mean(axis=0) - arr[outer].mean(axis=0))))

    return jump(result) - jump(original)
