"""Expand canvas (outpaint): pixels per side or an aspect ratio, the pre-fill, and a preview of
the new frame with the image at its new place. OK applies one undoable `Document.expand_canvas`."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core import outpaint
from app.core.outpaint import ASPECT_PRESETS, FILL_MODES, ExpandError, Expansion

PREVIEW_SIDE = 260
#: anchor label → where the old image stays when growing to an aspect ratio (x, y in 0..1)
ANCHORS = {"Centre": (0.5, 0.5), "Left / top": (0.0, 0.0), "Right / bottom": (1.0, 1.0)}
_SIDES = ("left", "top", "right", "bottom")
_BY_PIXELS, _CUSTOM = "Pixels per side", "Custom…"


class ExpandCanvasDialog(QDialog):
    """Read ``expansion()``, ``fill()`` and ``colour()`` after ``exec()`` returns Accepted."""

    def __init__(self, width: int, height: int, thumbnail: QImage | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Expand Canvas")
        self._size = (width, height)
        self._thumb = thumbnail
        self._colour = QColor(128, 128, 128)
        self.sides = {}
        form = QFormLayout()
        self.aspect = QComboBox()
        self.aspect.addItems([_BY_PIXELS, *ASPECT_PRESETS, _CUSTOM])
        form.addRow("Grow", self.aspect)
        self.custom = QLineEdit("21:9")
        self.custom.setToolTip("Any ratio as W:H")
        form.addRow("Custom ratio", self.custom)
        self.anchor = QComboBox()
        self.anchor.addItems(list(ANCHORS))
        form.addRow("Image stays", self.anchor)
        for side in _SIDES:
            box = QSpinBox()
            box.setRange(0, 8192)
            box.setSuffix(" px")
            box.setValue(256 if side == "right" else 0)
            self.sides[side] = box
            form.addRow(side.capitalize(), box)
            box.valueChanged.connect(self._refresh)
        self.fill_box = QComboBox()
        for key, label in FILL_MODES.items():
            self.fill_box.addItem(label, key)
        form.addRow("Pre-fill", self.fill_box)
        self.colour_button = QPushButton("Colour…")
        self.colour_button.clicked.connect(self._pick_colour)
        form.addRow("Solid colour", self.colour_button)
        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.size_label = QLabel()
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #d33")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addLayout(form)
        side = QVBoxLayout()
        side.addWidget(self.preview)
        side.addWidget(self.size_label)
        side.addWidget(self.error_label)
        side.addStretch(1)
        row.addLayout(side)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("The new area becomes mask, pre-filled; Generate paints it. One undo step."))
        layout.addLayout(row)
        layout.addWidget(self.buttons)
        for signal in (self.aspect.currentIndexChanged, self.anchor.currentIndexChanged, self.fill_box.currentIndexChanged):
            signal.connect(self._refresh)
        self.custom.textChanged.connect(self._refresh)
        self._refresh()

    # -- values ---------------------------------------------------------------------------------
    def expansion(self) -> Expansion:
        """The growth asked for; `ExpandError` (one line) if it is not valid."""
        choice = self.aspect.currentText()
        if choice == _BY_PIXELS:
            exp = Expansion(*(self.sides[s].value() for s in _SIDES))
        else:
            ratio = outpaint.parse_aspect(self.custom.text()) if choice == _CUSTOM else ASPECT_PRESETS[choice]
            exp = outpaint.expansion_for_aspect(*self._size, ratio, ANCHORS[self.anchor.currentText()])
        outpaint.check_expansion(*self._size, exp)
        return exp

    def fill(self) -> str:
        return self.fill_box.currentData()

    def colour(self) -> tuple[int, int, int]:
        return self._colour.red(), self._colour.green(), self._colour.blue()

    def _pick_colour(self) -> None:
        colour = QColorDialog.getColor(self._colour, self, "Pre-fill colour")
        if colour.isValid():
            self._colour = colour
            self._refresh()

    # -- preview --------------------------------------------------------------------------------
    def _refresh(self) -> None:
        by_pixels = self.aspect.currentText() == _BY_PIXELS
        for box in self.sides.values():
            box.setEnabled(by_pixels)
        self.custom.setEnabled(self.aspect.currentText() == _CUSTOM)
        self.anchor.setEnabled(not by_pixels)
        self.colour_button.setEnabled(self.fill() == "solid")
        try:
            exp = self.expansion()
        except ExpandError as exc:
            self.error_label.setText(str(exc))
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
            return
        if not by_pixels:  # the greyed fields show what the ratio adds, never stale amounts
            for side, box in self.sides.items():
                box.blockSignals(True)
                box.setValue(getattr(exp, side))
                box.blockSignals(False)
        self.error_label.setText("" if not exp.is_empty else "Nothing to add yet.")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not exp.is_empty)
        nw, nh = exp.new_size(*self._size)
        self.size_label.setText(f"{self._size[0]}×{self._size[1]} → {nw}×{nh}")
        self.preview.setPixmap(self._frame(exp, nw, nh))

    def _frame(self, exp: Expansion, nw: int, nh: int) -> QPixmap:
        scale = (PREVIEW_SIDE - 4) / max(nw, nh)
        pm = QPixmap(max(1, round(nw * scale)) + 2, max(1, round(nh * scale)) + 2)
        pm.fill(QColor(60, 60, 60))
        p = QPainter(pm)
        new_area = QColor(self._colour) if self.fill() == "solid" else QColor(255, 60, 60, 110)
        p.fillRect(QRectF(1, 1, nw * scale, nh * scale), new_area)
        old = QRectF(1 + exp.left * scale, 1 + exp.top * scale, self._size[0] * scale, self._size[1] * scale)
        if self._thumb is not None and not self._thumb.isNull():
            p.drawImage(old, self._thumb)
        else:
            p.fillRect(old, QColor(180, 180, 180))
        p.setPen(QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine))
        p.drawRect(old)
        p.end()
        return pm
