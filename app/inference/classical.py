"""The built-in classical inpainting backend (OpenCV Telea / Navier–Stokes).

Always available and the default with no diffusion model installed, so the product works the
moment it is installed. It is deterministic: every seed of a batch gives the same pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.core.errors import NothingToInpaintFromError
from app.core.params import CLASSICAL_METHODS
from app.inference.engine import BackendRequest, Cancelled, CancelFn


class ClassicalBackend:
    native_resolution = True

    def __init__(self, model: str = "builtin:telea", radius: int = 5):
        if model not in CLASSICAL_METHODS:
            raise ValueError(f"unknown classical method {model!r}: use one of {', '.join(CLASSICAL_METHODS)}")
        self.name = model
        self.method = getattr(cv2, CLASSICAL_METHODS[model].cv2_flag)
        self.radius = radius

    def generate(self, request: BackendRequest, progress, cancelled: CancelFn) -> list[np.ndarray]:
        if cancelled():
            raise Cancelled()
        if not (request.mask == 0).any():
            raise NothingToInpaintFromError()
        progress(0, 1, None)
        out = cv2.inpaint(request.image, (request.mask > 0).astype(np.uint8), self.radius, self.method)
        progress(1, 1, out)
        return [out] * len(request.seeds)
