"""Postprocessing as A1111's "Extras" tab does it: upscale, then restore faces (GFPGAN, then
CodeFormer: A1111's script order since 1.6, whose API ignores ``upscale_first``), each optional,
through the one `RestorationService`.

The upscale step follows A1111's rules so its clients get the sizes they ask for: the target is
the image × ``by`` (resize mode 0) or ``to`` (mode 1: scaled by the larger ratio, then
centre-cropped to exactly that size when ``crop``); a model runs pass after pass (at most
`MAX_PASSES`) until the image reaches the target, then a Lanczos resize (area when shrinking)
gives the exact size; a second upscaler is blended in by its visibility. "Lanczos" and "Nearest"
are plain resizes, "None" skips the step. Face restoration on the whole image finds the faces
(`RestorationService.find_faces`) and blends each restored face by its visibility: outside the
faces every pixel stays as it was. Bit depth and alpha are kept throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from app.core.decode_budget import MAX_PIXELS
from app.core.errors import UserError
from app.inference.engine import Cancelled, CancelFn
from app.service.restoration import RestorationRequest, RestorationService

NONE, LANCZOS, NEAREST = "None", "Lanczos", "Nearest"
#: Upscalers that are plain resizes (no model), as A1111 lists them first.
RESIZES = (NONE, LANCZOS, NEAREST)
#: A1111 runs a model at most three times to reach the target (×4 model, ×64 asked: 4·4·4).
MAX_PASSES = 3
#: Feather (px) of a detected face's ellipse: wide enough that a restored face has no visible edge.
FACE_FEATHER = 12


@dataclass(frozen=True)
class Upscale:
    upscaler: str  # NONE, LANCZOS, NEAREST, or a model file (path or discovered name)
    by: float = 2.0  # resize mode 0
    to: tuple[int, int] | None = None  # resize mode 1: (width, height)
    crop: bool = True  # mode 1: cut the scaled image to exactly ``to``
    second: str = NONE
    second_visibility: float = 0.0
    labels: tuple[str, str] | None = None  # how the info names the two (default: the files' names)


@dataclass(frozen=True)
class FaceRestore:
    model: str  # a face model file (path or discovered name)
    visibility: float  # 0–1: the restored face's share in the blend
    label: str = "GFPGAN"  # how the info names it


@dataclass(frozen=True)
class ExtrasRequest:
    image: np.ndarray  # gray/RGB/RGBA, uint8/uint16
    upscale: Upscale | None = None
    faces: tuple[FaceRestore, ...] = ()  # in this order, after the upscale
    device: str | None = None


@dataclass(frozen=True)
class ExtrasResult:
    pixels: np.ndarray
    #: What was done, in A1111's words ("Postprocess upscale by": 2, …), for the client's info text.
    info: dict[str, str]

    def scale_from(self, image: np.ndarray) -> tuple[float, float]:
        """Output / input size per axis (for the DPI that keeps the print size)."""
        return self.pixels.shape[1] / image.shape[1], self.pixels.shape[0] / image.shape[0]


def target_size(width: int, height: int, upscale: Upscale) -> tuple[int, int]:
    """The size the upscaler must reach (before a mode-1 crop), A1111's rule."""
    if upscale.to is None:
        by = upscale.by
    else:
        by = max(upscale.to[0] / width, upscale.to[1] / height)
    return max(1, int(width * by)), max(1, int(height * by))


def output_size(width: int, height: int, upscale: Upscale | None) -> tuple[int, int]:
    if upscale is None or upscale.upscaler == NONE:
        return width, height
    if upscale.to is not None and upscale.crop:
        return upscale.to
    return target_size(width, height, upscale)


def check(request: ExtrasRequest) -> None:
    """`UserError` for a result over the one pixel limit, before anything runs."""
    height, width = request.image.shape[:2]
    out_w, out_h = output_size(width, height, request.upscale)
    big_w, big_h = (out_w, out_h) if request.upscale is None else target_size(width, height, request.upscale)
    if max(out_w * out_h, big_w * big_h) > MAX_PIXELS:
        raise UserError(f"the result would be {big_w}×{big_h} pixels; the limit is {MAX_PIXELS:,} pixels")


def run_extras(service: RestorationService, request: ExtrasRequest, progress: Callable[[int, int], None] | None = None,
               cancelled: CancelFn | None = None) -> ExtrasResult:
    check(request)
    info: dict[str, str] = {}
    pixels = request.image

    if request.upscale is not None and request.upscale.upscaler != NONE:
        pixels = _upscale(service, pixels, request.upscale, request.device, info, progress, cancelled)
    for face in request.faces:
        if face.visibility > 0:
            pixels = service.run(RestorationRequest("restore-faces", pixels, model=face.model, device=request.device,
                                                    strength=face.visibility, mask_blur=FACE_FEATHER),
                                 progress, cancelled).pixels
            info[f"Postprocess {face.label} visibility"] = f"{face.visibility:g}"
    return ExtrasResult(pixels, info)


def _upscale(service: RestorationService, pixels: np.ndarray, upscale: Upscale, device: str | None,
             info: dict[str, str], progress, cancelled) -> np.ndarray:
    height, width = pixels.shape[:2]
    target = target_size(width, height, upscale)
    if upscale.to is None:
        info["Postprocess upscale by"] = f"{upscale.by:g}"
    else:
        info["Postprocess upscale to"] = f"{upscale.to[0]}x{upscale.to[1]}"
    out = _upscale_to(service, pixels, upscale.upscaler, target, device, progress, cancelled)
    labels = upscale.labels or (_label(upscale.upscaler), _label(upscale.second))
    info["Postprocess upscaler"] = labels[0]
    if upscale.second != NONE and upscale.second_visibility > 0:
        second = _upscale_to(service, pixels, upscale.second, target, device, progress, cancelled)
        out = blend(out, second, upscale.second_visibility)
        info["Postprocess upscaler 2"] = labels[1]
    if upscale.to is not None and upscale.crop:
        out = centre_crop(out, *upscale.to)
        info["Postprocess crop to"] = f"{upscale.to[0]}x{upscale.to[1]}"
    return out


def _upscale_to(service: RestorationService, pixels: np.ndarray, upscaler: str, target: tuple[int, int],
                device: str | None, progress, cancelled) -> np.ndarray:
    if upscaler not in RESIZES:
        scale = service.resolve("upscale", upscaler).scale
        for _ in range(MAX_PASSES if scale > 1 else 1):
            height, width = pixels.shape[:2]
            if width >= target[0] and height >= target[1] or width * height * scale * scale > MAX_PIXELS:
                break  # there, or a pass would overshoot the pixel limit: Lanczos does the rest
            if cancelled is not None and cancelled():
                raise Cancelled()
            pixels = service.run(RestorationRequest("upscale", pixels, model=upscaler, device=device), progress,
                                 cancelled).pixels
    return resize(pixels, target, nearest=upscaler == NEAREST)


def resize(pixels: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``pixels`` at exactly ``size`` (width, height): Lanczos enlarging, area shrinking."""
    height, width = pixels.shape[:2]
    if (width, height) == size:
        return pixels
    if nearest:
        method = cv2.INTER_NEAREST_EXACT
    else:
        method = cv2.INTER_AREA if size[0] <= width and size[1] <= height else cv2.INTER_LANCZOS4
    out = cv2.resize(pixels, size, interpolation=method)
    return out.reshape(size[1], size[0], *pixels.shape[2:])


def blend(a: np.ndarray, b: np.ndarray, visibility: float) -> np.ndarray:
    """``a`` with ``b`` mixed in by ``visibility`` (A1111's Image.blend), in ``a``'s dtype."""
    mixed = a.astype(np.float32) + (b.astype(np.float32) - a) * np.float32(visibility)
    return np.clip(np.rint(mixed), 0, np.iinfo(a.dtype).max).astype(a.dtype)


def centre_crop(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The centre ``width``×``height`` of ``pixels`` (padded with black where it is smaller, as A1111 pastes)."""
    h, w = pixels.shape[:2]
    out = np.zeros((height, width, *pixels.shape[2:]), pixels.dtype)
    x, y = (w - width) // 2, (h - height) // 2
    sx, sy, dx, dy = max(x, 0), max(y, 0), max(-x, 0), max(-y, 0)
    cw, ch = min(width - dx, w - sx), min(height - dy, h - sy)
    out[dy:dy + ch, dx:dx + cw] = pixels[sy:sy + ch, sx:sx + cw]
    return out


def _label(upscaler: str) -> str:
    """A model's file name without its folders (clients never learn this machine's paths)."""
    return upscaler.replace("\\", "/").rsplit("/", 1)[-1]


__all__ = ["ExtrasRequest", "ExtrasResult", "FaceRestore", "Upscale", "output_size", "run_extras", "target_size"]
