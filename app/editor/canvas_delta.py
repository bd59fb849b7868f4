"""Undo data for a canvas resize (expand for outpainting).

A resize changes the arrays' shapes, so the tile deltas of :mod:`app.editor.undo` (which write
into an array of a fixed shape) cannot hold it. This delta keeps both whole states, zlib-packed,
and rides in the same `TileCommand` (so it shares the history budget and eviction); the
Document swaps the arrays in and emits ``reset``. Undo gives back the exact bytes it stored.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from app.core.geometry import Bounds

_LEVEL = 1  # a resize is rare; level 1 keeps a 24 MP pack near half a second


@dataclass(frozen=True)
class PackedArray:
    data: bytes
    shape: tuple[int, ...]
    dtype: np.dtype
    compressed: bool = True

    @staticmethod
    def of(array: np.ndarray) -> PackedArray:
        return PackedArray(zlib.compress(np.ascontiguousarray(array).tobytes(), _LEVEL), array.shape, array.dtype)

    @staticmethod
    def raw(array: np.ndarray) -> PackedArray:
        """Stored as it is: for large photographic pixels (an upscale's), which zlib shrinks
        little while inflating ~100 MB takes seconds, on the GUI thread at each undo/redo."""
        return PackedArray(np.ascontiguousarray(array).tobytes(), array.shape, array.dtype, compressed=False)

    def unpack(self) -> np.ndarray:
        data = zlib.decompress(self.data) if self.compressed else self.data
        return np.frombuffer(data, self.dtype).reshape(self.shape).copy()


@dataclass(frozen=True)
class CanvasState:
    """Everything a resize changes: pixels, mask, context box, where the original sits."""

    pixels: PackedArray
    mask: PackedArray
    box: Bounds | None
    original_offset: tuple[int, int]

    @staticmethod
    def of(pixels: np.ndarray, mask: np.ndarray, box: Bounds | None, original_offset: tuple[int, int]) -> CanvasState:
        return CanvasState(PackedArray.of(pixels), PackedArray.of(mask), box, tuple(original_offset))


@dataclass(frozen=True)
class CanvasDelta:
    before: CanvasState
    after: CanvasState
    target: str = "canvas"

    @property
    def is_empty(self) -> bool:
        return False

    @property
    def nbytes(self) -> int:
        return sum(len(s.pixels.data) + len(s.mask.data) for s in (self.before, self.after)) + 256

    def state(self, which: str) -> CanvasState:
        return self.after if which == "after" else self.before
