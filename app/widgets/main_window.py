"""The main window: canvas in the centre, docks around it, menus, toolbar and status bar.

The window owns the `Document` and wires widgets to it; it never edits arrays itself. A
generation is a `Job` built from copies of the document's arrays and sent to the
`GenerationWorker` thread; the result comes back as candidates and changes the document only when
the user applies one (one undo command). Nothing here imports torch: the worker imports it on its
own thread, the first time a diffusion model is used.

Hooks for other features (project files, autosave): ``file_menu`` + `add_file_actions`,
``document``, `current_params` / `set_params`, `open_path`, `show_message`, and the signals
``document_opened``, ``generation_finished`` and ``result_applied``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QMimeData, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QColor, QGuiApplication, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import (
    QColorDialog,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core import imageio
from app.editor.document import Document
from app.core.records import GenerationRecord
from app.inference.engine import Job
from app.core.params import CLASSICAL_MODELS, GenerationParams, ParamError
from app.storage.project import is_project_file
from app.storage.paths import resources_dir
from app.editor.settings import Settings
from app.widgets import tools
from app.widgets.candidates import CandidatesPanel
from app.widgets.canvas import CanvasView
from app.widgets.history_panel import HistoryPanel
from app.widgets.messages import MessageBar
from app.widgets.model_picker import ModelPicker
from app.widgets.params_panel import ParamsPanel
from app.editor.worker import GenerationWorker, WorkRequest

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp);;All files (*)"
OPEN_FILTER = "Images and projects (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp *.inpaint);;" + IMAGE_FILTER
SAVE_FILTER = "PNG with parameters (*.png);;TIFF (*.tif *.tiff);;JPEG (*.jpg *.jpeg);;WebP (*.webp)"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
COMPARE_KEY = Qt.Key.Key_Backslash


def icon(name: str) -> QIcon:
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage (clipboard, drop) → H×W×3 RGB or H×W×4 RGBA uint8 (alpha only if it has one)."""
    has_alpha = image.hasAlphaChannel()
    img = image.convertToFormat(QImage.Format.Format_RGBA8888 if has_alpha else QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    channels = 4 if has_alpha else 3
    buf = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * channels].reshape(h, w, channels).copy()


class MaskAdjustDialog(QDialog):
    """Grow / shrink / feather with a live preview of the result on the canvas before applying."""

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
        self.window_.canvas.set_mask_preview(preview[self.op]())

    def _done(self, result: int) -> None:
        self.window_.canvas.set_mask_preview(None)
        if result == QDialog.DialogCode.Accepted:
            self.window_.adjust_mask(self.op, self.amount.value())


class MainWindow(QMainWindow):
    """The editor window. See the module docstring for the hooks other features use."""

    document_opened = Signal(str)  # path, or "" for pasted data
    generation_finished = Signal(object)  # GenerationRecord (already in document.generations)
    result_applied = Signal(object)  # GenerationRecord whose `applied` candidate is now in the image
    generation_failed = Signal(str, str)  # title, message (also shown in the message bar)
    generation_cancelled = Signal()

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        worker: GenerationWorker | None = None,
        discover: Callable[[], list] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.setWindowTitle("Inpaint Studio")
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)

        self.document = Document(self)
        self.canvas = CanvasView(self.document)
        self.message_bar = MessageBar()
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.message_bar)
        cl.addWidget(self.canvas, 1)
        self.setCentralWidget(central)

        # Side docks run the full height; the candidates strip sits under the canvas only.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.params_panel = ParamsPanel()
        self.model_picker = ModelPicker(discover=discover)
        self.history_panel = HistoryPanel()
        self.candidates_panel = CandidatesPanel()
        self.params_dock = self._dock("Parameters", self.params_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.model_dock = self._dock("Model", self.model_picker, Qt.DockWidgetArea.RightDockWidgetArea)
        self.splitDockWidget(self.model_dock, self.params_dock, Qt.Orientation.Vertical)
        self.history_dock = self._dock("History", self.history_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.candidates_dock = self._dock("Candidates", self.candidates_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resizeDocks([self.model_dock, self.params_dock], [290, 600], Qt.Orientation.Vertical)
        self.resizeDocks([self.params_dock, self.history_dock], [360, 270], Qt.Orientation.Horizontal)
        self.resizeDocks([self.candidates_dock], [170], Qt.Orientation.Vertical)

        self.worker = worker or GenerationWorker()
        self.worker.start()
        self.worker.progress.connect(self._on_progress)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.out_of_memory.connect(self._on_out_of_memory)
        self.worker.status.connect(self._on_worker_status)

        # state of the current / last generation
        self._generating = False
        self._run_params: GenerationParams | None = None
        self._run_started = 0.0
        self._run_token = 0
        self._doc_token = 0
        self._oom = False
        self._candidates_record: GenerationRecord | None = None
        self._compare = False
        self._save_path: str | None = None
        self._close_confirmed = False
        self._shown_once = False
        self._display_name: str | None = None
        self._preload_timer = QTimer(self)
        self._preload_timer.setSingleShot(True)
        self._preload_timer.setInterval(400)
        self._preload_timer.timeout.connect(self._preload_model)

        self._build_actions()
        self._build_menus()
        self._build_toolbars()
        self._build_status_bar()
        self._connect()
        self._restore_settings()
        self._update_actions()
        self._update_title()

    # ======================================================================================
    # construction
    # ======================================================================================
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot: Callable | None = None, shortcut=None, tip: str = "", icon_name: str = "",
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.setCheckable(checkable)
        if slot is not None:
            action.triggered.connect(lambda *_a, s=slot: s())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        SK = QKeySequence.StandardKey
        self.open_action = self._action("&Open…", self.open_dialog, SK.Open, "Open an image", "open")
        self.save_action = self._action("&Save", self.save, SK.Save, "Save the result (PNG keeps the parameters)", "save")
        self.save_as_action = self._action("Save Result &As…", self.save_as_dialog, SK.SaveAs, "Save the result under a new name")
        self.export_mask_action = self._action("&Export Mask…", self.export_mask_dialog, tip="Save the mask as a black and white PNG")
        self.import_mask_action = self._action("&Import Mask…", self.import_mask_dialog, tip="Load a mask image (white = repaint)")
        self.copy_action = self._action("&Copy Image", self.copy_image, SK.Copy, "Copy the current image to the clipboard")
        self.paste_action = self._action("&Paste", self.paste, SK.Paste, "Open the image (or image file) on the clipboard")
        self.quit_action = self._action("&Quit", self.close, SK.Quit)

        self.undo_action = self.document.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence(SK.Undo))
        self.undo_action.setIcon(icon("undo"))
        self.redo_action = self.document.undo_stack.createRedoAction(self, "&Redo")
        redo_keys = QKeySequence.keyBindings(SK.Redo)
        if QKeySequence("Ctrl+Y") not in redo_keys:
            redo_keys.append(QKeySequence("Ctrl+Y"))
        self.redo_action.setShortcuts(redo_keys)
        self.redo_action.setIcon(icon("redo"))
        self.invert_action = self._action("&Invert Mask", self.document_op("invert_mask"), "Ctrl+Shift+I", "Swap masked and unmasked areas", "invert")
        self.clear_action = self._action("&Clear Mask", self.document_op("clear_mask"), "Ctrl+D", "Remove the whole mask", "clear")
        self.fill_action = self._action("&Fill Mask", self.document_op("fill_mask"), tip="Mask the whole image")
        self.grow_action = self._action("&Grow Mask…", lambda: self.open_mask_dialog("grow"), tip="Grow the mask with a live preview")
        self.shrink_action = self._action("S&hrink Mask…", lambda: self.open_mask_dialog("shrink"), tip="Shrink the mask with a live preview")
        self.feather_action = self._action("F&eather Mask…", lambda: self.open_mask_dialog("feather"), tip="Soften the mask edge with a live preview")

        self.zoom_in_action = self._action("Zoom &In", self.canvas.zoom_in, [SK.ZoomIn, "Ctrl+="])
        self.zoom_out_action = self._action("Zoom &Out", self.canvas.zoom_out, SK.ZoomOut)
        self.zoom_fit_action = self._action("&Fit to Window", self.canvas.zoom_fit, "Ctrl+0", "Fit the image in the window", "fit")
        self.zoom_actual_action = self._action("&Actual Size (100 %)", self.canvas.zoom_actual, "Ctrl+1")
        self.show_mask_action = self._action("Show &Mask", None, "Ctrl+H", "Show or hide the mask overlay", checkable=True)
        self.show_mask_action.setChecked(True)
        self.show_mask_action.toggled.connect(self.canvas.set_mask_visible)
        self.mask_color_action = self._action("Mask &Colour…", self.choose_mask_color)

        self.generate_action = self._action("&Generate", self.generate, ["Ctrl+Return", "Ctrl+Enter"], "Generate (Ctrl+Enter)", "generate")
        self.cancel_action = self._action("&Cancel", self.cancel_generation, "Esc", "Cancel the running generation (Esc)", "cancel")
        self.apply_action = self._action("&Apply Candidate", self.apply_current_candidate, tip="Apply the selected candidate")
        self.discard_action = self._action("&Discard Candidates", self.discard_candidates)
        self.allow_pickle_action = self._action("Allow Pickle Checkpoints (.ckpt)", None, checkable=True,
                                                tip="Loading a pickle file can run code hidden in it: only for files you trust")
        self.safety_action = self._action("NSFW &Safety Checker", None, checkable=True,
                                          tip="Filter results with the Stable Diffusion safety checker (needs its weights installed)")
        self.about_action = self._action("&About Inpaint Studio", self.show_about)

        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        keys = {v: k for k, v in tools.TOOL_KEYS.items()}
        for name in tools.TOOLS:
            a = QAction(icon(name), tools.TOOL_LABELS[name], self)
            a.setCheckable(True)
            a.setToolTip(f"{tools.TOOL_LABELS[name]} ({keys.get(name, '')})" + (" — Alt erases" if name != tools.CONTEXT else " — what the model sees"))
            a.triggered.connect(lambda _c=False, n=name: self.canvas.set_tool(n))
            self.tool_group.addAction(a)
            self.tool_actions[name] = a
        self.tool_actions[self.canvas.tool].setChecked(True)

    def document_op(self, name: str) -> Callable[[], None]:
        def run() -> None:
            if not self.document.is_empty:
                getattr(self.document, name)()
        return run

    def _build_menus(self) -> None:
        mb = self.menuBar()
        self.file_menu = mb.addMenu("&File")
        self.file_menu.addAction(self.open_action)
        self.recent_menu = self.file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.save_action)
        self.file_menu.addAction(self.save_as_action)
        #: Where `add_file_actions` puts other features' actions (project files, …).
        self._file_anchor = self.file_menu.addSeparator()
        self.file_menu.addAction(self.import_mask_action)
        self.file_menu.addAction(self.export_mask_action)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.copy_action)
        self.file_menu.addAction(self.paste_action)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.quit_action)

        self.edit_menu = mb.addMenu("&Edit")
        for a in (self.undo_action, self.redo_action):
            self.edit_menu.addAction(a)
        self.edit_menu.addSeparator()
        for a in (self.invert_action, self.clear_action, self.fill_action, self.grow_action, self.shrink_action, self.feather_action):
            self.edit_menu.addAction(a)

        self.view_menu = mb.addMenu("&View")
        for a in (self.zoom_in_action, self.zoom_out_action, self.zoom_fit_action, self.zoom_actual_action):
            self.view_menu.addAction(a)
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.show_mask_action)
        self.view_menu.addAction(self.mask_color_action)
        opacity_menu = self.view_menu.addMenu("Mask &Opacity")
        self.opacity_group = QActionGroup(self)
        self.opacity_actions: dict[int, QAction] = {}
        for pct in (25, 40, 50, 65, 80, 100):
            a = opacity_menu.addAction(f"{pct} %")
            a.setCheckable(True)
            a.triggered.connect(lambda _c=False, p=pct: self.set_mask_opacity(p / 100))
            self.opacity_group.addAction(a)
            self.opacity_actions[pct] = a
        self.view_menu.addSeparator()
        panels = self.view_menu.addMenu("&Panels")
        for dock in (self.model_dock, self.params_dock, self.candidates_dock, self.history_dock):
            panels.addAction(dock.toggleViewAction())

        self.tools_menu = mb.addMenu("&Tools")
        for a in self.tool_group.actions():
            self.tools_menu.addAction(a)

        self.generate_menu = mb.addMenu("&Generate")
        for a in (self.generate_action, self.cancel_action):
            self.generate_menu.addAction(a)
        self.generate_menu.addSeparator()
        self.generate_menu.addAction(self.apply_action)
        self.generate_menu.addAction(self.discard_action)
        self.generate_menu.addSeparator()
        self.generate_menu.addAction(self.allow_pickle_action)
        self.generate_menu.addAction(self.safety_action)

        self.help_menu = mb.addMenu("&Help")
        self.help_menu.addAction(self.about_action)

    def _build_toolbars(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("toolbar-main")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        for a in (self.open_action, self.save_action):
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.undo_action)
        tb.addAction(self.redo_action)
        tb.addSeparator()
        for a in self.tool_group.actions():
            tb.addAction(a)
        tb.addSeparator()
        tb.addWidget(QLabel(" Size "))
        self.brush_size = QSpinBox()
        self.brush_size.setRange(tools.MIN_BRUSH, tools.MAX_BRUSH)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("Brush diameter in image pixels ([ and ] change it)")
        self.brush_size.setValue(self.canvas.brush_size)
        self.brush_size.valueChanged.connect(self.canvas.set_brush_size)
        tb.addWidget(self.brush_size)
        tb.addWidget(QLabel("  Hardness "))
        self.hardness = QSlider(Qt.Orientation.Horizontal)
        self.hardness.setRange(0, 100)
        self.hardness.setFixedWidth(90)
        self.hardness.setValue(round(self.canvas.hardness * 100))
        self.hardness.setToolTip("Brush edge: 100 = hard, lower = soft")
        self.hardness.valueChanged.connect(lambda v: self.canvas.set_hardness(v / 100))
        tb.addWidget(self.hardness)
        tb.addSeparator()
        tb.addAction(self.invert_action)
        tb.addAction(self.clear_action)
        tb.addAction(self.zoom_fit_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        gen = QToolButton()
        gen.setDefaultAction(self.generate_action)
        gen.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addWidget(gen)
        cancel = QToolButton()
        cancel.setDefaultAction(self.cancel_action)
        cancel.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addWidget(cancel)
        self.addToolBar(tb)
        self.main_toolbar = tb

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.status_message = QLabel("Open an image (Ctrl+O), drop one here or paste it (Ctrl+V).")
        sb.addWidget(self.status_message, 1)
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.seed_label = QLabel()
        self.seed_label.setToolTip("Seed actually used by the last generation")
        self.size_label = QLabel()
        self.cursor_label = QLabel()
        self.cursor_label.setMinimumWidth(90)
        self.zoom_label = QLabel()
        self.zoom_label.setMinimumWidth(56)
        for w in (self.progress, self.seed_label, self.size_label, self.cursor_label, self.zoom_label):
            sb.addPermanentWidget(w)

    def _connect(self) -> None:
        d = self.document
        d.reset.connect(self._on_document_reset)
        d.generations_changed.connect(lambda: self.history_panel.set_records(self.document.generations))
        d.modified_changed.connect(self._update_title)
        d.mask_changed.connect(lambda _r: self._update_actions())
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.canvas.cursor_moved.connect(self._on_cursor)
        self.canvas.tool_changed.connect(lambda name: self.tool_actions[name].setChecked(True))
        self.canvas.brush_changed.connect(self._on_brush_changed)
        self.params_panel.generate_requested.connect(self.generate)
        self.params_panel.changed.connect(self._update_actions)
        self.model_picker.model_changed.connect(self._on_model_changed)
        self.model_picker.model_added.connect(self.settings.add_user_model)
        self.model_picker.device_changed.connect(self._on_device_changed)
        self.model_picker.low_memory_changed.connect(lambda: self.settings.set_low_memory(self.model_picker.low_memory))
        self.allow_pickle_action.toggled.connect(self.settings.set_allow_pickle)
        self.safety_action.toggled.connect(self.settings.set_safety_checker)
        self.candidates_panel.candidate_selected.connect(self.preview_candidate)
        self.candidates_panel.apply_requested.connect(self.apply_candidate)
        self.candidates_panel.discard_requested.connect(self.discard_candidates)
        self.candidates_panel.compare_pressed.connect(lambda: self.set_compare(True))
        self.candidates_panel.compare_released.connect(lambda: self.set_compare(False))
        self.history_panel.recall_requested.connect(self.recall_record)
        self.history_panel.rerun_requested.connect(lambda r: self.generate(r.params))
        self.history_panel.rerun_new_seed_requested.connect(lambda r: self.generate(r.params.replace(seed=-1)))
        self.history_panel.show_requested.connect(self.show_record_candidates)

    def _restore_settings(self) -> None:
        s = self.settings
        self.model_picker.set_user_models(s.user_models())
        self.model_picker.set_device_choice(s.device())
        self.model_picker.set_low_memory(s.low_memory())
        self.allow_pickle_action.setChecked(s.allow_pickle())
        self.safety_action.setChecked(s.safety_checker())
        self.set_params(s.last_params())
        self.canvas.set_mask_color(s.mask_color())
        self.set_mask_opacity(s.mask_opacity())
        geometry, state = s.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1440, 900)
        if state is not None:
            self.restoreState(state)

    def save_settings(self) -> None:
        """Persist preferences, the last parameters and the window layout."""
        self.settings.set_last_params(self.current_params())
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()

    # ======================================================================================
    # hooks for other features
    # ======================================================================================
    def add_file_actions(self, actions: Sequence[QAction]) -> None:
        """Insert actions (e.g. Open Project…, Save Project) into the File menu, after Save."""
        for a in actions:
            self.file_menu.insertAction(self._file_anchor, a)
            if a.parent() is None:
                a.setParent(self)
        self.file_menu.insertSeparator(self._file_anchor)

    def current_params(self) -> GenerationParams:
        """The parameters in the panel with the model chosen in the picker (not validated)."""
        return self.params_panel.params().replace(model=self.model_picker.current_model())

    def set_params(self, params: GenerationParams) -> None:
        """Show ``params`` in the panel and select its model in the picker."""
        self.params_panel.set_params(params)
        self.model_picker.set_current_model(params.model)
        self.params_panel.set_model(self.model_picker.current_model(), self.model_picker.is_classical())

    def show_message(self, level: str, title: str, text: str, actions: list[tuple[str, Callable[[], None]]] | None = None) -> None:
        """Show a message in the bar above the canvas (level: info, warning, error)."""
        self.message_bar.show_message(level, title, text, actions)

    # ======================================================================================
    # opening and saving
    # ======================================================================================
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self.settings.last_dir(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> bool:
        """Open an image or a project file; on failure the message bar says why and the document
        is unchanged."""
        path = str(path)
        if is_project_file(path):
            from app.widgets.recovery_dialog import open_project

            if self._generating:
                self.cancel_generation()
            if not open_project(self, path):
                return False
            self._save_path = None
            self._display_name = Path(path).name
            self._update_title()
            self._update_actions()
        else:
            try:
                loaded = imageio.load_image(path)
            except imageio.ImageLoadError as exc:
                self.show_message("error", "Cannot open the image", str(exc))
                return False
            self._set_loaded(loaded, path)
        recent = self.settings.add_recent_file(path)
        self.settings.set_last_dir(str(Path(path).resolve().parent))
        self._fill_recent_menu(recent)
        return True

    def open_image_array(self, pixels: np.ndarray, name: str = "Pasted image") -> bool:
        """Open pixels that have no file (clipboard, dropped image data)."""
        self._set_loaded(imageio.LoadedImage(np.ascontiguousarray(pixels)), None, name)
        return True

    def _set_loaded(self, loaded: imageio.LoadedImage, path: str | None, name: str | None = None) -> None:
        if self._generating:
            self.cancel_generation()
        self.message_bar.dismiss()
        self.discard_candidates()
        self.document.set_image(loaded, path)
        self._save_path = None
        self._display_name = name or (Path(path).name if path else "Untitled")
        info = loaded.info.get("converted") if isinstance(getattr(loaded, "info", None), dict) else None
        self.status_message.setText(f"Opened {self._display_name}" + (f" ({info})" if info else "") + " — paint the area to repaint.")
        self._update_title()
        self._update_actions()
        if loaded.params is not None:
            self.offer_recall(loaded.params)
        self.document_opened.emit(path or "")

    def offer_recall(self, params: GenerationParams) -> None:
        """An opened image carries generation parameters: offer them without blocking."""
        summary = params.prompt[:80] + ("…" if len(params.prompt) > 80 else "")
        self.show_message(
            "info",
            "This image carries generation parameters",
            f"“{summary or 'no prompt'}”, {params.scheduler}, {params.steps} steps, seed {params.seed}.",
            [("Recall parameters", lambda p=params: self.recall_params(p))],
        )

    def recall_params(self, params: GenerationParams) -> None:
        self.set_params(params)
        self.status_message.setText(f"Parameters recalled (seed {params.seed}).")

    def _fill_recent_menu(self, files: list[str] | None = None) -> None:
        files = self.settings.recent_files() if files is None else files
        self.recent_menu.clear()
        for i, f in enumerate(files):
            a = self.recent_menu.addAction(f"&{i + 1}  {Path(f).name}")
            a.setToolTip(f)
            a.setStatusTip(f)
            a.triggered.connect(lambda _c=False, p=f: self.open_path(p))
        self.recent_menu.setEnabled(bool(files))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear List", lambda: (self.settings.clear_recent_files(), self._fill_recent_menu([])))

    # drag and drop ------------------------------------------------------------------------
    @staticmethod
    def _dropped_paths(mime: QMimeData) -> list[str]:
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        mime = event.mimeData()
        if mime.hasImage() or any(Path(p).suffix.lower() in IMAGE_SUFFIXES or Path(p).is_file() for p in self._dropped_paths(mime)):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        if self.open_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def open_mime(self, mime: QMimeData) -> bool:
        """Open what a drop or the clipboard carries: a file URL first, else image data."""
        paths = self._dropped_paths(mime)
        if paths:
            return self.open_path(paths[0])
        if mime.hasImage():
            image = QImage(mime.imageData())
            if not image.isNull():
                return self.open_image_array(qimage_to_array(image))
        text = mime.text().strip() if mime.hasText() else ""
        if text.startswith("file://"):
            return self.open_path(QUrl(text.splitlines()[0]).toLocalFile())
        if text and Path(text).is_file():
            return self.open_path(text)
        self.show_message("warning", "Nothing to paste", "The clipboard holds no image or image file.")
        return False

    def paste(self) -> bool:
        return self.open_mime(QGuiApplication.clipboard().mimeData())

    def copy_image(self) -> bool:
        if self.document.is_empty:
            return False
        rgba = self.document.display_rgba8()
        image = QImage(rgba.data, rgba.shape[1], rgba.shape[0], rgba.strides[0], QImage.Format.Format_RGBA8888).copy()
        QGuiApplication.clipboard().setImage(image)
        self.status_message.setText("Image copied to the clipboard.")
        return True

    def applied_params(self) -> GenerationParams | None:
        """Parameters of the most recently applied generation (what the saved PNG should carry)."""
        applied = [g for g in self.document.generations if g.applied is not None]
        return applied[-1].params if applied else None

    def save(self) -> bool:
        if self._save_path:
            return self.save_result(self._save_path)
        self.save_as_dialog()
        return self._save_path is not None

    def save_as_dialog(self) -> None:
        if self.document.is_empty:
            return
        base = Path(self.document.path).with_name(Path(self.document.path).stem + "-inpainted.png") if self.document.path else Path(self.settings.last_dir()) / "result.png"
        path, _ = QFileDialog.getSaveFileName(self, "Save result as", str(base), SAVE_FILTER)
        if path:
            if not Path(path).suffix:
                path += ".png"
            self.save_result(path)

    def save_result(self, path: str | Path) -> bool:
        """Write the current image (with the applied generation's parameters) atomically."""
        if self.document.is_empty:
            return False
        try:
            imageio.save_image(path, self.document.pixels, params=self.applied_params(), icc_profile=self.document.icc_profile)
        except (OSError, ValueError) as exc:
            self.show_message("error", "Cannot save", f"{Path(path).name}: {exc}")
            return False
        self._save_path = str(path)
        self.document.mark_saved()
        self.status_message.setText(f"Saved {Path(path).name}")
        return True

    def export_mask_dialog(self) -> None:
        if self.document.is_empty:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export mask", str(Path(self.settings.last_dir()) / "mask.png"), "PNG (*.png)")
        if path:
            self.export_mask(path)

    def export_mask(self, path: str | Path) -> bool:
        try:
            imageio.save_image(path, self.document.mask)
        except (OSError, ValueError) as exc:
            self.show_message("error", "Cannot export the mask", str(exc))
            return False
        self.status_message.setText(f"Mask exported to {Path(path).name}")
        return True

    def import_mask_dialog(self) -> None:
        if self.document.is_empty:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import mask", self.settings.last_dir(), IMAGE_FILTER)
        if path:
            self.import_mask(path)

    def import_mask(self, path: str | Path) -> bool:
        try:
            mask = imageio.load_mask(path, self.document.mask.shape)
            self.document.set_mask(mask, "Import mask")
        except ValueError as exc:  # ImageLoadError and MaskError are ValueErrors
            self.show_message("error", "Cannot import the mask", str(exc))
            return False
        return True

    # ======================================================================================
    # mask operations
    # ======================================================================================
    def open_mask_dialog(self, op: str) -> MaskAdjustDialog | None:
        if self.document.is_empty:
            return None
        dialog = MaskAdjustDialog(self, op)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def adjust_mask(self, op: str, px: int) -> bool:
        d = self.document
        return {"grow": d.grow_mask, "shrink": d.shrink_mask, "feather": d.feather_mask}[op](px)

    def choose_mask_color(self) -> None:
        dialog = QColorDialog(self.canvas.mask_color, self)
        dialog.setWindowTitle("Mask overlay colour")
        dialog.colorSelected.connect(self.set_mask_color)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def set_mask_color(self, color: QColor | str) -> None:
        color = QColor(color)
        self.canvas.set_mask_color(color)
        self.settings.set_mask_color(color.name())

    def set_mask_opacity(self, opacity: float) -> None:
        self.canvas.set_mask_opacity(opacity)
        self.settings.set_mask_opacity(opacity)
        pct = round(opacity * 100)
        for value, a in self.opacity_actions.items():
            a.setChecked(value == pct)

    # ======================================================================================
    # generation
    # ======================================================================================
    @property
    def generating(self) -> bool:
        return self._generating

    def generate(self, params: GenerationParams | None = None) -> bool:
        """Start a generation with ``params`` (default: the panel's). False, with the reason in
        the message bar, if it cannot start; the document is never touched here."""
        if self._generating:
            return False
        if self.document.is_empty:
            self.show_message("warning", "No image", "Open an image first (Ctrl+O, drag and drop, or paste).")
            return False
        if params is None:
            params = self.current_params()
        try:
            params.validate()
        except ParamError as exc:
            self.show_message("error", "Invalid parameter", str(exc))
            return False
        if params.mode == "inpaint" and not self.document.mask.any():
            self.show_message("warning", "Nothing to repaint", "The mask is empty: paint over the area to repaint (B for the brush), then generate.")
            return False
        if not params.is_classical and not params.prompt:
            self.show_message("warning", "Prompt needed", "A diffusion model needs a prompt describing what to paint.")
            return False
        if params.is_classical and params.mode == "img2img":
            self.show_message("warning", "Diffusion model needed", "Image to image needs a diffusion model; classical methods only inpaint.")
            return False
        self.set_compare(False)
        self.discard_candidates()
        self.message_bar.dismiss()
        self.settings.set_last_params(params)
        mask = self.document.mask.copy() if params.mode == "inpaint" or self.document.mask.any() else None
        job = Job(params, self.document.pixels.copy(), mask, self.canvas.context_box)
        request = WorkRequest(job, params.model, self.model_picker.device_choice(), self.model_picker.low_memory,
                              self.allow_pickle_action.isChecked(), self.safety_action.isChecked())
        if not self.worker.submit(request):
            return False
        self._generating = True
        self._oom = False
        self._run_params = params
        self._run_token = self._doc_token
        self._run_started = time.perf_counter()
        self.progress.setRange(0, 0)  # busy until the first step reports
        self.progress.setFormat("Starting…")
        self.progress.show()
        self.status_message.setText("Generating…" if params.is_classical else f"Generating with {Path(params.model).name}…")
        self._update_actions()
        return True

    def cancel_generation(self) -> None:
        if self._generating:
            self.worker.cancel()
            self.progress.setFormat("Cancelling…")

    def _run_is_current(self) -> bool:
        return self._run_token == self._doc_token

    def _on_progress(self, step: int, total: int, eta: float, preview, region) -> None:
        if not self._generating:
            return
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(step)
        eta_text = f" · {eta:.0f} s left" if eta >= 0.5 else ""
        self.progress.setFormat(f"Step {step}/{total}{eta_text}")
        if preview is not None and self._run_is_current() and not self.canvas.candidate_shown:
            self.canvas.set_preview(preview, region)

    def _end_run(self) -> None:
        self._generating = False
        self.progress.hide()
        self.canvas.set_preview(None)
        self._update_actions()

    def _on_finished(self, result) -> None:
        self._end_run()
        if not self._run_is_current():
            self.status_message.setText("A generation finished for an image that is no longer open; it was dropped.")
            return
        record = GenerationRecord(
            params=result.params,
            candidates=[c.image for c in result.candidates],
            seeds=[c.seed for c in result.candidates],
            regions=list(result.regions),
            backend=result.backend,
            elapsed_s=result.elapsed_s,
        )
        self.document.add_generation(record)
        self.params_panel.set_last_seed(result.params.seed)
        self.seed_label.setText(f"Seed {result.params.seed}")
        self.show_record_candidates(record)
        n = len(record.candidates)
        self.status_message.setText(
            f"{n} candidate{'s' if n > 1 else ''} in {result.elapsed_s:.2f} s — preview, then Apply (or double-click) or Discard."
        )
        self.generation_finished.emit(record)

    def _on_failed(self, title: str, message: str) -> None:
        self._end_run()
        actions = []
        if self._oom and not self.model_picker.low_memory:
            actions.append(("Use low-memory mode and retry", self._retry_low_memory))
        self.show_message("error", title, message, actions)
        self.status_message.setText(f"{title}. The image is unchanged.")
        self.generation_failed.emit(title, message)

    def _on_out_of_memory(self) -> None:
        self._oom = True

    def _retry_low_memory(self) -> None:
        self.model_picker.set_low_memory(True)
        if self._run_params is not None:
            self.generate(self._run_params)

    def _on_cancelled(self) -> None:
        self._end_run()
        self.status_message.setText("Generation cancelled. The image is unchanged.")
        self.generation_cancelled.emit()

    def _on_worker_status(self, text: str) -> None:
        if self._generating:
            self.progress.setFormat(text[:40])
        self.status_message.setText(text)

    # candidates ----------------------------------------------------------------------------
    def show_record_candidates(self, record: GenerationRecord) -> None:
        """Put a generation's candidates in the panel and preview the first on the canvas."""
        if not record.candidates or record.candidates[0].shape != self.document.pixels.shape:
            return
        self._candidates_record = record
        self.candidates_panel.set_candidates(record.candidates, record.seeds, record.regions)
        self.candidates_dock.show()
        self.candidates_dock.raise_()
        self.candidates_panel.select(0)
        self._update_actions()

    def preview_candidate(self, index: int) -> None:
        rec = self._candidates_record
        if rec is None or not 0 <= index < len(rec.candidates):
            self.canvas.show_candidate(None)
            return
        if not self._compare:
            self.canvas.show_candidate(rec.candidates[index])
        self.seed_label.setText(f"Seed {rec.seeds[index]}")

    def set_compare(self, on: bool) -> None:
        """Before/after: while on, the canvas shows the image as it is (before the candidate)."""
        self._compare = on
        rec, index = self._candidates_record, self.candidates_panel.current()
        if on or rec is None or not 0 <= index < len(rec.candidates):
            self.canvas.show_candidate(None)
        else:
            self.canvas.show_candidate(rec.candidates[index])
        if on and rec is not None:
            self.status_message.setText("Showing the image before this generation (release to see the candidate).")

    def apply_current_candidate(self) -> bool:
        return self.apply_candidate(self.candidates_panel.current())

    def apply_candidate(self, index: int) -> bool:
        """Apply a candidate as one undo command; the candidates panel is then cleared."""
        rec = self._candidates_record
        if rec is None or not 0 <= index < len(rec.candidates):
            return False
        region = None
        if rec.regions:
            region = rec.regions[0]
            for r in rec.regions[1:]:
                region = region.union(r)
        changed = self.document.apply_result(rec.candidates[index], label=f"Apply result (seed {rec.seeds[index]})", region=region)
        rec.applied = index
        self.discard_candidates()
        self.history_panel.set_records(self.document.generations)
        self.status_message.setText("Result applied — Undo (Ctrl+Z) restores the previous pixels." if changed else "The candidate equals the image; nothing changed.")
        self.result_applied.emit(rec)
        return True

    def discard_candidates(self) -> None:
        self._candidates_record = None
        self._compare = False
        self.canvas.show_candidate(None)
        self.candidates_panel.set_candidates([], [])
        self._update_actions()

    def recall_record(self, record: GenerationRecord) -> None:
        self.recall_params(record.params)

    # ======================================================================================
    # reactions and state
    # ======================================================================================
    def _on_document_reset(self) -> None:
        """New image or restored project: stale candidates and results no longer apply."""
        self._doc_token += 1
        d = self.document
        if self._candidates_record is not None:
            self.discard_candidates()
        self._display_name = Path(d.path).name if d.path else self._display_name
        self._update_title()
        self.size_label.setText("" if d.is_empty else f"{d.width} × {d.height}" + (" · 16-bit" if d.pixels.dtype == np.uint16 else ""))
        self.zoom_label.setText(f"{self.canvas.zoom * 100:.0f} %")
        self._update_actions()

    def _on_cursor(self, x: int, y: int) -> None:
        d = self.document
        self.cursor_label.setText(f"{x}, {y}" if not d.is_empty and 0 <= x < d.width and 0 <= y < d.height else "")

    def _on_brush_changed(self, size: int, hardness: float) -> None:
        self.brush_size.blockSignals(True)
        self.brush_size.setValue(size)
        self.brush_size.blockSignals(False)
        self.hardness.blockSignals(True)
        self.hardness.setValue(round(hardness * 100))
        self.hardness.blockSignals(False)

    def _on_model_changed(self, ref: str) -> None:
        self.params_panel.set_model(ref, ref in CLASSICAL_MODELS)
        self._update_actions()
        if ref not in CLASSICAL_MODELS and self.isVisible():
            self._preload_timer.start()

    def _on_device_changed(self, device: str) -> None:
        self.settings.set_device(device)

    def _preload_model(self) -> None:
        """Load the chosen diffusion model in the background so the first Generate is quick."""
        ref = self.model_picker.current_model()
        if ref not in CLASSICAL_MODELS and not self._generating:
            self.worker.preload(ref, self.model_picker.device_choice(), self.model_picker.low_memory,
                                self.allow_pickle_action.isChecked(), self.safety_action.isChecked())

    def _update_actions(self) -> None:
        has_image = not self.document.is_empty
        has_candidates = self._candidates_record is not None
        for a in (self.save_action, self.save_as_action, self.export_mask_action, self.import_mask_action, self.copy_action,
                  self.invert_action, self.clear_action, self.fill_action, self.grow_action, self.shrink_action,
                  self.feather_action, self.zoom_fit_action, self.zoom_actual_action, self.zoom_in_action, self.zoom_out_action):
            a.setEnabled(has_image)
        ready = has_image and not self._generating and not self.params_panel.validation_message()
        self.generate_action.setEnabled(ready)
        self.params_panel.generate_button.setEnabled(ready)
        self.cancel_action.setEnabled(self._generating)
        self.apply_action.setEnabled(has_candidates)
        self.discard_action.setEnabled(has_candidates)

    def _update_title(self) -> None:
        name = getattr(self, "_display_name", None)
        self.setWindowTitle(f"{name}[*] — Inpaint Studio" if name else "Inpaint Studio")
        self.setWindowModified(self.document.modified)

    # ======================================================================================
    # events
    # ======================================================================================
    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            # After the first paint: discovery reads configs on a thread; never before the window is up.
            QTimer.singleShot(0, self.model_picker.refresh)
            if not self.model_picker.is_classical():
                self._preload_timer.start()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == COMPARE_KEY and not event.isAutoRepeat() and self._candidates_record is not None:
            self.set_compare(True)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == COMPARE_KEY and not event.isAutoRepeat() and self._compare:
            self.set_compare(False)
            return
        super().keyReleaseEvent(event)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.WindowDeactivate and self._compare:
            self.set_compare(False)  # a released key is not seen once focus left
        return super().event(event)

    def show_about(self):
        from app.widgets.about_dialog import AboutDialog  # importlib.metadata: not on the start path

        dialog = AboutDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.document.modified and not self._close_confirmed:
            event.ignore()
            box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes",
                              "The image has changes that are not saved. Quit anyway?",
                              QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.finished.connect(lambda code, b=box: self._after_close_question(b.standardButton(b.clickedButton()) if b.clickedButton() else code))
            box.open()
            return
        self.shutdown()
        super().closeEvent(event)

    def _after_close_question(self, button) -> None:
        if button == QMessageBox.StandardButton.Save:
            if not self.save():
                return
        elif button != QMessageBox.StandardButton.Discard:
            return
        self.force_close()

    def force_close(self) -> None:
        """Close without asking about unsaved changes (after the user chose, or in tests)."""
        self._close_confirmed = True
        self.close()

    def shutdown(self) -> None:
        """Save settings and stop the worker thread (idempotent)."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        self._preload_timer.stop()
        try:
            self.save_settings()
        finally:
            self.worker.shutdown()
