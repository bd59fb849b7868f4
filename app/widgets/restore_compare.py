"""Before/after of a restoration result, split by a draggable line (as upscaler tools show it).

The canvas can compare a candidate only at the document's size; an upscale is larger, so the
restore dialog shows both here at the result's scale (`app.editor.restore_preview` makes the
pair: fitted to the view, or a 1:1 "Detail" crop).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.editor.qimage import qimage_from_array
from app.editor.restore_preview import VIEW


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
        return QSize(*VIEW)

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
