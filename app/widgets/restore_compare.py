"""Before/after of a restoration result, split by a draggable line (as upscaler tools show it).

The canvas can compare a candidate only at the document's size; an upscale is larger, so the
restore dialog shows both here at the result's scale: fitted to the view, or a 1:1 "Detail" crop
of the result (the before enlarged by nearest neighbour, so its pixels show as they are).
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.core.geometry import Bounds
from app.editor.qimage import display_rgb8, qimage_from_array

VIEW = QSize(640, 420)


def compare_pair(before: np.ndarray, after: np.ndarray, focus: Bounds | None = None, detail: bool = False,
                 view: QSize = VIEW) -> tuple[np.ndarray, np.ndarray]:
    """(before, after) as RGB8 arrays of one size for the view: around ``focus`` (before's
    coordinates; None = the whole image), fitted to ``view`` or, with ``detail``, 1:1 in the result."""
    s = after.shape[1] / before.shape[1]
    h, w = before.shape[:2]
    focus = (focus or Bounds.of_image(w, h)).clamp(w, h)
    if detail:
        cw, ch = min(view.width(), after.shape[1]), min(view.height(), after.shape[0])
        cx, cy = (focus.x + focus.width / 2) * s, (focus.y + focus.height / 2) * s
        x = int(min(max(cx - cw / 2, 0), after.shape[1] - cw))
        y = int(min(max(cy - ch / 2, 0), after.shape[0] - ch))
        a = after[y:y + ch, x:x + cw]
        bx0, by0 = int(x / s), int(y / s)
        bx1, by1 = max(bx0 + 1, int(np.ceil((x + cw) / s))), max(by0 + 1, int(np.ceil((y + ch) / s)))
        b = before[by0:by1, bx0:bx1]
        b = cv2.resize(b, (int(round((bx1 - bx0) * s)), int(round((by1 - by0) * s))), interpolation=cv2.INTER_NEAREST)
        ox, oy = int(round(x - bx0 * s)), int(round(y - by0 * s))
        b = b[oy:oy + ch, ox:ox + cw]
        return _rgb8(b), _rgb8(a)
    a = after[int(focus.y * s):int(focus.bottom * s), int(focus.x * s):int(focus.right * s)]
    b = before[focus.slices]
    fit = min(view.width() / a.shape[1], view.height() / a.shape[0], 1.0)
    size = (max(1, int(a.shape[1] * fit)), max(1, int(a.shape[0] * fit)))
    return (_rgb8(cv2.resize(b, size, interpolation=cv2.INTER_AREA if b.shape[1] > size[0] else cv2.INTER_NEAREST)),
            _rgb8(cv2.resize(a, size, interpolation=cv2.INTER_AREA)))


def _rgb8(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(display_rgb8(pixels))


class CompareView(QWidget):
    """Paints ``after`` with ``before`` over it left of the split line; drag to move the line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.before: QImage | None = None
        self.after: QImage | None = None
        self.split = 0.5
        self.setMinimumSize(320, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.SplitHCursor)
        self.setToolTip("Left of the line: before; right: after. Drag to move the line.")

    def set_images(self, before: np.ndarray | None, after: np.ndarray | None) -> None:
        self.before = None if before is None else qimage_from_array(before).copy()
        self.after = None if after is None else qimage_from_array(after).copy()
        self.update()

    def set_split(self, fraction: float) -> None:
        self.split = min(max(fraction, 0.0), 1.0)
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return VIEW

    def _target(self) -> QRectF:
        iw, ih = self.after.width(), self.after.height()
        fit = min(self.width() / iw, self.height() / ih)
        w, h = iw * fit, ih * fit
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(40, 40, 40))
        if self.after is None or self.before is None:
            return
        target = self._target()
        p.drawImage(target, self.after)
        cut = target.x() + target.width() * self.split
        p.save()
        p.setClipRect(QRectF(target.x(), target.y(), cut - target.x(), target.height()))
        p.drawImage(target, self.before)
        p.restore()
        p.setPen(QPen(QColor(255, 255, 255), 2))
        p.drawLine(QPointF(cut, target.y()), QPointF(cut, target.bottom()))
        p.setPen(QColor(255, 255, 255))
        p.drawText(QRectF(target.x() + 6, target.y() + 4, 120, 18), "Before")
        p.drawText(QRectF(target.right() - 126, target.y() + 4, 120, 18), Qt.AlignmentFlag.AlignRight, "After")

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self._drag(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        self._drag(event)

    def _drag(self, event) -> None:
        if self.after is not None:
            target = self._target()
            self.set_split((event.position().x() - target.x()) / max(target.width(), 1.0))
