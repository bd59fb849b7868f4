"""Running an image-to-image model tile by tile, so memory follows the tile, not the photo.

Each tile is given ``overlap`` pixels of real context on every side (clamped at the image's
edges) and only its core is kept, so where a model's receptive field is within the overlap the
tiled result equals the untiled one, and a flat image shows no seam. Only one tile's floats live
at a time; the output is written straight into an array of the caller's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from app.core.geometry import Bounds
from app.inference.engine import Cancelled, CancelFn

#: Conservative working memory per input pixel of a tile, per (1 + scale²), in bytes: float32
#: activations of ~64 feature channels, ~6 alive at once (ESRGAN's dense blocks hold more;
#: upsampling layers work at scale² the pixels).
BYTES_PER_PIXEL = 4 * 64 * 6
MIN_TILE, MAX_TILE = 64, 2048
DEFAULT_OVERLAP = 16


def estimate_bytes(tile: int, scale: int, overlap: int = DEFAULT_OVERLAP) -> int:
    """Working memory the estimate allows for one tile of ``tile``² core pixels."""
    side = tile + 2 * overlap
    return side * side * BYTES_PER_PIXEL * (1 + scale * scale)


def tile_for_budget(budget_bytes: int, scale: int, overlap: int = DEFAULT_OVERLAP, multiple: int = 1) -> int:
    """The largest tile side whose estimate fits ``budget_bytes`` (never above it, unless even
    the smallest tile, `MIN_TILE`, does not fit), a multiple of ``multiple``."""
    side = math.isqrt(max(budget_bytes, 0) // (BYTES_PER_PIXEL * (1 + scale * scale)))
    tile = min(MAX_TILE, side - 2 * overlap)
    tile -= tile % max(multiple, 1)
    return max(MIN_TILE, tile)


def tiles(height: int, width: int, tile: int) -> list[Bounds]:
    """Core boxes covering the image, row by row."""
    return [Bounds(x, y, min(tile, width - x), min(tile, height - y))
            for y in range(0, height, tile) for x in range(0, width, tile)]


def run_tiled(
    model: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    scale: int,
    tile: int,
    overlap: int = DEFAULT_OVERLAP,
    out_dtype=np.float32,
    convert: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: CancelFn | None = None,
) -> np.ndarray:
    """``model`` (an h×w×C block of ``image`` → h·s×w·s×C' float32) over ``image`` in tiles.
    ``convert`` turns each kept float block into ``out_dtype`` (e.g. rounding to uint16)."""
    height, width = image.shape[:2]
    boxes = tiles(height, width, tile)
    out = None
    for index, core in enumerate(boxes):
        if cancelled is not None and cancelled():
            raise Cancelled()
        outer = core.pad(overlap).clamp(width, height)
        result = model(image[outer.slices])
        if out is None:
            out = np.empty((height * scale, width * scale, result.shape[2]), out_dtype)
        dy, dx = (core.y - outer.y) * scale, (core.x - outer.x) * scale
        kept = result[dy:dy + core.height * scale, dx:dx + core.width * scale]
        out[core.y * scale:(core.y + core.height) * scale, core.x * scale:(core.x + core.width) * scale] = (
            kept if convert is None else convert(kept))
        if progress is not None:
            progress(index + 1, len(boxes))
    assert out is not None
    return out
