"""Soft inpainting's pixel side: the grey mask it runs on, and A1111's final "pixel composite".

With soft inpainting the mask is not binarised: its grey levels (after the mask blur, a
Gaussian as A1111 applies it) say how much each pixel may change. The denoising half lives in
`app.inference.diffusers.soft_inpaint`; this module holds what the engine needs for every
backend (local, remote, classical): the mask itself, and the weights that put the result back.

The final weights follow A1111 ≥ 1.8 (`scripts/soft_inpainting.py`, `apply_adaptive_masks`):
where the result differs little from the original the original is kept, where it differs by
more than ``difference_threshold`` (biased by the mask through ``mask_influence``) the result
wins, with a ``difference_contrast`` sharp transition. A1111 measures the difference on latents;
the engine only has pixels, so it is measured on the decoded result at the latent grid (8×8
cells), on a scale close to the latent one (L2 over RGB in −1…1, doubled). Unlike A1111, a
pixel whose mask value is 0 gets weight 0 exactly, so it stays bit-identical.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.core.guides import SoftInpainting

#: The latent grid of SD's VAE: the difference map is measured per cell of this many pixels.
CELL = 8
#: Pixel distance → latent-like distance (an unrelated colour gives ~1–2, as latents do).
PIXEL_TO_LATENT = 2.0


def soft_mask(mask: np.ndarray, blur: int) -> np.ndarray:
    """The grey mask soft inpainting runs on (uint8, 0 = keep exactly): the user's mask with a
    Gaussian blur of ``blur`` px, as A1111 blurs it before the (here skipped) rounding."""
    mask = np.ascontiguousarray(mask, np.uint8)
    if blur <= 0:
        return mask
    blurred = cv2.GaussianBlur(mask, (0, 0), sigmaX=float(blur), borderType=cv2.BORDER_REPLICATE)
    blurred[mask > 0] = np.maximum(blurred[mask > 0], 1)  # a painted pixel never rounds to "keep"
    return blurred


def blend_weights(original: np.ndarray, generated: np.ndarray, soft: np.ndarray,
                  settings: SoftInpainting) -> np.ndarray:
    """Weights in [0, 1] (float32, h×w) of the generated pixels over the original ones (both RGB8
    h×w×3, ``soft`` the grey mask h×w): A1111's difference-adaptive composite, 0 where ``soft`` is 0."""
    height, width = soft.shape
    diff = (generated.astype(np.float32) - original.astype(np.float32)) * np.float32(1 / 127.5)
    distance = np.sqrt((diff * diff).sum(axis=2)) * np.float32(PIXEL_TO_LATENT)
    grid = (max(1, width // CELL), max(1, height // CELL))
    cells = cv2.resize(distance, grid, interpolation=cv2.INTER_AREA)
    # A1111's two weighted-histogram filters over a 5×5 Gaussian window: the 90–100 % band
    # (≈ a local maximum), then the 25–75 % band (≈ a local median).
    cells = cv2.dilate(cells, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    cells = cv2.medianBlur(cells, 5) if min(cells.shape) >= 3 else cells
    distance = cv2.resize(cells, (width, height), interpolation=cv2.INTER_LINEAR)

    m = soft.astype(np.float32) * np.float32(1 / 255)
    scalar = 1 - m ** np.float32(settings.preservation_strength / 2)
    scalar = 0.5 * (1 - settings.mask_influence) + scalar * settings.mask_influence
    scalar = scalar / (1.00001 - scalar)
    half = np.maximum(np.float32(settings.difference_threshold) * scalar, np.float32(1e-6))
    with np.errstate(over="ignore"):
        keep = 1 / (1 + (distance / half) ** np.float32(settings.difference_contrast))
    keep = np.clip(keep, 0, 1)
    keep = keep * keep * keep * (keep * (6 * keep - 15) + 10)  # smootherstep
    weights = cv2.GaussianBlur((1 - keep).astype(np.float32), (0, 0), sigmaX=4.0)  # A1111's anti-alias blur
    weights[soft == 0] = 0.0
    return np.clip(weights, 0, 1).astype(np.float32)
