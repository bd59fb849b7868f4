"""The one place where numpy arrays and QImages meet (QtGui only, no widgets).

Wrapping shares memory (no copy): the canvas and the Document rely on that to redraw a 24 MP
photo by dirty rectangle. Reading a QImage back (clipboard, drops) always copies.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtGui import QImage

_FORMATS = {1: QImage.Format.Format_Grayscale8, 3: QImage.Format.Format_RGB888, 4: QImage.Format.Format_RGBA8888}


def channels(pixels: np.ndarray) -> int:
    return 1 if pixels.ndim == 2 else pixels.shape[2]


def display_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Native pixels (gray/RGB/RGBA, 8 or 16 bit) → 8-bit with the same channels, for display."""
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if pixels.dtype != np.uint8:
        raise TypeError(f"unsupported pixel type {pixels.dtype}")
    return pixels


def rgba8(pixels: np.ndarray) -> np.ndarray:
    """H×W×4 uint8 RGBA copy of native pixels (thumbnails, clipboard, tests)."""
    rgb = display_rgb8(pixels)
    if rgb.ndim == 2:
        return cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGBA)
    if rgb.shape[2] == 3:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    return rgb.copy()


def qimage_from_array(arr: np.ndarray) -> QImage:
    """Wrap a C-contiguous uint8 gray/RGB/RGBA array as a QImage sharing its memory.

    The caller keeps ``arr`` alive as long as the QImage is used (the wrapper also holds it).
    """
    if arr.size == 0:
        return QImage()
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    img = QImage(arr.data, w, h, arr.strides[0], _FORMATS[channels(arr)])
    img._keep = arr  # type: ignore[attr-defined]  # ties the buffer's life to the image wrapper
    return img


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage (clipboard, drop) → H×W×3 RGB or H×W×4 RGBA uint8 (alpha only if it has one)."""
    has_alpha = image.hasAlphaChannel()
    img = image.convertToFormat(QImage.Format.Format_RGBA8888 if has_alpha else QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    n = 4 if has_alpha else 3
    buf = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * n].reshape(h, w, n).copy()
