"""How the mask shows over the image on the canvas: its colour, opacity and visibility, and which
mask is shown (the document's, or a preview such as a grown or feathered one, not yet applied).

The shown mask is wrapped as an 8-bit indexed QImage without a copy, its colour table giving
each mask value its colour and alpha, so painting changes only bytes and a colour change only
the table; `levels` are its zoomed-out copies for drawing at small zoom.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtGui import QColor, QImage, qRgba

from app.widgets.level_cache import LevelCache


class MaskOverlay:
    """``repaint`` is called whenever the look changes (the canvas's ``update``)."""

    def __init__(self, repaint: Callable[[], None]) -> None:
        self._repaint = repaint
        self._color = QColor(255, 40, 40)
        self._opacity = 0.5
        self._visible = True
        self._document_mask: np.ndarray | None = None
        self._preview: np.ndarray | None = None
        self.image = QImage()
        self.levels: LevelCache | None = None

    @property
    def color(self) -> QColor:
        return QColor(self._color)

    def set_color(self, color: QColor | str) -> None:
        self._color = QColor(color)
        self._apply_color_table()

    @property
    def opacity(self) -> float:
        return self._opacity

    def set_opacity(self, opacity: float) -> None:
        self._opacity = float(min(1.0, max(0.0, opacity)))
        self._apply_color_table()

    @property
    def visible(self) -> bool:
        return self._visible

    def set_visible(self, visible: bool) -> None:
        self._visible = bool(visible)
        self._repaint()

    @property
    def shown(self) -> bool:
        """Whether there is a mask to draw now."""
        return self._visible and not self.image.isNull()

    @property
    def preview_active(self) -> bool:
        return self._preview is not None

    def show_document_mask(self, mask: np.ndarray | None, levels: LevelCache | None = None) -> None:
        """After the document's arrays changed: show its ``mask`` (``levels``: prebuilt for it
        off the GUI thread, else built here); any preview is dropped."""
        self._document_mask, self._preview = mask, None
        self._wrap(levels)

    def set_preview(self, mask: np.ndarray | None) -> None:
        """Show ``mask`` (H×W uint8, the document mask's shape) instead of the document's; None
        shows the document's again."""
        if mask is not None:
            mask = np.ascontiguousarray(mask, dtype=np.uint8)
            if self._document_mask is None or mask.shape != self._document_mask.shape:
                raise ValueError(f"preview mask {mask.shape} does not match the image")
        self._preview = mask
        self._wrap()
        self._repaint()

    def _wrap(self, levels: LevelCache | None = None) -> None:
        src = self._preview if self._preview is not None else self._document_mask
        if src is None or src.size == 0:
            self.image, self.levels = QImage(), None
            return
        h, w = src.shape
        img = QImage(src.data, w, h, src.strides[0], QImage.Format.Format_Indexed8)
        img._keep = src  # type: ignore[attr-defined]
        self.image = img
        self.levels = levels if levels is not None and levels.base is src else LevelCache(src, "mask")
        self._apply_color_table()

    def _apply_color_table(self) -> None:
        if self.image.isNull():
            return
        c, a = self._color, self._opacity
        table = [qRgba(c.red(), c.green(), c.blue(), round(a * i)) for i in range(256)]
        self.image.setColorTable(table)
        if self.levels is not None:
            self.levels.set_color_table(table)
        self._repaint()
