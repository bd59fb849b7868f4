"""Zoomed-out copies of the canvas's layers (image, mask, candidate), kept current by dirty rect."""

from __future__ import annotations

import math

import cv2
import numpy as np
from PySide6.QtCore import QRect, QRectF
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPixmap

from app.widgets.zoom_pan import ZoomPan, fit_zoom


class LevelCache:
    """Half-size copies (levels 1, 2, ... = 1/2, 1/4, ...) of an 8-bit array, for zoomed-out views.

    At "fit" a 24 MP photo is drawn at ~1/4 scale; sampling the full image for every frame costs
    ~60 ms, drawing the 1/4 level costs a few ms and looks better (area-averaged, not bilinear
    aliasing). Levels are built lazily, each from the previous one by an exact factor of 2, so a
    dirty rectangle can be re-averaged in place and stays identical to a full rebuild. Image
    levels are stored as 32-bit BGRA (Qt's fastest format to draw); mask levels as Indexed8 that
    share the overlay colour table.
    """

    def __init__(self, base: np.ndarray, kind: str) -> None:
        self.base = base  # level 0, not copied
        self.kind = kind  # "image" or "mask"
        self._arrays: list[np.ndarray] = [base]  # level k array (mask: uint8; image: same layout as base)
        self._images: dict[int, QImage] = {}
        self._color_table: list[int] | None = None

    def max_level(self) -> int:
        h, w = self.base.shape[:2]
        return max(0, int(math.floor(math.log2(max(1, min(h, w))))) - 1)

    def level_for(self, zoom: float) -> int:
        if zoom >= 1.0:
            return 0
        return min(self.max_level(), int(math.floor(math.log2(1.0 / zoom) + 1e-9)))

    def image(self, level: int) -> QImage:
        while len(self._arrays) <= level:
            prev = self._arrays[-1]
            h, w = prev.shape[0] // 2, prev.shape[1] // 2
            self._arrays.append(cv2.resize(prev[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA))
        img = self._images.get(level)
        if img is None:
            img = self._wrap(level)
            self._images[level] = img
        return img

    def _wrap(self, level: int) -> QImage:
        arr = self._arrays[level]
        h, w = arr.shape[:2]
        if self.kind == "mask":
            img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Indexed8)
            img._keep = arr  # type: ignore[attr-defined]
            if self._color_table is not None:
                img.setColorTable(self._color_table)
            return img
        bgra = self._to_bgra(arr)
        fmt = QImage.Format.Format_ARGB32 if arr.ndim == 3 and arr.shape[2] == 4 else QImage.Format.Format_RGB32
        img = QImage(bgra.data, w, h, bgra.strides[0], fmt)
        img._keep = bgra  # type: ignore[attr-defined]
        return img

    @staticmethod
    def _to_bgra(arr: np.ndarray) -> np.ndarray:
        if arr.ndim == 2:
            return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGRA)
        if arr.shape[2] == 3:
            return cv2.cvtColor(arr, cv2.COLOR_RGB2BGRA)
        return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)

    def set_color_table(self, table: list[int]) -> None:
        self._color_table = table
        for level, img in self._images.items():
            if level > 0:
                img.setColorTable(table)

    def invalidate_rect(self, rect: QRect) -> None:
        """`invalidate` a document change's rect (an empty one: everything changed)."""
        if rect.isEmpty():
            h, w = self.base.shape[:2]
            self.invalidate(0, 0, w, h)
        else:
            self.invalidate(rect.x(), rect.y(), rect.width(), rect.height())

    def invalidate(self, x: int, y: int, width: int, height: int) -> None:
        """Re-average the built levels over a changed rectangle of level 0."""
        x0, y0, x1, y1 = x, y, x + width, y + height
        for level in range(1, len(self._arrays)):
            prev, cur = self._arrays[level - 1], self._arrays[level]
            x0, y0 = x0 // 2, y0 // 2
            x1, y1 = min(cur.shape[1], (x1 + 1) // 2), min(cur.shape[0], (y1 + 1) // 2)
            if x1 <= x0 or y1 <= y0:
                return
            src = prev[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
            cur[y0:y1, x0:x1] = cv2.resize(src, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
            img = self._images.get(level)
            if img is not None and self.kind == "image":
                img._keep[y0:y1, x0:x1] = self._to_bgra(np.ascontiguousarray(cur[y0:y1, x0:x1]))  # type: ignore[attr-defined]


def prebuilt(base: np.ndarray, kind: str, zoom: float) -> LevelCache:
    """A cache of ``base`` with the level drawn at ``zoom`` already built. Safe on a pool thread
    (numpy, OpenCV and QImage only): a big image opened in the background builds what its first
    paint draws there, not on the GUI thread."""
    cache = LevelCache(base, kind)
    cache.image(cache.level_for(zoom))
    return cache


def first_paint_levels(viewport: tuple[int, int]):
    """A function for the loading thread: ``(prepared image) -> (image levels, mask levels)``
    built for the zoom at which the image fits ``viewport`` (`Canvas.offer_levels` adopts them)."""

    def build(prepared) -> tuple[LevelCache, LevelCache]:
        zoom = fit_zoom(prepared.size, viewport)
        return prebuilt(prepared.display.array, "image", zoom), prebuilt(prepared.mask, "mask", zoom)

    return build


def checker_brush() -> QBrush:
    """The grey checkerboard drawn under transparent pixels."""
    pm = QPixmap(16, 16)
    pm.fill(QColor(204, 204, 204))
    p = QPainter(pm)
    p.fillRect(0, 0, 8, 8, QColor(153, 153, 153))
    p.fillRect(8, 8, 8, 8, QColor(153, 153, 153))
    p.end()
    return QBrush(pm)


def draw_layer(p: QPainter, view: ZoomPan, src: QRect, full: QImage, levels: LevelCache | None) -> None:
    """Draw image rect ``src`` of a layer through ``view`` (its zoom and mapping),
    from the coarsest level that still has detail."""
    level = levels.level_for(view.zoom) if levels is not None else 0
    if level == 0:
        p.drawImage(view.image_rect_to_widget(src), full, QRectF(src))
        return
    image = levels.image(level)
    f = 1 << level
    x0, y0 = src.x() // f, src.y() // f
    x1, y1 = min(image.width(), -(-(src.x() + src.width()) // f)), min(image.height(), -(-(src.y() + src.height()) // f))
    if x1 <= x0 or y1 <= y0:
        return
    lsrc = QRect(x0, y0, x1 - x0, y1 - y0)
    p.drawImage(view.image_rect_to_widget(QRect(x0 * f, y0 * f, lsrc.width() * f, lsrc.height() * f)), image, QRectF(lsrc))
