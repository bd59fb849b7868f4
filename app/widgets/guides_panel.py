"""The params panel's "Soft inpainting" and "Reference image" group.

Soft inpainting is a checkbox with A1111's six parameters folded under it (same labels, ranges
and steps as A1111's sliders); the reference is an image chosen with "Reference image…", its
weight, and the IP-Adapter file it runs through. The image itself is not a parameter: it travels
in the `GenerationRequest` (`reference_image`), so the panel keeps it beside the fields.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.guides import Reference, SoftInpainting

#: field → (A1111's label, minimum, maximum, step), from A1111's ``scripts/soft_inpainting.py``.
SOFT_SLIDERS = {
    "schedule_bias": ("Schedule bias", 0.0, 8.0, 0.1),
    "preservation_strength": ("Preservation strength", 0.0, 8.0, 0.05),
    "transition_contrast_boost": ("Transition contrast boost", 1.0, 32.0, 0.5),
    "mask_influence": ("Mask influence", 0.0, 1.0, 0.05),
    "difference_threshold": ("Difference threshold", 0.0, 8.0, 0.25),
    "difference_contrast": ("Difference contrast", 0.0, 8.0, 0.25),
}
DEFAULT_ADAPTER = "ip-adapter_sd15"
THUMB = 48


class GuidesPanel(QGroupBox):
    """Edits ``soft_inpainting`` and ``reference``; ``changed`` fires on every edit."""

    changed = Signal()
    #: "From canvas" was clicked: the window answers with `set_reference_image` (the context box, or the image).
    canvas_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Soft inpainting and reference", parent)
        self.reference_image: np.ndarray | None = None  # RGB8, any size
        self._build_soft()
        self._build_reference()
        self._lay_out()
        self._show_reference()

    def _build_soft(self) -> None:
        """The checkbox and A1111's six parameters, folded under an arrow."""
        self.soft = QCheckBox("Soft inpainting")
        self.soft.setToolTip("The mask's grey levels decide how much each pixel changes (A1111's soft inpainting); "
                             "paint with a soft brush or raise Mask blur")
        self.soft_more = QToolButton()
        self.soft_more.setArrowType(Qt.ArrowType.RightArrow)
        self.soft_more.setCheckable(True)
        self.soft_more.setToolTip("Soft inpainting parameters")
        self.soft_more.setAutoRaise(True)
        self.soft_group = QWidget()
        form = QFormLayout(self.soft_group)
        form.setContentsMargins(16, 0, 0, 0)
        self.soft_boxes: dict[str, QDoubleSpinBox] = {}
        defaults = SoftInpainting()
        for name, (label, lo, hi, step) in SOFT_SLIDERS.items():
            box = QDoubleSpinBox()
            box.setRange(lo, hi)
            box.setSingleStep(step)
            box.setDecimals(2)
            box.setValue(getattr(defaults, name))
            box.valueChanged.connect(self._emit)
            self.soft_boxes[name] = box
            form.addRow(label, box)
        self.soft_group.setVisible(False)
        self.soft_more.toggled.connect(self._fold)
        self.soft.toggled.connect(self._emit)

    def _build_reference(self) -> None:
        """The reference image's buttons, thumbnail, weight and adapter file."""
        self.pick_reference = QPushButton("Reference image…")
        self.pick_reference.setToolTip("An image whose style and content guide the result (IP-Adapter)")
        self.pick_reference.clicked.connect(self._choose)
        self.from_canvas = QToolButton()
        self.from_canvas.setText("From canvas")
        self.from_canvas.setToolTip("Use the open image as the reference (inside the context box when one is set)")
        self.from_canvas.clicked.connect(self.canvas_requested)
        self.clear_reference = QToolButton()
        self.clear_reference.setText("✕")
        self.clear_reference.setToolTip("No reference image")
        self.clear_reference.clicked.connect(lambda: self.set_reference_image(None))
        self.thumbnail = QLabel()
        self.thumbnail.setFixedSize(THUMB, THUMB)
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.weight = QDoubleSpinBox()
        self.weight.setRange(0.0, 2.0)
        self.weight.setSingleStep(0.05)
        self.weight.setValue(Reference().weight)
        self.weight.setToolTip("How strongly the reference steers the result (0 = not at all)")
        self.weight.valueChanged.connect(self._emit)
        self.adapter = QLineEdit(DEFAULT_ADAPTER)
        self.adapter.setToolTip("The IP-Adapter weights: a file in the models folder's ipadapter/ or ControlNet/ "
                                "(A1111's too), or a path; the image encoder comes from clip_vision/")
        self.adapter.textChanged.connect(self._emit)

    def _lay_out(self) -> None:
        layout = QVBoxLayout(self)
        soft_row = QHBoxLayout()
        soft_row.addWidget(self.soft, 1)
        soft_row.addWidget(self.soft_more)
        layout.addLayout(soft_row)
        layout.addWidget(self.soft_group)
        ref_row = QHBoxLayout()
        ref_row.addWidget(self.pick_reference, 1)
        ref_row.addWidget(self.from_canvas)
        ref_row.addWidget(self.thumbnail)
        ref_row.addWidget(self.clear_reference)
        layout.addLayout(ref_row)
        ref_form = QFormLayout()
        ref_form.addRow("Weight", self.weight)
        ref_form.addRow("IP-Adapter", self.adapter)
        layout.addLayout(ref_form)

    # -- values -----------------------------------------------------------------------------
    def fields(self) -> dict:
        """``soft_inpainting`` and ``reference`` for `GenerationParams`."""
        soft = None
        if self.soft.isChecked():
            soft = SoftInpainting(**{name: round(box.value(), 2) for name, box in self.soft_boxes.items()})
        reference = None
        if self.reference_image is not None:
            reference = Reference(self.adapter.text().strip() or DEFAULT_ADAPTER, round(self.weight.value(), 2))
        return {"soft_inpainting": soft, "reference": reference}

    def set_params(self, params) -> None:
        """Show ``params``' soft inpainting and reference settings (the image stays as chosen:
        a recalled file does not carry it)."""
        self.blockSignals(True)
        try:
            self.soft.setChecked(params.soft_inpainting is not None)
            soft = params.soft_inpainting or SoftInpainting()
            for name, box in self.soft_boxes.items():
                box.setValue(getattr(soft, name))
            if params.reference is not None:
                self.weight.setValue(params.reference.weight)
                self.adapter.setText(params.reference.model)
        finally:
            self.blockSignals(False)

    def set_reference_image(self, rgb: np.ndarray | None) -> None:
        self.reference_image = None if rgb is None else np.ascontiguousarray(rgb[:, :, :3], np.uint8)
        self._show_reference()
        self._emit()

    # -- reactions ----------------------------------------------------------------------------
    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference image", "",
                                              "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp)")
        if not path:
            return
        from app.core.compositing import to_rgb8
        from app.core.imageio import ImageLoadError, load_image

        try:
            self.set_reference_image(to_rgb8(load_image(path, read_metadata=False).pixels))
        except ImageLoadError as exc:
            self.pick_reference.setToolTip(f"Could not open {path}: {exc}")

    def _show_reference(self) -> None:
        has = self.reference_image is not None
        for w in (self.weight, self.adapter, self.clear_reference):
            w.setEnabled(has)
        if not has:
            self.thumbnail.clear()
            self.thumbnail.setText("—")
            return
        rgb = self.reference_image
        image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888).copy()
        self.thumbnail.setPixmap(QPixmap.fromImage(image).scaled(
            THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))

    def _fold(self, open_: bool) -> None:
        self.soft_group.setVisible(open_)
        self.soft_more.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)

    def _emit(self, *_args) -> None:
        if not self.signalsBlocked():
            self.changed.emit()
