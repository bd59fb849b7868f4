"""The 8-bit picture of the document that the canvas draws, kept current by dirty rectangle.

8-bit pixels are drawn as they are: the QImage wraps ``pixels`` without a copy, so in-place edits
show at once. 16-bit pixels get an 8-bit copy, refreshed only where pixels changed. Building that
copy for a 24 MP 16-bit photo takes ~0.2 s, so an image opened in the background builds its cache
on the loading thread: construction touches only numpy, OpenCV and QImage, which are safe off the
GUI thread.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

from app.core.geometry import Bounds
from app.editor.qimage import display_rgb8, qimage_from_array


class DisplayCache:
    """``array`` (8-bit, ``pixels`` itself when they are 8-bit) and ``qimage`` wrapping it."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.array: np.ndarray = display_rgb8(pixels)  # a new array for 16-bit pixels
        self.qimage: QImage = qimage_from_array(self.array)

    def update(self, b: Bounds) -> None:
        """Refresh the 8-bit copy where ``pixels`` changed (nothing to do for 8-bit pixels)."""
        if self.array is not self.pixels and not b.is_empty:
            self.array[b.slices] = display_rgb8(self.pixels[b.slices])
