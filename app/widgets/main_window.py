"""The main window: a shell that builds the panels and wires them to an `EditorSession`.

The session (app/editor/session.py) holds the open work: document, history, paths, the running
generation, autosave. The window turns panel input into session calls and session signals into
what the panels show; generate/cancel/candidates in `app.widgets.generation_controls`, file
actions in `app.widgets.file_actions`, recall, mask options and dialogs in
`app.widgets.window_actions`, the layout (docks, menus, toolbar, status bar) in
`app.widgets.window_layout`, canvas tools in `app.widgets.canvas_tools`.
Nothing here imports torch: the worker imports it on its own thread.

Hooks for other features: ``file_menu`` + `add_file_actions`, ``session``, ``document``,
`current_params` / `set_params`, `open_path`, `show_message`, and the signals ``document_opened``,
``generation_finished`` and ``result_applied`` (the session's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication
from PySide6.QtWidgets import QAbstractButton, QApplication, QMainWindow, QMessageBox, QStyle, QToolBar, QVBoxLayout, QWidget

from app.core.params import CLASSICAL_MODELS, GenerationParams
from app.editor.session import EditorSession
from app.editor.settings import Settings
from app.editor.worker import GenerationWorker
from app.widgets import outpaint_actions, tools
from app.widgets import window_layout as layout
from app.widgets.candidates import CandidatesPanel
from app.widgets.canvas import CanvasView
from app.widgets.file_actions import FileActions, accepts_drop
from app.widgets.generation_controls import GenerationControls
from app.widgets.history_panel import HistoryPanel, parked_note
from app.widgets.messages import MessageBar
from app.widgets.model_picker import ModelPicker
from app.widgets.params_panel import ParamsPanel
from app.widgets.undo_keys import UndoKeysFilter
from app.widgets.wheel_guard import guard_wheel
from app.widgets.window_actions import WindowActions

COMPARE_KEY = Qt.Key.Key_Backslash


class MainWindow(GenerationControls, WindowActions, QMainWindow):
    """The editor window. See the module docstring for the hooks other features use."""

    document_opened = Signal(str)  # path, or "" for pasted data

    def __init__(self, settings: Settings | None = None, *, worker: GenerationWorker | None = None,
                 discover: Callable[[], list] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.session = EditorSession(worker, self)
        s = self.session  # its signals, under the names other features connect to
        self.generation_finished, self.generation_failed = s.generation_finished, s.generation_failed
        self.generation_cancelled, self.result_applied = s.generation_cancelled, s.result_applied
        self.setWindowTitle("Inpaint Studio")
        self.setWindowIcon(layout.icon("app"))
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)

        self.canvas = CanvasView(self.document)
        self.message_bar = MessageBar()
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.message_bar)
        cl.addWidget(self.canvas, 1)
        self.setCentralWidget(central)
        self.params_panel = ParamsPanel()
        self.model_picker = ModelPicker(discover=discover)
        self.history_panel = HistoryPanel()
        self.candidates_panel = CandidatesPanel()
        self.files = FileActions(self)
        layout.build_docks(self)
        self._close_confirmed = False
        self._close_when_idle_armed = False
        self._stop_box: QMessageBox | None = None
        self._shown_once = False
        self._preload_timer = QTimer(self)
        self._preload_timer.setSingleShot(True)
        self._preload_timer.setInterval(400)
        self._preload_timer.timeout.connect(self._preload_model)

        layout.build_actions(self)
        layout.build_menus(self)
        layout.build_toolbar(self)
        layout.build_status_bar(self)
        outpaint_actions.install(self)
        guard_wheel(self.params_panel)
        guard_wheel(self.model_picker)
        guard_wheel(self.findChild(QToolBar))  # the brush size
        self._return_focus_after_panel_actions()
        self._undo_keys = UndoKeysFilter(self)
        self._connect()
        self._restore_settings()
        self._update_actions()
        self._update_title()

    # -- the session's state and signals, under the names other features use ----------------------
    @property
    def document(self):
        return self.session.document

    @property
    def recovery(self):
        return self.session.recovery

    @property
    def generating(self) -> bool:
        return self.session.generating

    # -- wiring ------------------------------------------------------------------------------------
    def _connect(self) -> None:
        d, s = self.document, self.session
        d.reset.connect(self._on_document_reset)
        d.generations_changed.connect(self._show_history)
        d.reset.connect(self._show_history)  # an undone Expand canvas parks candidates of another size
        d.mask_changed.connect(lambda _r: self._update_actions())
        s.title_changed.connect(self._update_title)
        s.generation_started.connect(self._on_started)
        s.progress.connect(self._on_progress)
        s.generation_finished.connect(self._on_finished)
        s.generation_failed.connect(self._on_failed)
        s.generation_cancelled.connect(lambda: self._end_run("Generation cancelled. The image is unchanged."))
        s.generation_dropped.connect(lambda: self._end_run("A generation finished for an image that is no longer open; it was dropped."))
        s.worker_status.connect(self._on_worker_status)
        s.candidates_changed.connect(self._on_candidates_changed)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.canvas.cursor_moved.connect(self._on_cursor)
        self.canvas.tool_changed.connect(lambda name: self.tool_actions[name].setChecked(True))
        self.canvas.brush_changed.connect(self._on_brush_changed)
        self.document_opened.connect(self._brush_for_image)
        stack = d.undo_stack  # the status line says what an undo/redo did (not a stale "Result applied")
        self.undo_action.triggered.connect(lambda: self.status_message.setText(f"Undone: {stack.text(stack.index())}."))
        self.redo_action.triggered.connect(lambda: self.status_message.setText(f"Redone: {stack.text(stack.index() - 1)}."))
        self.document_opened.connect(lambda _path: self.seed_label.setText(""))  # the last run's seed belongs to the last image
        self.params_panel.generate_requested.connect(self.generate)
        self.params_panel.changed.connect(self._update_actions)
        self.params_panel.guides.changed.connect(  # live runs read it too
            lambda: setattr(self.session, "reference_image", self.params_panel.guides.reference_image))
        self.params_panel.guides.canvas_requested.connect(self._reference_from_canvas)
        self.model_picker.model_changed.connect(self._on_model_changed)
        self.model_picker.model_added.connect(self.settings.add_user_model)
        self.model_picker.a1111_changed.connect(self.set_a1111_folder)
        self.model_picker.lora_downloaded.connect(lambda _path: self.params_panel.networks.refresh())
        self.model_picker.discovery_finished.connect(lambda: QTimer.singleShot(0, self, self._fit_model_dock))
        self.model_picker.device_changed.connect(self.settings.set_device)
        self.model_picker.low_memory_changed.connect(lambda: self.settings.set_low_memory(self.model_picker.low_memory))
        self.allow_pickle_action.toggled.connect(self.settings.set_allow_pickle)
        self.safety_action.toggled.connect(self.settings.set_safety_checker)
        self.compile_action.toggled.connect(self.settings.set_compile_unet)
        self.candidates_panel.candidate_selected.connect(self.preview_candidate)
        self.candidates_panel.apply_requested.connect(self.apply_candidate)
        self.candidates_panel.discard_requested.connect(self.discard_candidates)
        self.candidates_panel.compare_pressed.connect(lambda: self.set_compare(True))
        self.candidates_panel.compare_released.connect(lambda: self.set_compare(False))
        self.history_panel.recall_requested.connect(lambda r: self.recall_params(r.params))
        self.history_panel.rerun_requested.connect(lambda r: self.generate(r.params))
        self.history_panel.rerun_new_seed_requested.connect(lambda r: self.generate(r.params.replace(seed=-1)))
        self.history_panel.show_requested.connect(self._review_record)

    def _restore_settings(self) -> None:
        s = self.settings
        self.model_picker.set_user_models(s.user_models())
        self.model_picker.set_a1111_folder(s.shared.a1111_folder())
        self.model_picker.set_remote_models(s.remote_models())
        self.model_picker.set_device_choice(s.device())
        self.model_picker.set_low_memory(s.low_memory())
        self.allow_pickle_action.setChecked(s.allow_pickle())
        self.safety_action.setChecked(s.safety_checker())
        self.compile_action.setChecked(s.compile_unet())
        self.set_params(s.last_params())
        self.canvas.set_mask_color(s.mask_color())
        self.set_mask_opacity(s.mask_opacity())
        geometry, state = s.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self._first_geometry()
        if state is not None:
            self.restoreState(state)

    def _first_geometry(self) -> None:
        """1440×900 on a screen that holds it; else the screen's free area, so a 1366×768 laptop
        sees every panel on the first start."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        free = screen.availableGeometry() if screen is not None else None
        if free is None or free.isEmpty():
            self.resize(1440, 900)
            return
        size = QSize(min(1440, free.width()), min(900, free.height()))
        self.setGeometry(QStyle.alignedRect(Qt.LayoutDirection.LeftToRight, Qt.AlignmentFlag.AlignCenter, size, free))

    def save_settings(self) -> None:
        """Persist preferences, the last parameters and the window layout."""
        self.settings.set_last_params(self.current_params())
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()

    # -- hooks for other features ------------------------------------------------------------------
    def add_file_actions(self, actions: Sequence[QAction]) -> None:
        """Insert actions (e.g. Open Project…, Save Project) into the File menu, after Save."""
        for a in actions:
            self.file_menu.insertAction(self._file_anchor, a)
            if a.parent() is None:
                a.setParent(self)
        self.file_menu.insertSeparator(self._file_anchor)

    def _reference_from_canvas(self) -> None:
        """The open image (its context box when one is set) becomes the reference image."""
        doc = self.document
        if doc.is_empty:
            return
        from app.core.compositing import to_rgb8

        box = doc.context_box
        pixels = doc.pixels if box is None else doc.pixels[box.slices]
        self.params_panel.guides.set_reference_image(to_rgb8(pixels))

    def current_params(self) -> GenerationParams:
        """The parameters in the panel with the model chosen in the picker (not validated)."""
        return self.params_panel.params().replace(model=self.model_picker.current_model())

    def set_params(self, params: GenerationParams) -> None:
        """Show ``params`` in the panel and select its model in the picker."""
        self.params_panel.set_params(params)
        self.model_picker.set_current_model(params.model)
        self.params_panel.set_model(self.model_picker.current_model(), self.model_picker.is_classical())

    def _fit_model_dock(self) -> None:
        """Once the "no model" hint hides, the model dock would keep its height as an empty gap:
        give that height to the parameters below (never grow it: the user may have sized it).
        After the layout has taken the hidden hint into account (a queued call)."""
        need = self.model_picker.sizeHint().height()
        if not self.model_dock.isFloating() and self.model_picker.height() > need:
            self.resizeDocks([self.model_dock], [need], Qt.Orientation.Vertical)

    def show_message(self, level: str, title: str, text: str, actions: list[tuple[str, Callable[[], None]]] | None = None) -> None:
        """Show a message in the bar above the canvas (level: info, warning, error)."""
        self.message_bar.show_message(level, title, text, actions)

    # file actions under the names tests and scripts use
    def open_path(self, path: str | Path) -> bool:
        return self.files.open_path(path)

    def open_image_array(self, pixels: np.ndarray, name: str = "Pasted image") -> bool:
        return self.files.open_image_array(pixels, name)

    def save(self) -> bool:
        return self.files.save()

    def save_result(self, path: str | Path) -> bool:
        return self.files.save_result(path)

    def import_mask(self, path: str | Path) -> bool:
        return self.files.import_mask(path)

    def export_mask(self, path: str | Path) -> bool:
        return self.files.export_mask(path)

    def copy_image(self) -> bool:
        return self.files.copy_image()

    # -- reactions and state -----------------------------------------------------------------------
    def _on_document_reset(self) -> None:
        d = self.document
        self.size_label.setText("" if d.is_empty else f"{d.width} × {d.height}" + (" · 16-bit" if d.pixels.dtype == np.uint16 else ""))
        self.zoom_label.setText(f"{self.canvas.zoom * 100:.0f} %")
        self._update_actions()

    def _return_focus_after_panel_actions(self) -> None:
        """After a panel button or a toolbar field, keys go to the canvas again (as in Krita):
        otherwise X, E, [ and ] did nothing and space-drag painted instead of panning."""
        focus = lambda *_: QTimer.singleShot(0, self, self._focus_canvas)  # noqa: E731 - after the click's own focus change
        buttons = [*self.candidates_panel.findChildren(QAbstractButton), *self.history_panel.findChildren(QAbstractButton)]
        p = self.params_panel
        buttons += [p.generate_button, p.random_seed, p.reuse_seed, p.lock_seed]
        for b in buttons:
            b.clicked.connect(focus)
        self.brush_size.editingFinished.connect(focus)
        self.hardness.sliderReleased.connect(focus)
        self.history_panel.list.itemDoubleClicked.connect(focus)

    def _focus_canvas(self) -> None:
        if QApplication.activeModalWidget() is None:  # a question the click opened keeps its focus
            self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)

    def _show_history(self) -> None:
        d = self.document
        self.history_panel.set_records(d.generations, None if d.is_empty else d.size)

    def _review_record(self, record) -> None:
        """Bring a run's candidates back for review, or say why they cannot be."""
        if not self.session.show_record(record):
            note = parked_note(record, self.document.size)
            self.show_message("info", "Cannot review these candidates",
                              f"They were {note}." if note else "This run has no candidates to show.")

    def _on_cursor(self, x: int, y: int) -> None:
        d = self.document
        self.cursor_label.setText(f"{x}, {y}" if not d.is_empty and 0 <= x < d.width and 0 <= y < d.height else "")

    def _brush_for_image(self, _path: str = "") -> None:
        """An opened image gets the brush size last chosen for its size class, else one sized from it."""
        d = self.document
        if not d.is_empty:
            remembered = self.settings.brush_size(tools.size_class(d.width, d.height))
            self.canvas.set_brush_size(remembered or tools.default_brush_size(d.width, d.height))

    def _on_brush_changed(self, size: int, hardness: float) -> None:
        d = self.document
        if not d.is_empty:  # remembered per image size class: a 24 MP photo needs another brush than a 512² crop
            self.settings.set_brush_size(tools.size_class(d.width, d.height), size)
        for widget, value in ((self.brush_size, size), (self.hardness, round(hardness * 100))):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)

    def _on_model_changed(self, ref: str) -> None:
        self.params_panel.set_model(ref, ref in CLASSICAL_MODELS)
        self._update_actions()
        if ref not in CLASSICAL_MODELS and self.isVisible():
            self._preload_timer.start()

    def _preload_model(self) -> None:
        ref = self.model_picker.current_model()
        if ref not in CLASSICAL_MODELS:
            self.session.preload(ref, self.run_options())

    def _update_actions(self) -> None:
        has_image, generating = not self.document.is_empty, self.session.generating
        has_candidates = self.session.candidates is not None
        for a in (self.save_action, self.save_as_action, self.export_mask_action, self.import_mask_action, self.copy_action,
                  self.invert_action, self.clear_action, self.fill_action, self.grow_action, self.shrink_action,
                  self.feather_action, self.zoom_fit_action, self.zoom_actual_action, self.zoom_in_action, self.zoom_out_action,
                  *self.files.needs_image):
            a.setEnabled(has_image)
        ready = has_image and not generating and not self.session.live.enabled and not self.params_panel.validation_message()
        self.generate_action.setEnabled(ready)
        self.params_panel.generate_button.setEnabled(ready)
        self.cancel_action.setEnabled(generating)
        self.live.live_action.setEnabled(has_image and (not generating or self.session.live.enabled))
        self.apply_action.setEnabled(has_candidates)
        self.discard_action.setEnabled(has_candidates)

    def _update_title(self) -> None:
        name = self.session.display_name
        self.setWindowTitle(f"{name}[*] — Inpaint Studio" if name else "Inpaint Studio")
        self.setWindowModified(self.document.modified)

    # -- events ------------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            # After the first paint: discovery reads configs on a thread; never before the window is up.
            QTimer.singleShot(0, self.model_picker, self.model_picker.refresh)
            if not self.model_picker.is_classical():
                self._preload_timer.start()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == COMPARE_KEY and not event.isAutoRepeat() and self.session.candidates is not None:
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

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        (event.acceptProposedAction if accepts_drop(event.mimeData()) else event.ignore)()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        (event.acceptProposedAction if self.files.open_mime(event.mimeData()) else event.ignore)()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Quit asks about unsaved work or a running generation; once confirmed, a running
        generation is cancelled (it stops within one step) and the window closes when the worker
        has let go, so the thread is never destroyed while it runs and the GUI never blocks."""
        if not self._close_confirmed and (self.session.has_unsaved_work or self.session.generating):
            event.ignore()
            self._ask_before_close()
            return
        if self.session.generating:
            event.ignore()
            self._close_when_idle()
            return
        self.shutdown()
        super().closeEvent(event)

    def _ask_before_close(self) -> None:
        running = " A generation is running; it will be stopped." if self.session.generating else ""
        if self.session.has_unsaved_work:
            name = self.session.display_name or "The image"
            self.files.ask_unsaved(f"{name} has changes that are not saved.{running} Save them before quitting?",
                                   self.force_close, quitting=True)
            return
        if self._stop_box is not None:
            return
        buttons = QMessageBox.StandardButton
        box = QMessageBox(QMessageBox.Icon.Question, "Generation running", "A generation is running. Stop it and quit?",
                          buttons.Yes | buttons.Cancel, self)
        box.button(buttons.Yes).setText("Stop and Quit")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _c, b=box: self._after_stop_question(b.clickedButton() is b.button(buttons.Yes)))
        self._stop_box = box
        box.open()

    def _after_stop_question(self, stop: bool) -> None:
        self._stop_box = None
        if stop:
            self.force_close()

    def _close_when_idle(self) -> None:
        """Cancel the run and close once the worker reports its end (within one step)."""
        self.status_message.setText("Stopping the generation before quitting…")
        self.session.cancel()
        if not self._close_when_idle_armed:
            self._close_when_idle_armed = True
            s = self.session
            for ended in (s.generation_cancelled, s.generation_finished, s.generation_failed, s.generation_dropped):
                ended.connect(lambda *_: QTimer.singleShot(0, self, self.close))

    def force_close(self) -> None:
        """Close without asking about unsaved changes (after the user chose, or in tests)."""
        self._close_confirmed = True
        self.close()

    def shutdown(self) -> None:
        """Save settings, stop a project load and the worker thread (idempotent)."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        self._preload_timer.stop()
        self.files.cancel_loading(wait_s=10.0)
        try:
            self.save_settings()
        finally:
            self.session.shutdown()
