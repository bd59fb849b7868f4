"""The Control layers panel: the document's ControlNet units, one row each, and the active one's settings.

The panel only observes `ControlLayers` (``document.controls``) and calls it; every edit it makes
is the model's (undoable pixels and list, plain settings). What it offers per layer:

* paint it with the canvas's brush ("Paint on layer": white; the eraser or Alt paints black),
* make it from the image, or from the selection's box only, with a preprocessor (`app.core.control_preprocess`),
* import a file (fitted to the document), clear it,
* its module, ControlNet model (an editable list — see `ControlPanel.list_models` — or a path
  picked with "…"), weight, start/end, enabled, shown and opacity.

`install(window)` adds it as a dock under the History panel and its toggle to View ▸ Panels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core import maskops
from app.core.control_preprocess import BUILT_IN, MODEL_FILES
from app.core.errors import UserError
from app.core.guides import MAX_CONTROLS
from app.editor.background_task import BackgroundTask

if TYPE_CHECKING:
    from app.widgets.main_window import MainWindow

#: Modules in the order a user meets them: built-in first, then those needing a model.
MODULES = (*BUILT_IN, *MODEL_FILES)
#: From this many pixels, "From image" runs on a pool thread (canny on 24 MP: ~0.15 s, scribble ~2 s).
BACKGROUND_PIXELS = 1_000_000
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)"


class _ModelBox(QComboBox):
    """An editable model field whose list is refreshed each time it opens (files may have appeared)."""

    about_to_show = Signal()

    def showPopup(self) -> None:  # noqa: N802
        self.about_to_show.emit()
        super().showPopup()


class ControlPanel(QWidget):
    """Lists the control layers of one document and edits the active one.

    ``list_models`` returns the ControlNet models to offer (paths or names); it defaults to none,
    so the field is typed or picked with "…" until the window wires a finder in. ``report(level,
    title, text)`` shows a problem (the window's message bar); ``load_image(path)`` reads a file
    as an array (the window's loader, so imports obey the decode budget).
    """

    def __init__(self, document: Any, *, list_models: Callable[[], list[str]] = lambda: [],
                 report: Callable[[str, str, str], None] | None = None,
                 load_image: Callable[[str], Any] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list_models = list_models
        self.report = report or (lambda level, title, text: None)
        self.load_image = load_image or _load_pixels
        self._doc = None
        self._syncing = False
        self.task: BackgroundTask | None = None  # a preprocess running on a pool thread

        layer_buttons = self._build_layer_list()
        form = QFormLayout()
        self._add_module_rows(form)
        self._add_model_row(form)
        self._add_strength_rows(form)
        self._add_overlay_row(form)
        self.settings_box = QWidget()
        self.settings_box.setLayout(form)
        form.setContentsMargins(0, 0, 0, 0)
        outer = QVBoxLayout(self)
        outer.addWidget(self.layers)
        outer.addLayout(layer_buttons)
        outer.addWidget(self.settings_box)
        outer.addStretch(1)

        # Connected only now: a handler reads the document, which set_document provides just below.
        self._connect_layer_list()
        self._connect_settings()
        self.set_document(document)

    # -- building -----------------------------------------------------------------------------
    def _build_layer_list(self) -> QHBoxLayout:
        """The list of layers and the row under it (Add, Remove, Paint on layer): they work on the list itself."""
        self.layers = QListWidget()
        self.layers.setMaximumHeight(110)
        self.layers.setToolTip("Control layers: checked ones guide the next generation (ControlNet)")
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("A new black control layer: paint white strokes on it, or make it from the image")
        self.remove_button = QPushButton("Remove")
        self.paint_check = QCheckBox("Paint on layer")
        self.paint_check.setToolTip("The brush paints white on this layer instead of the mask; the eraser (or Alt) paints black")
        row = QHBoxLayout()
        for w in (self.add_button, self.remove_button, self.paint_check):
            row.addWidget(w)
        return row

    def _add_module_rows(self, form: QFormLayout) -> None:
        """What fills the active layer's pixels: a preprocessor run on the image, a file, or Clear."""
        self.module_box = QComboBox()
        self.module_box.addItems(MODULES)
        self.module_box.setToolTip("The preprocessor that makes this layer from the image (and the unit's module)")
        self.from_image_button = QPushButton("From image")
        self.from_image_button.setToolTip("Make this layer from the image with the chosen preprocessor (one undo step)")
        self.selection_check = QCheckBox("Selection only")
        self.selection_check.setToolTip("Only inside the box around the painted mask (or the context box); the rest of the layer stays")
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Load an image file into this layer (stretched to the picture's size)")
        self.clear_button = QPushButton("Clear")
        make = QHBoxLayout()
        for w in (self.module_box, self.from_image_button):
            make.addWidget(w)
        files = QHBoxLayout()
        for w in (self.selection_check, self.import_button, self.clear_button):
            files.addWidget(w)
        form.addRow("Module", make)
        form.addRow("", files)

    def _add_model_row(self, form: QFormLayout) -> None:
        """The ControlNet: typed, chosen from the list found (refreshed on opening), or picked with "…"."""
        self.model_box = _ModelBox()
        self.model_box.setEditable(True)
        self.model_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model_box.lineEdit().setPlaceholderText("ControlNet model (control_v11p_sd15_…)")
        self.model_box.setToolTip("A ControlNet: a diffusers folder, a .safetensors file, or a name in the models folder")
        self.model_browse = QToolButton()
        self.model_browse.setText("…")
        self.model_browse.setToolTip("Pick a ControlNet .safetensors file")
        row = QHBoxLayout()
        row.addWidget(self.model_box, 1)
        row.addWidget(self.model_browse)
        form.addRow("Model", row)

    def _add_strength_rows(self, form: QFormLayout) -> None:
        """How much and during which steps the layer steers the result (A1111's weight, start and end)."""
        self.weight = _spin(0.0, 2.0, 0.05, "How strongly this layer steers the result (A1111's Control Weight)")
        self.start = _spin(0.0, 1.0, 0.05, "Fraction of the steps where the guidance starts (Guidance Start)")
        self.end = _spin(0.0, 1.0, 0.05, "Fraction of the steps where the guidance ends (Guidance End)")
        steps = QHBoxLayout()
        steps.addWidget(self.start)
        steps.addWidget(self.end)
        form.addRow("Weight", self.weight)
        form.addRow("Start / end", steps)

    def _add_overlay_row(self, form: QFormLayout) -> None:
        """How the layer shows over the canvas: it changes what you see, never what is generated."""
        self.visible_check = QCheckBox("Show")
        self.visible_check.setToolTip("Show this layer over the canvas")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Opacity of this layer over the canvas")
        row = QHBoxLayout()
        row.addWidget(self.visible_check)
        row.addWidget(self.opacity, 1)
        form.addRow("Overlay", row)

    def _connect_layer_list(self) -> None:
        """Choosing, checking, adding and removing layers, and painting on one, go to the model."""
        self.layers.currentRowChanged.connect(self._on_row)
        self.layers.itemChanged.connect(self._on_item_checked)
        self.add_button.clicked.connect(self.add_layer)
        self.remove_button.clicked.connect(self.remove_layer)
        self.paint_check.toggled.connect(self._on_paint_toggled)

    def _connect_settings(self) -> None:
        """Each setting of the active layer goes to the model as the user changes it (sync sets them back)."""
        self.module_box.currentTextChanged.connect(lambda text: self._set(module=text))
        self.from_image_button.clicked.connect(self.make_from_image)
        self.import_button.clicked.connect(self.import_dialog)
        self.clear_button.clicked.connect(lambda: self._active() is not None and self._controls.clear(self._active()))
        self.model_box.about_to_show.connect(self.refresh_models)
        self.model_box.currentTextChanged.connect(lambda text: self._set(model=text.strip()))
        self.model_browse.clicked.connect(self.browse_model)
        self.weight.valueChanged.connect(lambda v: self._set(weight=v))
        self.start.valueChanged.connect(lambda v: self._set_range(start=v))
        self.end.valueChanged.connect(lambda v: self._set_range(end=v))
        self.visible_check.toggled.connect(lambda on: self._set(visible=on))
        self.opacity.valueChanged.connect(lambda v: self._set(opacity=v / 100))

    # -- the model ----------------------------------------------------------------------------
    @property
    def _controls(self):
        return self._doc.controls

    def _active(self):
        return self._controls.active

    def set_document(self, document: Any) -> None:
        if self._doc is not None:
            self._doc.controls.changed.disconnect(self.sync)
            self._doc.reset.disconnect(self.sync)
        self._doc = document
        document.controls.changed.connect(self.sync)
        document.reset.connect(self.sync)
        self.refresh_models()
        self.sync()

    def refresh_models(self) -> None:
        text = self.model_box.currentText()
        self._syncing = True
        try:
            self.model_box.clear()
            self.model_box.addItems([str(m) for m in self.list_models()])
            self.model_box.setEditText(text)
        finally:
            self._syncing = False

    def sync(self) -> None:
        """Show the model's state (after any change to the list, a setting or the document)."""
        controls = self._controls
        self._syncing = True
        try:
            self.layers.clear()
            for number, layer in enumerate(controls.layers, 1):
                item = QListWidgetItem(f"{number}. {layer.module}" + (f" — {_short(layer.model)}" if layer.model else " — no model"))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if layer.enabled else Qt.CheckState.Unchecked)
                self.layers.addItem(item)
            self.layers.setCurrentRow(controls.index(controls.active))
            layer = controls.active
            has_image = not self._doc.is_empty
            self.add_button.setEnabled(has_image and len(controls) < MAX_CONTROLS)
            self.remove_button.setEnabled(layer is not None)
            self.paint_check.setEnabled(layer is not None)
            self.paint_check.setChecked(controls.painting and layer is not None)
            self.settings_box.setEnabled(layer is not None)
            if layer is not None:
                self.module_box.setCurrentText(layer.module)
                if self.model_box.currentText().strip() != layer.model:  # typing: leave the cursor alone
                    self.model_box.setEditText(layer.model)
                self.weight.setValue(layer.weight)
                self.start.setValue(layer.start)
                self.end.setValue(layer.end)
                self.visible_check.setChecked(layer.visible)
                self.opacity.setValue(round(layer.opacity * 100))
        finally:
            self._syncing = False

    def _set(self, **settings: Any) -> None:
        if not self._syncing and self._active() is not None:
            self._controls.update(self._active(), **settings)

    def _set_range(self, **settings: float) -> None:
        """Start and end stay in order: moving one past the other moves the other along."""
        if self._syncing or self._active() is None:
            return
        start, end = settings.get("start", self.start.value()), settings.get("end", self.end.value())
        if start >= end:
            start, end = (start, min(1.0, start + 0.05)) if "start" in settings else (max(0.0, end - 0.05), end)
            if end <= start:
                start = end - 0.05
        self._controls.update(self._active(), start=start, end=end)

    def _on_paint_toggled(self, on: bool) -> None:
        if self._syncing:
            return
        layer = self._active()
        if on and layer is not None and (not layer.visible or layer.opacity < 0.2):
            self._controls.update(layer, visible=True, opacity=max(layer.opacity, 0.5))  # see what you paint
        self._controls.set_painting(on)

    def _on_row(self, row: int) -> None:
        if not self._syncing and 0 <= row < len(self._controls):
            self._controls.set_active(self._controls.layers[row])

    def _on_item_checked(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        row = self.layers.row(item)
        if 0 <= row < len(self._controls):
            self._controls.update(self._controls.layers[row], enabled=item.checkState() == Qt.CheckState.Checked)

    # -- actions ------------------------------------------------------------------------------
    def add_layer(self) -> None:
        if self._doc.is_empty or len(self._controls) >= MAX_CONTROLS:
            return
        self._controls.add()  # no model yet: Generate says so until one is chosen

    def remove_layer(self) -> None:
        if self._active() is not None:
            self._controls.remove(self._active())

    def selection_box(self):
        """The area "Selection only" works on: the context box if one is set, else the painted
        mask's box; None when neither exists."""
        return self._doc.context_box or maskops.bounds(self._doc.mask)

    def make_from_image(self) -> bool:
        """Preprocess the active layer from the image (or the selection's box): at once for small
        images, on a pool thread from `BACKGROUND_PIXELS` (True = started; the layer changes when
        it ends, as one undo step). False, with the reason reported, if it cannot."""
        layer = self._active()
        if layer is None:
            return False
        region = None
        if self.selection_check.isChecked():
            region = self.selection_box()
            if region is None:
                self.report("info", "No selection", "Paint a mask or set a context box first, or turn off \"Selection only\".")
                return False
        module = self.module_box.currentText()
        try:
            job = self._controls.preprocess_job(layer, module, region)
        except UserError as exc:
            self.report("warning", exc.title, exc.message)
            return False
        if job is None:
            return False
        if job.pixels.shape[0] * job.pixels.shape[1] < BACKGROUND_PIXELS:
            return self._controls.finish_preprocess(job, job.run())
        controls = self._controls  # the result belongs to this document, even if the panel moves on
        self.task = BackgroundTask(lambda _progress: job.run(), f"Making the control layer ({module})", self,
                                   title="Control layer", cancellable=False)
        self.task.finished.connect(lambda image: controls.finish_preprocess(job, image))
        self.task.failed.connect(lambda message: self.report("error", "Preprocessing failed", message))
        self.task.ended.connect(self._task_ended)
        self.from_image_button.setEnabled(False)
        self.from_image_button.setText("Working…")
        self.task.start()
        return True

    def _task_ended(self) -> None:
        self.task = None
        self.from_image_button.setEnabled(True)
        self.from_image_button.setText("From image")

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import control image", "", IMAGE_FILTER)
        if path:
            self.import_file(path)

    def import_file(self, path: str) -> bool:
        layer = self._active()
        if layer is None:
            return False
        try:
            pixels = self.load_image(path)
        except UserError as exc:
            self.report("error", exc.title, exc.message)
            return False
        return self._controls.set_image(layer, pixels, "Import control image")

    def browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "ControlNet model", "", "ControlNet (*.safetensors *.bin);;All files (*)")
        if path:
            self.model_box.setEditText(path)


def _spin(lo: float, hi: float, step: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setToolTip(tip)
    return box


def _short(model: str) -> str:
    name = model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name if len(name) <= 40 else name[:37] + "…"


def _load_pixels(path: str):
    from app.core import imageio

    return imageio.load_image(path, read_metadata=False).pixels


def found_controlnets() -> list[str]:
    """The usable ControlNet models found (models folders, an A1111 install, the HF cache), by name."""
    from app.service import controlnet

    return [info.name for info in controlnet.discover_controlnets() if info.usable]


def install(w: MainWindow, list_models: Callable[[], list[str]] = found_controlnets) -> ControlPanel:
    """Add the panel to a window built by `window_layout`: a dock under History, listed in View ▸ Panels."""
    from app.widgets.wheel_guard import guard_wheel
    from app.widgets.window_layout import dock

    w.control_panel = ControlPanel(w.document, list_models=list_models, report=w.show_message)
    w.control_dock = dock(w, "Control layers", w.control_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
    w.splitDockWidget(w.history_dock, w.control_dock, Qt.Orientation.Vertical)
    guard_wheel(w.control_panel)
    panels = next((a.menu() for a in w.view_menu.actions() if a.menu() is not None and a.text() == "&Panels"), None)
    if panels is not None:
        panels.addAction(w.control_dock.toggleViewAction())
    return w.control_panel
