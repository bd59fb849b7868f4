"""Grow / shrink / feather the mask with a live preview on the canvas before it is applied."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from app.editor.document import Document
from app.widgets.mask_overlay import MaskOverlay

MASK_OPS = ("grow", "shrink", "feather")


def open_mask_dialog(parent: QWidget, document: Document, overlay: MaskOverlay, op: str) -> MaskAdjustDialog | None:
    """Open the dialog for ``op`` (one of `MASK_OPS`) without blocking; None while no image is open."""
    if document.is_empty:
        return None
    dialog = MaskAdjustDialog(parent, document, overlay, op)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


class MaskAdjustDialog(QDialog):
    """Grow / shrink / feather; the canvas previews the result until OK (applied) or Cancel."""

    def __init__(self, parent: QWidget, document: Document, overlay: MaskOverlay, op: str) -> None:
        super().__init__(parent)
        self.document, self.overlay, self.op = document, overlay, op
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
        doc, px = self.document, self.amount.value()
        preview = {"grow": lambda: doc.grown_mask(px), "shrink": lambda: doc.grown_mask(-px), "feather": lambda: doc.feathered_mask(px)}
        self.overlay.set_preview(preview[self.op]())

    def _done(self, result: int) -> None:
        self.overlay.set_preview(None)
        if result == QDialog.DialogCode.Accepted:
            doc = self.document
            {"grow": doc.grow_mask, "shrink": doc.shrink_mask, "feather": doc.feather_mask}[self.op](self.amount.value())
