"""One brush stroke in progress on the mask: the tiles it has touched (so the finished stroke is
one undo command of changed tiles) and the rule that keeps overlapping segments from building up.
"""

from __future__ import annotations

import numpy as np

from app.core.geometry import Bounds
from app.editor.brush import Point, brush_coverage, segment_bounds
from app.editor.undo import TileDelta, TileSnapshot

STROKE_MODES = ("paint", "erase")


class MaskStroke:
    """Paints segments into ``mask`` in place; ``mode`` "paint" moves towards 255, "erase" towards 0."""

    def __init__(self, mask: np.ndarray, mode: str) -> None:
        if mode not in STROKE_MODES:
            raise ValueError(f"stroke mode must be 'paint' or 'erase', not {mode!r}")
        self.mode = mode
        self._mask = mask
        self._snapshot = TileSnapshot("mask", mask)

    @property
    def label(self) -> str:
        """The undo command's name."""
        return "Erase stroke" if self.mode == "erase" else "Brush stroke"

    def paint(self, p0: Point, p1: Point, radius: float, hardness: float) -> Bounds:
        """Paint one segment over its bounding box only; returns that box (empty: off the mask).
        Paint keeps the maximum of mask and brush (erase the minimum), so a stroke crossing itself
        never darkens."""
        height, width = self._mask.shape[:2]
        b = segment_bounds(p0, p1, radius, width, height)
        if b.is_empty:
            return b
        self._snapshot.touch(b)
        cov = brush_coverage(b, p0, p1, radius, hardness)
        region = self._mask[b.slices]
        if self.mode == "paint":
            np.maximum(region, cov, out=region)
        else:
            np.minimum(region, 255 - cov, out=region)
        return b

    def finish(self) -> TileDelta:
        """The tiles the stroke changed, with their bytes from before it."""
        return self._snapshot.finish()
