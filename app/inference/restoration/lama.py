"""LaMa as an inpainting backend beside the classical ones.

The engine drives it like any backend: it plans regions around the mask, crops, hands this
backend RGB8 at the crop's own size (``native_resolution``: no prompt, no seed, no model size)
and composites the result into the original pixels, so everything outside the mask stays
bit-identical and the cost follows the mask, not the photo. big-lama's full-resolution layers
run in strips of rows (`lama_strips`), so a pass holds ≈0.5 GB above the weights for a 1 MP crop;
a region larger than `MAX_AREA` is inpainted window by window, so memory stays bounded whatever
the mask's extent. MAT (with spandrel-extra-arches) runs the same way, padded to its 512² squares.

Model references: ``lama`` (the first LaMa or MAT file found in the models folders' ``LaMa/``,
``inpaint/``, ``MAT/`` or ``restoration/`` sub-folders) or ``lama:PATH``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from app.core.errors import NothingToInpaintFromError
from app.core.geometry import Bounds
from app.core.params import LAMA_MODEL, is_lama_model
from app.inference.engine import BackendRequest, Cancelled, CancelFn
from app.inference.errors import ModelLoadError, UnsupportedModelError
from app.inference.restoration import files, lama_strips, tiling

PREFIX = LAMA_MODEL
#: Largest region (pixels) LaMa sees in one pass: ≈0.7 GB of float32 activations on the CPU.
#: A larger region (a scratch across a 24 MP scan) is inpainted in windows: cores of
#: `WINDOW_CORE` px, each seen with `WINDOW_CONTEXT` px of surround, so memory stays bounded.
MAX_AREA = 1280 * 1280
WINDOW_CORE, WINDOW_CONTEXT = 1024, 128


def is_lama(model_ref: str) -> bool:
    return is_lama_model(model_ref)


def resolve(model_ref: str) -> Path:
    """The file a ``lama`` reference names, found without torch (`ModelLoadError` if none)."""
    if model_ref.startswith(PREFIX + ":"):
        path = Path(model_ref[len(PREFIX) + 1:]).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such LaMa model file")
        return files.resolve(str(path), files.INPAINT)
    candidates = discover()
    if not candidates:
        raise ModelLoadError("no LaMa model found: put big-lama.safetensors (or a weights-only big-lama.pth) in a "
                             "LaMa/ folder of a models folder, or give --model lama:FILE "
                             f"({files.search_roots()[0]} is the first models folder)")
    return candidates[0]


def discover() -> list[Path]:
    """The LaMa files found (an inpainting sub-folder, or "lama" in the name), in search order,
    without torch: what the editor's model list offers and a bare ``lama`` reference takes."""
    return [f.path for f in files.discover() if f.folder_purpose == files.INPAINT or "lama" in f.name.lower()]


class LamaBackend:
    """LaMa on one device; deterministic (every seed gives the same pixels)."""

    native_resolution = True

    def __init__(self, name: str, descriptor, device: str = "cpu"):
        self.name = name
        self.descriptor = descriptor
        self.device = device

    def generate(self, request: BackendRequest, progress, cancelled: CancelFn) -> list[np.ndarray]:
        if cancelled():
            raise Cancelled()
        if not (request.mask == 0).any():
            raise NothingToInpaintFromError()
        h, w = request.mask.shape
        if h * w <= MAX_AREA:
            windows = [(Bounds.of_image(w, h), Bounds.of_image(w, h))]
        else:  # a scratch across a big scan: windows around the mask, each inpainting its own core
            windows = [(core, core.pad(WINDOW_CONTEXT).clamp(w, h)) for core in tiling.tiles(h, w, WINDOW_CORE)
                       if request.mask[core.slices].any()]
        result = request.image.copy()
        progress(0, len(windows), None)
        for index, (core, outer) in enumerate(windows):
            if cancelled():
                raise Cancelled()
            painted = self._inpaint(request.image[outer.slices], request.mask[outer.slices])
            dy, dx = core.y - outer.y, core.x - outer.x
            result[core.slices] = painted[dy:dy + core.height, dx:dx + core.width]
            progress(index + 1, len(windows), result)
        return [result] * len(request.seeds)

    def _inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One LaMa (or MAT) pass: RGB8 and mask, padded (mirrored) to the sides the model accepts."""
        import torch

        h, w = mask.shape
        req = self.descriptor.size_requirements
        ph = max(req.minimum, -(-h // req.multiple_of) * req.multiple_of)
        pw = max(req.minimum, -(-w // req.multiple_of) * req.multiple_of)
        if req.square:  # MAT (spandrel-extra-arches): squares of 512·n
            ph = pw = max(ph, pw)
        mode = cv2.BORDER_REFLECT_101 if ph - h < h and pw - w < w else cv2.BORDER_REPLICATE
        image = cv2.copyMakeBorder(image, 0, ph - h, 0, pw - w, mode)
        mask = cv2.copyMakeBorder(mask, 0, ph - h, 0, pw - w, mode)
        img_t = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None].to(self.device)
        mask_t = torch.from_numpy((mask >= 128).astype(np.float32))[None, None].to(self.device)
        with torch.inference_mode():
            out = _forward(self.descriptor, img_t, mask_t)
            out = (out[0, :, :h, :w].clamp(0, 1) * 255).round().byte().cpu().numpy()
        return np.ascontiguousarray(out.transpose(1, 2, 0))


def _forward(descriptor, image, mask):
    """spandrel's LaMa forward (masked image in, painted hole composited over the image), with
    the generator's full-resolution layers in strips (`lama_strips`) where its layout is known."""
    generator = getattr(getattr(descriptor, "model", None), "model", None)
    if not lama_strips.supported(generator):
        return descriptor(image, mask)
    import torch

    painted = lama_strips.forward(generator, torch.cat([image * (1 - mask), mask], dim=1))
    return mask * painted + (1 - mask) * image


def load_lama_backend(model_ref: str, device: str | None = None) -> LamaBackend:
    from app.inference.restoration import loader

    path = resolve(model_ref)
    device = device or loader.best_device()
    descriptor = loader.load(path, device)
    if descriptor.purpose != "Inpainting":
        raise UnsupportedModelError(f"{path.name} is a {descriptor.architecture.id} model "
                                    f"({loader.summarise(descriptor, path).purpose}), not an inpainting model")
    return LamaBackend(model_ref, descriptor, device)
