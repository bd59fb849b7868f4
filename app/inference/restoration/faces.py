"""Face restoration (GFPGAN, RestoreFormer; CodeFormer with spandrel's extra arches) within a
selection: each painted blob of the mask is one face.

Face models are trained on 512² face crops, so each face is cut out as a square with a margin,
resized to the model's size, restored, resized back and blended in with the editor's feather
times ``strength``: pixels ``blur`` + 1 px or more from the selection, and alpha everywhere,
stay bit-identical. Without a selection the faces come from a detector
(`app.inference.restoration.detect`), drawn as one ellipse per face into such a mask.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from app.core import compositing, maskops
from app.core.errors import EmptyMaskError
from app.core.geometry import Bounds
from app.inference.engine import Cancelled, CancelFn
from app.inference.restoration.process import model_function

FACE_SIZE = 512  # what GFPGAN, RestoreFormer and CodeFormer are trained on
MARGIN = 0.25  # of the blob's longer side, added on each side: the model needs the whole head
MIN_BLOB = 8  # px: smaller blobs are stray paint, not faces


def face_boxes(mask: np.ndarray) -> list[Bounds]:
    """The bounding box of each painted blob (8-connected), largest first."""
    count, _labels, stats, _ = cv2.connectedComponentsWithStats((mask >= maskops.THRESHOLD).astype(np.uint8), 8)
    boxes = [Bounds(int(x), int(y), int(w), int(h)) for x, y, w, h, _area in stats[1:count]
             if w >= MIN_BLOB and h >= MIN_BLOB]
    return sorted(boxes, key=lambda b: -b.width * b.height)


def square_around(box: Bounds, width: int, height: int, margin: float = MARGIN) -> Bounds:
    """A square holding ``box`` plus ``margin``, moved (not cut) to stay inside the image where
    the image is large enough."""
    side = min(int(round(max(box.width, box.height) * (1 + 2 * margin))), width, height)
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    x = int(round(min(max(cx - side / 2, 0), max(width - side, 0))))
    y = int(round(min(max(cy - side / 2, 0), max(height - side, 0))))
    return Bounds(x, y, side, side).clamp(width, height)


def restore_faces_in_mask(
    descriptor,
    pixels: np.ndarray,
    mask: np.ndarray,
    *,
    strength: float = 1.0,
    blur: int = 8,
    size: int | None = None,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    cancelled: CancelFn | None = None,
) -> np.ndarray:
    """``pixels`` with the face model applied to each blob of ``mask`` (layout and dtype kept)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength {strength} is outside 0…1")
    compositing.check_pixels(pixels)
    height, width = pixels.shape[:2]
    hard = maskops.binarize(maskops.validate_mask(mask, (height, width)))
    boxes = face_boxes(hard)
    if not boxes:
        raise EmptyMaskError()
    if strength == 0.0:  # nothing of a restored face would be used
        return pixels.copy()
    maxv = float(np.iinfo(pixels.dtype).max)
    size = size or FACE_SIZE
    run = model_function(descriptor, device)
    out = pixels.copy()
    for index, box in enumerate(boxes):
        if cancelled is not None and cancelled():
            raise Cancelled()
        crop = square_around(box, width, height)
        original = pixels[crop.slices]
        colour = original if original.ndim == 2 else original[:, :, : 3 if original.shape[2] >= 3 else 1]
        colour = colour.reshape(crop.height, crop.width, -1).astype(np.float32) / maxv
        rgb = colour if colour.shape[2] == 3 else np.repeat(colour, 3, axis=2)
        shrink = size < max(crop.width, crop.height)
        face = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        restored = np.clip(cv2.resize(run(face), (crop.width, crop.height), interpolation=cv2.INTER_CUBIC), 0, 1)
        if colour.shape[2] == 1:
            restored = cv2.cvtColor(restored, cv2.COLOR_RGB2GRAY)[:, :, None]
        weights = maskops.feather(hard, blur, crop, owned=box) * np.float32(strength)  # this face's blob only
        target = out[crop.slices]
        target = target if target.ndim == 2 else target[:, :, : restored.shape[2]]
        new = restored[:, :, 0] if target.ndim == 2 else restored
        w = weights if target.ndim == 2 else weights[:, :, None]
        blended = target.astype(np.float32) + (new * maxv - target) * w
        touched = weights > 0
        target[touched] = np.clip(np.rint(blended), 0, maxv).astype(pixels.dtype)[touched]
        if progress is not None:
            progress(index + 1, len(boxes))
    return out
