"""The restoration service: the one path from "upscale / denoise this image (or selection)" to
pixels, for every front end (the CLI, the server's A1111 extras through `app.service.extras`,
the editor's Restore panel). Importing it loads no torch.

It keeps one model loaded (per file and device), runs one operation at a time under the
device's lock (`app.service.device`: shared with the generation service that hands it out —
`GenerationService.restoration` — so a restoration never overlaps a generation on one device),
and when the device runs out of memory it halves the tile and tries again, down to the smallest
tile, before reporting `GpuOutOfMemory` with the document untouched.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.core.errors import UserError
from app.inference.engine import CancelFn
from app.inference.errors import GpuOutOfMemory, UnsupportedModelError
from app.service.device import DeviceLock

if TYPE_CHECKING:
    from app.inference.restoration.detect import FaceDetector

#: operation → the purpose its model must have (`app.inference.restoration.files`)
OPERATIONS = {"upscale": "upscale", "denoise": "restore", "restore-faces": "face", "colorize": "colorize"}


@dataclass(frozen=True)
class RestorationRequest:
    operation: str  # a key of OPERATIONS
    image: np.ndarray  # the document's pixels (gray/RGB/RGBA, uint8/uint16)
    #: H×W, 255 = apply here (same-size models only); None = everywhere (restore-faces: the faces found)
    mask: np.ndarray | None = None
    model: str | None = None  # a file path or the name of a discovered file; None = the first found
    tile: int | None = None  # None = from the memory budget
    device: str | None = None  # None = the best available
    mask_blur: int = 4
    strength: float = 1.0  # restore-faces: how much of the restored face replaces the original


@dataclass(frozen=True)
class RestorationResult:
    pixels: np.ndarray
    model: Path
    architecture: str
    scale: int
    tile: int | None  # the tile that fitted (after halvings), None when chosen from the budget
    elapsed_s: float


class RestorationService:
    def __init__(self, device_lock: DeviceLock | None = None, face_detector: FaceDetector | None = None) -> None:
        """``device_lock``: the lock of the device (`GenerationService.restoration` passes its
        own). ``face_detector``: finds faces for restore-faces without a mask (default: OpenCV's
        YuNet from the models folder, `app.inference.restoration.detect`)."""
        self._lock = device_lock or DeviceLock()
        self.face_detector = face_detector
        self._key: tuple[str, str] | None = None
        self._descriptor = None

    def resolve(self, operation: str, model: str | None):
        """The model file for ``operation`` and what it is; refuses one of another purpose.
        Without ``model``: the first found of that purpose that loads. (Detection imports torch
        and spandrel, but builds no weights.)"""
        from app.inference.restoration import files, loader

        if operation not in OPERATIONS:
            raise ValueError(f"unknown restoration operation {operation!r}: use one of {', '.join(OPERATIONS)}")
        purpose = OPERATIONS[operation]
        if model is None:  # the first file of that purpose that loads (a refused one is skipped)
            for summary in self._found(purpose):
                return summary
        path = files.resolve(model, purpose)
        summary = loader.detect(path)
        if summary.purpose != purpose:
            raise UnsupportedModelError(f"{path.name}: a {summary.architecture} model for {summary.purpose} "
                                        f"(×{summary.scale}); {operation} needs a {purpose} model")
        return summary

    def available(self, operation: str) -> list:
        """Every model file found that detects as fit for ``operation`` (`ModelSummary`s, in
        search order; refused or unreadable files are left out): what a front end lists."""
        return list(self._found(OPERATIONS[operation]))

    def _found(self, purpose: str):
        from app.inference.restoration import files, loader

        for found in files.discover():
            if found.folder_purpose in (purpose, None):
                try:
                    summary = loader.detect(found.path)
                except UserError:
                    continue
                if summary.purpose == purpose:
                    yield summary

    def run(self, request: RestorationRequest, progress: Callable[[int, int], None] | None = None,
            cancelled: CancelFn | None = None) -> RestorationResult:
        from app.inference.restoration import loader, process, tiling

        summary = self.resolve(request.operation, request.model)
        if request.mask is not None and summary.scale != 1:
            raise UserError(f"{summary.path.name} changes the image's size (×{summary.scale}): it applies to the "
                            "whole image, not to a selection")
        if request.operation == "restore-faces" and request.mask is None:
            request = replace(request, mask=self.find_faces(request.image))
        device = request.device or loader.best_device()
        t0 = time.perf_counter()
        with self._lock:
            descriptor = self._model(summary.path, device)
            tile = request.tile
            while True:
                try:
                    if request.operation == "restore-faces":
                        from app.inference.restoration import faces

                        pixels = faces.restore_faces_in_mask(descriptor, request.image, request.mask,
                                                             strength=request.strength, blur=request.mask_blur,
                                                             device=device, progress=progress, cancelled=cancelled)
                    elif request.operation == "colorize":
                        from app.inference.restoration import colorize

                        ab_model, size = colorize.ab_function(descriptor, device)
                        pixels = colorize.colorize_pixels(ab_model, size, request.image, request.mask,
                                                          blur=request.mask_blur, progress=progress, cancelled=cancelled)
                    elif request.mask is None:
                        pixels = process.apply_image_model(descriptor, request.image, device=device, tile=tile,
                                                           progress=progress, cancelled=cancelled)
                    else:
                        pixels = process.apply_in_mask(descriptor, request.image, request.mask, blur=request.mask_blur,
                                                       device=device, tile=tile, progress=progress, cancelled=cancelled)
                    break
                except Exception as exc:
                    if not _out_of_memory(exc):
                        raise
                    current = tile or tiling.tile_for_budget(process.default_budget(device), summary.scale)
                    if current <= tiling.MIN_TILE:
                        self.release_locked()
                        raise GpuOutOfMemory(device, True, str(exc)) from exc
                    tile = max(tiling.MIN_TILE, current // 2)
        return RestorationResult(pixels, summary.path, summary.architecture, summary.scale, tile,
                                 time.perf_counter() - t0)

    def find_faces(self, image: np.ndarray) -> np.ndarray:
        """A selection with one feathered-ready ellipse per face the detector finds (`NoFaceDetector`
        when there is no detector, `NoFacesFound` when it finds none)."""
        from app.inference.restoration import detect

        detector = self.face_detector or detect.default_detector()
        boxes = detector(detect.detection_input(image))
        if not boxes:
            raise detect.NoFacesFound()
        return detect.faces_mask(boxes, image.shape[0], image.shape[1])

    def colorize(self, image: np.ndarray, mask: np.ndarray | None = None, *, model: str | None = None,
                 device: str | None = None, mask_blur: int = 4, progress: Callable[[int, int], None] | None = None,
                 cancelled: CancelFn | None = None) -> RestorationResult:
        """``image`` colourised by a DDColor model (spandrel-extra-arches), only within ``mask``
        when given: `run` with the "colorize" operation (the result is RGB or RGBA)."""
        request = RestorationRequest("colorize", image, mask, model, device=device, mask_blur=mask_blur)
        return self.run(request, progress, cancelled)

    def _model(self, path: Path, device: str):
        from app.inference.restoration import loader

        key = (str(path), device)
        if self._key != key:
            self._descriptor, self._key = None, None  # drop the old weights before loading new ones
            self._descriptor = loader.load(path, device)
            self._key = key
        return self._descriptor

    def release(self) -> None:
        with self._lock:
            self.release_locked()

    def release_locked(self) -> None:
        self._descriptor, self._key = None, None


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError (CPU), torch's OutOfMemoryError (CUDA) by its type, or the plain RuntimeError
    torch raises for other devices (MPS), which has no type of its own: the one message read, at
    the torch boundary, before the failure becomes a typed `GpuOutOfMemory`. Imports no torch."""
    torch = sys.modules.get("torch")
    typed = getattr(torch, "OutOfMemoryError", ()) if torch is not None else ()
    return isinstance(exc, (MemoryError, typed) if typed else MemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


__all__ = ["OPERATIONS", "RestorationRequest", "RestorationResult", "RestorationService"]
