"""Grow / shrink / feather the mask with a live preview on the canvas before it is applied."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout

if TYPE_CHECKING:
    from app.widgets.main_window import MainWindow


class MaskAdjustDialog(QDialog):
    """Grow / shrink / feather; the canvas previews the result until OK (applied) or Cancel."""

    def __init__(self, window: MainWindow, op: str) -> None:
        super().__init__(window)
        self.window_ = window
        self.op = op
        self.setWindowTitle({"grow": "Grow mask", "shrink": "Shrink mask", "feather": "Feather mask"}[op])
        self.amount = QSpinBox()
        self.amount.setRange(1, 64)
        self.amount.setValue(8 if op == "feather" else 4)
        self.amount.setSuffix(" px")
        self.amount.valueChanged.connect(self._preview)
        form = QFormLayout()
        form.addRow("Amount", self.amount)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("The canvas shows the result until you press OK."))
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.finished.connect(self._done)
        self._preview()

    def _preview(self) -> None:
        doc, px = self.window_.document, self.amount.value()
        preview = {"grow": lambda: doc.grown_mask(px), "shrink": lambda: doc.grown_mask(-px), "feather": lambda: doc.feathered_mask(px)}
        self.window_.canvas.mask_overlay.set_preview(preview[self.op]())

    def _done(self, result: int) -> None:
        self.window_.canvas.mask_overlay.set_preview(None)
        if result == QDialog.DialogCode.Accepted:
            self.window_.adjust_mask(self.op, self.amount.value())
