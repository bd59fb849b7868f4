"""The candidates strip: one thumbnail per batch item of the latest generation.

Clicking a thumbnail previews that candidate on the canvas (the document is not touched until
Apply, which is one undo command); holding "Compare" shows the image before the generation, so
the user judges a result against the original at the same zoom and position.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListView, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from app.editor.qimage import display_rgb8
from app.widgets.buttons import push_button

THUMB = 96


def thumbnail_pixmap(pixels: np.ndarray, size: int = THUMB, region=None) -> QPixmap:
    """A small 8-bit pixmap of native pixels (gray/RGB/RGBA, 8 or 16 bit), optionally cropped to a
    region (`Bounds`) so the thumbnail shows what changed, not a speck in a big photo."""
    arr = np.asarray(pixels)
    if region is not None and not region.is_empty:
        arr = arr[region.slices]
    h, w = arr.shape[:2]
    scale = min(1.0, size / max(h, w, 1))
    small = arr if scale >= 1.0 else cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(display_rgb8(small))
    if small.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif small.shape[2] == 3:
        fmt = QImage.Format.Format_RGB888
    else:
        fmt = QImage.Format.Format_RGBA8888
    image = QImage(small.data, small.shape[1], small.shape[0], small.strides[0], fmt)
    return QPixmap.fromImage(image.copy())


def region_around(regions, shape, margin: float = 0.5):
    """The union of the generated regions grown by ``margin`` of its size, clamped: the part of
    the image a thumbnail should show."""
    if not regions:
        return None
    from app.core.geometry import Bounds

    x0 = min(r.x for r in regions)
    y0 = min(r.y for r in regions)
    x1 = max(r.right for r in regions)
    y1 = max(r.bottom for r in regions)
    mx, my = int((x1 - x0) * margin), int((y1 - y0) * margin)
    return Bounds(x0 - mx, y0 - my, x1 - x0 + 2 * mx, y1 - y0 + 2 * my).clamp(shape[1], shape[0])


class CandidatesPanel(QWidget):
    """Thumbnails + Apply / Discard / Compare for the current batch."""

    candidate_selected = Signal(int)  # index, or −1 for none
    apply_requested = Signal(int)
    discard_requested = Signal()
    compare_pressed = Signal()
    compare_released = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(True)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setSpacing(4)
        self.list.setUniformItemSizes(True)
        self.list.setGridSize(QSize(THUMB + 24, THUMB + 30))
        self.list.setMinimumHeight(THUMB + 36)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.currentRowChanged.connect(self.candidate_selected)
        self.list.itemDoubleClicked.connect(lambda item: self.apply_requested.emit(self.list.row(item)))
        self.empty = QLabel("Generate to get candidates here.\nClick one to preview it, then Apply.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: palette(mid);")
        self.apply_button = push_button("Apply", "Apply the selected candidate to the image (undoable; double-click does it too)",
                                        lambda: self.apply_requested.emit(self.list.currentRow()))
        self.discard_button = push_button("Discard", "Close the candidates without changing the image (they stay in History)",
                                          self.discard_requested.emit)
        self.compare_button = push_button("Hold to compare",
                                          "Hold to see the image before this generation (or hold the \\ key on the canvas)")
        self.compare_button.pressed.connect(self.compare_pressed)
        self.compare_button.released.connect(self.compare_released)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compare_button)
        buttons.addStretch(1)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.empty)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.set_candidates([], [])

    def set_candidates(self, images: list[np.ndarray], seeds: list[int | None], regions=None) -> None:
        """Show one thumbnail per candidate (cropped around ``regions``); selects none. A seed of
        None (a classical method has none) is not shown."""
        self.list.blockSignals(True)
        self.list.clear()
        crop = region_around(regions, images[0].shape) if images and regions else None
        for i, (img, seed) in enumerate(zip(images, seeds)):
            item = QListWidgetItem(QIcon(thumbnail_pixmap(img, THUMB, crop)), f"#{i + 1}" + ("" if seed is None else f" · {seed}"))
            item.setToolTip(f"Candidate {i + 1}" + ("" if seed is None else f" — seed {seed}") + "\nClick to preview, double-click to apply")
            self.list.addItem(item)
        self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        has = bool(images)
        self.list.setVisible(has)
        self.empty.setVisible(not has)
        for b in (self.apply_button, self.discard_button, self.compare_button):
            b.setEnabled(has)
        self.compare_button.setVisible(has)  # nothing to compare: no "Hold to compare" left behind
        if not has and self.compare_button.isDown():
            self.compare_button.setDown(False)
            self.compare_released.emit()

    def count(self) -> int:
        return self.list.count()

    def current(self) -> int:
        return self.list.currentRow()

    def select(self, index: int) -> None:
        self.list.setCurrentRow(index)
