"""The main window: a shell that builds the panels and wires them to an `EditorSession`.

The session (app/editor/session.py) holds the open work: document, history, paths, the running
generation, autosave. The window owns one object per job, each given what it needs when it is
made: ``generation`` (`GenerationView`: generate, cancel, progress, candidates), ``files``
(`FileActions`: open, save, masks, projects), ``close_guard`` (`CloseGuard`), ``params_recall`` (`ParamsRecall`), ``mask_view``
(`MaskViewOptions`: overlay colour and opacity), ``status`` (`WindowStatus`: the status bar) and
``live`` (`LiveControls`). The layout (docks, actions, menus, toolbar) is built by
`app.widgets.window_layout`, the plain dialogs by `app.widgets.window_dialogs`, canvas tools by
`app.widgets.canvas_tools`. Nothing here imports torch: the worker imports it on its own thread.

Hooks for other features: ``file_menu`` + `add_file_actions`, ``session``, ``document``,
`current_params` / `set_params`, ``files.open_path``, `show_message`, and the signals
``document_opened``, ``generation_finished`` and ``result_applied`` (the session's).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent
from PySide6.QtWidgets import QAbstractButton, QApplication, QMainWindow, QToolBar, QWidget

from app.core.params import GenerationParams
from app.editor.session import EditorSession
from app.editor.settings import Settings
from app.editor.worker import GenerationWorker
from app.service import LoadOptions
from app.widgets import control_panel, restore_actions, tools, window_dialogs
from app.widgets import window_layout as layout
from app.widgets.candidates import CandidatesPanel
from app.widgets.canvas import CanvasView
from app.widgets.close_guard import CloseGuard
from app.widgets.file_actions import FileActions, accepts_drop
from app.widgets.generation_controls import GenerationView
from app.widgets.history_panel import HistoryPanel, parked_note
from app.widgets.live_controls import LiveControls
from app.widgets.mask_dialog import MaskAdjustDialog, open_mask_dialog
from app.widgets.mask_view import MaskViewOptions
from app.widgets.messages import MessageBar
from app.widgets.model_picker import ModelPicker
from app.widgets.outpaint_actions import OutpaintActions
from app.widgets.params_panel import ParamsPanel
from app.widgets.params_recall import ParamsRecall
from app.widgets.undo_keys import UndoKeysFilter
from app.widgets.wheel_guard import guard_wheel
from app.widgets.window_actions import WindowActions
from app.widgets.window_status import WindowStatus

A1111_ENV = "INPAINT_STUDIO_A1111"

COMPARE_KEY = Qt.Key.Key_Backslash


class MainWindow(QMainWindow):
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
        layout.build_centre(self, self.message_bar, self.canvas)
        self.params_panel = ParamsPanel()
        self.model_picker = ModelPicker(discover=discover)
        self.history_panel = HistoryPanel()
        self.candidates_panel = CandidatesPanel()
        layout.build_docks(self)
        self.status = WindowStatus(self.statusBar())
        self._make_jobs()
        self.close_guard = CloseGuard(self, self.session, self.files, self.status)
        self._shown_once = False
        self._preload_timer = QTimer(self)
        self._preload_timer.setSingleShot(True)
        self._preload_timer.setInterval(400)
        self._preload_timer.timeout.connect(self._preload_model)
        layout.build_menus(self)
        layout.build_toolbar(self)
        self.outpaint_actions = OutpaintActions(
            self, self.session, self.canvas, edit_menu=self.edit_menu, tools_menu=self.tools_menu,
            tool_actions=self.menu_actions.tools, status=self.status, messages=self.message_bar)
        control_panel.install(self)  # ControlNet layers, offering the ControlNets found (under History)
        restore_actions.install(self)  # tabbed with History
        guard_wheel(self.params_panel)
        guard_wheel(self.model_picker)
        guard_wheel(self.findChild(QToolBar))  # the brush size
        self._return_focus_after_panel_actions()
        self._undo_keys = UndoKeysFilter(self)
        self._connect()
        self._restore_settings()
        self._update_actions()
        self._update_title()

    def _make_jobs(self) -> None:
        """The objects that do the window's jobs, each given the panels and callbacks it uses."""
        self.generation = GenerationView(
            self.session, self.settings, params_panel=self.params_panel, model_picker=self.model_picker,
            candidates_panel=self.candidates_panel, candidates_dock=self.candidates_dock, canvas=self.canvas,
            status=self.status, messages=self.message_bar, current_params=self.current_params,
            run_options=self.run_options, update_actions=self._update_actions, parent=self)
        self.params_recall = ParamsRecall(self.current_params, self.set_params, self.status, self.message_bar)
        self.mask_view = MaskViewOptions(self.canvas.mask_overlay, self.settings, self)
        self.files = FileActions(self, self.session, self.settings, canvas=self.canvas, status=self.status,
                                 messages=self.message_bar, recall=self.params_recall,
                                 document_opened=self.document_opened, current_params=self.current_params,
                                 set_params=self.set_params)
        self.menu_actions = WindowActions(self, files=self.files, document=self.document, canvas=self.canvas,
                                          generation=self.generation, mask_view=self.mask_view,
                                          messages=self.message_bar, adjust_mask=self.adjust_mask)
        self.live = LiveControls(self, self.session, params_panel=self.params_panel, model_picker=self.model_picker,
                                 canvas=self.canvas, status=self.status, messages=self.message_bar,
                                 current_params=self.current_params, run_options=self.run_options,
                                 update_actions=self._update_actions)

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
        self.canvas.zoom_changed.connect(lambda z: self.status.zoom.setText(f"{z * 100:.0f} %"))
        self.canvas.cursor_moved.connect(self._on_cursor)
        self.canvas.tool_changed.connect(lambda name: self.menu_actions.tools[name].setChecked(True))
        self.canvas.brush_changed.connect(self._on_brush_changed)
        self.document_opened.connect(self._brush_for_image)
        stack = d.undo_stack  # the status line says what an undo/redo did (not a stale "Result applied")
        message = self.status.message
        self.menu_actions.undo.triggered.connect(lambda: message.setText(f"Undone: {stack.text(stack.index())}."))
        self.menu_actions.redo.triggered.connect(lambda: message.setText(f"Redone: {stack.text(stack.index() - 1)}."))
        self.document_opened.connect(lambda _path: self.status.seed.setText(""))  # the last run's seed belongs to the last image
        self.params_panel.generate_requested.connect(self.generation.generate)
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
        self.menu_actions.allow_pickle.toggled.connect(self.settings.set_allow_pickle)
        self.menu_actions.safety_checker.toggled.connect(self.settings.set_safety_checker)
        self.menu_actions.compile.toggled.connect(self.settings.set_compile_unet)
        self.history_panel.recall_requested.connect(lambda r: self.params_recall.apply(r.params))
        self.history_panel.rerun_requested.connect(lambda r: self.generation.generate(r.params))
        self.history_panel.rerun_new_seed_requested.connect(lambda r: self.generation.generate(r.params.replace(seed=-1)))
        self.history_panel.show_requested.connect(self._review_record)

    def _restore_settings(self) -> None:
        s = self.settings
        self.model_picker.set_user_models(s.user_models())
        self.model_picker.set_a1111_folder(s.shared.a1111_folder())
        self.model_picker.set_remote_models(s.remote_models())
        self.model_picker.set_device_choice(s.device())
        self.model_picker.set_low_memory(s.low_memory())
        self.menu_actions.allow_pickle.setChecked(s.allow_pickle())
        self.menu_actions.safety_checker.setChecked(s.safety_checker())
        self.menu_actions.compile.setChecked(s.compile_unet())
        self.set_params(s.last_params())
        self.canvas.mask_overlay.set_color(s.mask_color())
        self.mask_view.set_opacity(s.mask_opacity())
        geometry, state = s.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            layout.first_geometry(self)
        if state is not None:
            self.restoreState(state)

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
        self.params_panel.set_model(self.model_picker.current_model(), self.session.prompt_free(self.model_picker.current_model()))

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

    def run_options(self) -> LoadOptions:
        """How the chosen model loads and runs: the picker's device and memory mode, the Generate
        menu's toggles and the generation server's token."""
        mp = self.model_picker
        m = self.menu_actions
        return LoadOptions(device=mp.device_choice(), low_memory=mp.low_memory, allow_pickle=m.allow_pickle.isChecked(),
                           safety_checker=m.safety_checker.isChecked(), compile=m.compile.isChecked(),
                           server_token=self.settings.generation_server()[1] or None)

    def adjust_mask(self, op: str) -> MaskAdjustDialog | None:
        """Grow, shrink or feather the mask in a dialog that previews it on the canvas."""
        return open_mask_dialog(self, self.document, self.canvas.mask_overlay, op)

    def set_a1111_folder(self, folder: str) -> None:
        """Remember the A1111/Forge folder for window and CLI, and list its models and networks."""
        self.settings.shared.set_a1111_folder(folder)
        if folder:
            os.environ[A1111_ENV] = folder  # this process's discovery, worker included
        else:
            os.environ.pop(A1111_ENV, None)
        self.model_picker.refresh()
        self.params_panel.networks.refresh()

    def open_server_dialog(self):
        """Generate → Generation Server…; on OK the picker lists the server's models."""
        return window_dialogs.open_server_dialog(
            self, self.settings, lambda: self.model_picker.set_remote_models(self.settings.remote_models()))

    # -- reactions and state -----------------------------------------------------------------------
    def _on_document_reset(self) -> None:
        d = self.document
        self.status.size.setText("" if d.is_empty else f"{d.width} × {d.height}" + (" · 16-bit" if d.pixels.dtype == np.uint16 else ""))
        self.status.zoom.setText(f"{self.canvas.zoom * 100:.0f} %")
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
        self.status.cursor.setText(f"{x}, {y}" if not d.is_empty and 0 <= x < d.width and 0 <= y < d.height else "")

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
        self.params_panel.set_model(ref, self.session.prompt_free(ref))
        self._update_actions()
        if not self.session.prompt_free(ref) and self.isVisible():
            self._preload_timer.start()

    def _preload_model(self) -> None:
        ref = self.model_picker.current_model()
        if not self.session.prompt_free(ref):
            self.session.preload(ref, self.run_options())

    def _update_actions(self) -> None:
        has_image, generating = not self.document.is_empty, self.session.generating
        has_candidates = self.session.candidates is not None
        m = self.menu_actions
        for a in (m.save, m.save_as, m.export_mask, m.import_mask, m.copy, m.invert_mask, m.clear_mask, m.fill_mask,
                  m.grow_mask, m.shrink_mask, m.feather_mask, m.zoom_fit, m.zoom_actual, m.zoom_in, m.zoom_out,
                  *self.files.needs_image):
            a.setEnabled(has_image)
        ready = has_image and not generating and not self.session.live.enabled and not self.params_panel.validation_message()
        m.generate.setEnabled(ready)
        self.params_panel.generate_button.setEnabled(ready)
        m.cancel.setEnabled(generating)
        self.live.live_action.setEnabled(has_image and (not generating or self.session.live.enabled))
        m.apply.setEnabled(has_candidates)
        m.discard.setEnabled(has_candidates)

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
            if not self.session.prompt_free(self.model_picker.current_model()):
                self._preload_timer.start()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == COMPARE_KEY and not event.isAutoRepeat() and self.session.candidates is not None:
            self.generation.set_compare(True)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == COMPARE_KEY and not event.isAutoRepeat() and self.generation.comparing:
            self.generation.set_compare(False)
            return
        super().keyReleaseEvent(event)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.WindowDeactivate and self.generation.comparing:
            self.generation.set_compare(False)  # a released key is not seen once focus left
        return super().event(event)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        (event.acceptProposedAction if accepts_drop(event.mimeData()) else event.ignore)()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        (event.acceptProposedAction if self.files.open_mime(event.mimeData()) else event.ignore)()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Quit asks about unsaved work or a running generation first (`CloseGuard`)."""
        if not self.close_guard.may_close():
            event.ignore()
            return
        self.shutdown()
        super().closeEvent(event)

    def force_close(self) -> None:
        """Close without asking about unsaved changes (after the user chose, or in tests)."""
        self.close_guard.confirmed = True
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
