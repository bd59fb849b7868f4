"""Colourising a photo with DDColor (from spandrel-extra-arches, an opt-in extra).

DDColor looks at the photo's lightness at its own small size (256², as spandrel builds it) and
predicts the colour: the a and b channels of CIE Lab. As DDColor's own inference does, the photo
keeps its lightness L at full size and takes only the model's a, b, enlarged bilinearly, so
detail, sharpness and tonality are the original's and only the colour is the model's. The
conversions run in float32 (16-bit data never goes through 8 bits), row strips at a time (memory
follows the strip, not the photo), rounded back to the input's depth; alpha is kept bit-exactly;
a gray document comes back as RGB. With a mask the colour goes only there, feathered like every
selection: pixels ``blur`` + 1 px or more from it keep their values (gray g becomes (g, g, g)).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from app.core import compositing, maskops
from app.core.errors import EmptyMaskError
from app.core.geometry import Bounds
from app.inference.engine import Cancelled, CancelFn

#: Rows converted at a time (Lab ↔ RGB in float32: ≈ 100 bytes per pixel of the strip).
STRIP_ROWS = 256

#: size×size×3 float32 gray sRGB in [0, 1] → size×size×2 float32 Lab a, b (OpenCV's float Lab).
AbFunction = Callable[[np.ndarray], np.ndarray]


def ab_function(descriptor, device: str = "cpu") -> tuple[AbFunction, int]:
    """DDColor's network as an `AbFunction`, and the side it works at."""
    import torch

    model = descriptor.model
    size = int(model.input_size[0])

    def run(gray_rgb: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(gray_rgb.transpose(2, 0, 1)))[None].to(device)
        with torch.inference_mode():
            ab = model(tensor)
        return ab[0, :2].float().cpu().numpy().transpose(1, 2, 0)

    return run, size


def model_view(pixels: np.ndarray, size: int) -> np.ndarray:
    """What DDColor sees: the photo at size², reduced to its lightness (Lab L with a = b = 0) and
    shown as gray sRGB, float32 in [0, 1]."""
    small = cv2.resize(_colour(pixels), (size, size), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32) / np.float32(np.iinfo(pixels.dtype).max)
    rgb = small if small.ndim == 3 else np.repeat(small[:, :, None], 3, axis=2)
    lab = rgb_to_lab(rgb)
    lab[:, :, 1:] = 0
    return lab_to_rgb(lab)


def colorize_pixels(
    ab_model: AbFunction,
    size: int,
    pixels: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    blur: int = 4,
    progress: Callable[[int, int], None] | None = None,
    cancelled: CancelFn | None = None,
) -> np.ndarray:
    """``pixels`` (gray, RGB or RGBA, 8 or 16 bits) with the original lightness and the model's
    colour, as RGB or RGBA of the same depth; only within ``mask`` when one is given."""
    compositing.check_pixels(pixels)
    height, width = pixels.shape[:2]
    maxv = float(np.iinfo(pixels.dtype).max)
    region, weights = Bounds.of_image(width, height), None
    if mask is not None:
        hard = maskops.binarize(maskops.validate_mask(mask, (height, width)))
        box = maskops.bounds(hard)
        if box is None:
            raise EmptyMaskError()
        region = box.pad(maskops.feather_reach(blur)).clamp(width, height)
        weights = maskops.feather(hard, blur, region)
    if cancelled is not None and cancelled():
        raise Cancelled()
    ab = np.asarray(ab_model(model_view(pixels, size)), np.float32)  # the model sees the whole photo
    if ab.shape != (size, size, 2):
        raise ValueError(f"the colour model gave {ab.shape}, expected {(size, size, 2)}")
    alpha = pixels.shape[2] == 4 if pixels.ndim == 3 else False
    out = np.empty((height, width, 4 if alpha else 3), pixels.dtype)
    colour = _colour(pixels)
    out[:, :, :3] = colour if colour.ndim == 3 else colour[:, :, None]  # outside the region: as it was, as RGB
    if alpha:
        out[:, :, 3] = pixels[:, :, 3]
    # cv2.resize's bilinear (half-pixel centres, edges repeated), one strip's rows at a time
    map_x = ((np.arange(region.x, region.x + region.width, dtype=np.float32) + 0.5) * (size / width) - 0.5)
    strips = range(region.y, region.y + region.height, STRIP_ROWS)
    for index, y0 in enumerate(strips):
        if cancelled is not None and cancelled():
            raise Cancelled()
        y1 = min(y0 + STRIP_ROWS, region.y + region.height)
        map_y = (np.arange(y0, y1, dtype=np.float32) + 0.5) * (size / height) - 0.5
        xs, ys = np.meshgrid(map_x, map_y)
        ab_rows = cv2.remap(ab, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        original = out[y0:y1, region.x:region.x + region.width, :3]
        lab = rgb_to_lab(original.astype(np.float32) / np.float32(maxv))
        lab[:, :, 1:] = ab_rows
        new = lab_to_rgb(lab) * np.float32(maxv)
        if weights is None:
            original[:] = np.rint(new).astype(pixels.dtype)
        else:
            w = weights[y0 - region.y:y1 - region.y]
            blended = original + (new - original) * w[:, :, None]
            touched = w > 0
            original[touched] = np.clip(np.rint(blended), 0, maxv).astype(pixels.dtype)[touched]
        if progress is not None:
            progress(index + 1, len(strips))
    return out


# sRGB ↔ CIE Lab (D65) with OpenCV's coefficients (what DDColor was trained with), computed
# exactly: OpenCV's float conversion uses tables (a 16-bit round trip is off by up to 130 codes).
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_WHITE = np.array([0.950456, 1.0, 1.088754])
_TO_XYZ = (_RGB_TO_XYZ / _WHITE[:, None]).T.astype(np.float32)  # row vectors: rgb @ _TO_XYZ = xyz / white
_FROM_XYZ = np.linalg.inv(_RGB_TO_XYZ / _WHITE[:, None]).T.astype(np.float32)
_EPS = np.float32(0.008856)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 float32 sRGB in [0, 1] → Lab (L 0–100; a, b about ±128), as OpenCV defines them."""
    linear = np.where(rgb <= 0.04045, rgb / np.float32(12.92), ((rgb + np.float32(0.055)) / np.float32(1.055)) ** 2.4)
    xyz = linear.astype(np.float32) @ _TO_XYZ
    f = np.where(xyz > _EPS, np.cbrt(xyz), xyz * np.float32(7.787) + np.float32(16 / 116))
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
                    axis=-1).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """The inverse of `rgb_to_lab`, clipped to [0, 1] (colours outside sRGB's gamut)."""
    fy = (lab[..., 0] + 16) / np.float32(116)
    f = np.stack([fy + lab[..., 1] / np.float32(500), fy, fy - lab[..., 2] / np.float32(200)], axis=-1)
    xyz = np.where(f > np.float32(6 / 29), f ** 3, (f - np.float32(16 / 116)) / np.float32(7.787))
    linear = np.clip(xyz.astype(np.float32) @ _FROM_XYZ, 0, 1)
    srgb = np.where(linear <= 0.0031308, linear * np.float32(12.92),
                    np.float32(1.055) * linear ** np.float32(1 / 2.4) - np.float32(0.055))
    return np.clip(srgb, 0, 1).astype(np.float32)


def _colour(pixels: np.ndarray) -> np.ndarray:
    """The colour channels: H×W for a gray image, H×W×3 otherwise (a view, in the input's dtype)."""
    if pixels.ndim == 2:
        return pixels
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels[:, :, :3]
