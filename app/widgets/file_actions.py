"""File actions of the window: open (dialog, recent, drop, paste), save the result, masks, projects.

Each action asks its question (a file dialog), calls the `EditorSession`, and reports failure in
the window's message bar; the document is never left half-changed. Opening over unsaved work asks
Save / Discard / Cancel first (`ask_unsaved`); projects and images of 1 MP or more load off the
GUI thread with a progress dialog and Cancel (`app.editor.background_task`), and every save writes
off it (`app.editor.saving`). Save (Ctrl+S) saves an open project as the project, otherwise the
result image. What it uses (dialog parent, status line, message bar, recall, the parameter form a
project saves and restores) comes as constructor arguments.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
import numpy as np
from PySide6.QtCore import QMimeData, QObject, Qt, QUrl, SignalInstance
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from app.core import imageio
from app.core.overwrite import overwrite_refusal
from app.core.params import GenerationParams
from app.editor.background_task import BackgroundTask, image_load, project_load
from app.editor.opened_image import PreparedImage
from app.editor.qimage import qimage_to_array
from app.editor.session import EditorSession
from app.editor.settings import Settings
from app.widgets.canvas import CanvasView
from app.widgets.messages import MessageBar
from app.widgets.params_recall import ParamsRecall
from app.widgets.window_status import WindowStatus
from app.widgets.task_progress import TaskProgressDialog
from app.storage.project import PROJECT_SUFFIX, is_project_file


IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp);;All files (*)"
OPEN_FILTER = "Images and projects (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp *.inpaint);;" + IMAGE_FILTER
SAVE_FILTER = "PNG with parameters (*.png);;TIFF (*.tif *.tiff);;JPEG (*.jpg *.jpeg);;WebP (*.webp)"
PROJECT_FILTER = f"Inpaint Studio project (*{PROJECT_SUFFIX})"
#: Images at least this large (from the header) decode on a pool thread: a 2 MP PNG takes ~40 ms
#: to decode and prepare on an idle 2-core machine, a 4 MP one ~110 ms, past the window's 50 ms
#: budget. Smaller ones open at once, so a quick open stays synchronous.
BACKGROUND_OPEN_PIXELS = 1_000_000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


def dropped_paths(mime: QMimeData) -> list[str]:
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


def accepts_drop(mime: QMimeData) -> bool:
    return mime.hasImage() or any(Path(p).suffix.lower() in IMAGE_SUFFIXES or Path(p).is_file() for p in dropped_paths(mime))


class FileActions(QObject):
    """Opening and saving for one window and its session. ``window`` parents the dialogs;
    ``document_opened`` is emitted with the path ("" for pasted data) after an open;
    ``current_params`` / ``set_params`` read and fill the form a project saves and restores."""

    def __init__(self, window: QWidget, session: EditorSession, settings: Settings, *, canvas: CanvasView,
                 status: WindowStatus, messages: MessageBar, recall: ParamsRecall, document_opened: SignalInstance,
                 current_params: Callable[[], GenerationParams], set_params: Callable[[GenerationParams], None]) -> None:
        super().__init__(window)
        self.window, self.session, self.settings = window, session, settings
        self.canvas, self.status, self.messages, self.recall = canvas, status, messages, recall
        self.document_opened = document_opened
        self.current_params, self.set_params = current_params, set_params
        self.recent_menu: QMenu | None = None
        self.loading: BackgroundTask | None = None  # the image or project load in progress
        self.question: QMessageBox | None = None  # the open "unsaved changes" question
        self.refusal: QMessageBox | None = None  # the open "choose another name" warning
        self.needs_image: list[QAction] = []  # project actions that need an open image
        self._save_report: tuple[str, str, Callable[[], None] | None] = ("Cannot save", "Saved", None)
        saver = self.session.saver
        saver.started.connect(lambda task: TaskProgressDialog(task, self.window))
        saver.saved.connect(self._saved)
        saver.failed.connect(self._save_failed)

    def ask_unsaved(self, text: str, proceed: Callable[[], None], *, quitting: bool = False) -> bool:
        """Run ``proceed`` now if nothing is unsaved (returns True); else ask Save / Discard /
        Cancel without blocking and run it after Save succeeded or Discard (returns False).
        ``quitting``: Discard also deletes this session's recovery file. When the unsaved work is
        a mask, history or candidates, Save is "Save Project…": a result image would not hold it."""
        if not self.session.has_unsaved_work:
            proceed()
            return True
        if self.question is not None:
            self.question.raise_()
            return False
        buttons = QMessageBox.StandardButton
        as_project = self.session.unsaved_needs_project()
        if as_project and not self.session.project_path:
            text += "\n\nThe mask, the generation history and the candidates are kept only in a project file."
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes", text, buttons.Save | buttons.Discard | buttons.Cancel, self.window)
        box.setDefaultButton(buttons.Save)
        if as_project:
            box.button(buttons.Save).setText("Save Project" if self.session.project_path else "Save Project…")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(_code: int) -> None:
            self.question = None
            button = box.standardButton(box.clickedButton()) if box.clickedButton() else buttons.Cancel
            if button == buttons.Save:
                # proceeds once the file is on disk; a failure (or a cancelled file dialog) stops here
                self.save(then=proceed, project=as_project)
                return
            if button == buttons.Discard and quitting and self.session.recovery is not None:
                self.session.recovery.discard_on_exit()
            if button == buttons.Discard:
                proceed()

        box.finished.connect(answered)
        self.question = box
        box.open()
        return False

    @property
    def document(self):
        return self.session.document

    def _status(self, text: str) -> None:
        self.status.message.setText(text)

    # -- opening -----------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open image", self.settings.last_dir(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> bool:
        """Open an image or a project file (after asking, if the open work is unsaved: then False
        until answered). A project loads in the background: True means the load started. On
        failure the message bar says why and the document is unchanged."""
        path = str(path)
        opened: list[bool] = []
        name = self.session.display_name or "The image"
        self.ask_unsaved(f"{name} has changes that are not saved. Save them before opening {Path(path).name}?",
                         lambda: opened.append(self._open_now(path)))
        return bool(opened and opened[0])

    def _open_now(self, path: str) -> bool:
        if is_project_file(path):
            return self.open_project(path)
        if imageio.header_pixels(path) >= BACKGROUND_OPEN_PIXELS:  # decoded and prepared on a pool thread
            return self._load_in_background(image_load, path, "Cannot open the image", self._image_loaded)
        try:
            loaded = imageio.load_image(path)
        except imageio.ImageLoadError as exc:
            self.messages.show_message("error", "Cannot open the image", str(exc))
            return False
        self._image_loaded(path, loaded)
        return True

    def _load_in_background(self, task, path: str, failure_title: str, done: Callable[[str, PreparedImage], None]) -> bool:
        """Start ``task(path, parent, view)`` (`image_load`, `project_load`) with the progress
        dialog (after a moment) and Cancel. The canvas's first-paint levels are built on the pool
        thread too; ``done(path, prepared)`` on success, one message on failure; the open work
        stays as it is until then."""
        self.cancel_loading()
        canvas = self.canvas
        load = task(path, self, view=canvas.prepare_levels())

        def loaded(result) -> None:
            prepared, levels = result
            canvas.offer_levels(levels)
            done(path, prepared)

        load.finished.connect(loaded)
        load.failed.connect(lambda text: self.messages.show_message("error", failure_title, text))
        load.cancelled.connect(lambda: self._status(f"Opening {Path(path).name} was cancelled; the open image is unchanged."))
        self.loading = load
        TaskProgressDialog(load, self.window)
        load.start()
        return True

    def _image_loaded(self, path: str, loaded: imageio.LoadedImage | PreparedImage) -> None:
        self._opened(loaded, path)
        self._remember(path)

    def _remember(self, path: str) -> None:
        """Add an opened file to the recent list and the start folder of the next dialog."""
        recent = self.settings.add_recent_file(path)
        self.settings.set_last_dir(str(Path(path).resolve().parent))
        self.fill_recent_menu(recent)

    def open_image_array(self, pixels: np.ndarray, name: str = "Pasted image") -> bool:
        """Open pixels that have no file (clipboard, dropped image data), after asking if unsaved."""
        return self.ask_unsaved("The image has changes that are not saved. Save them before opening the pasted image?",
                                lambda: self._opened(imageio.LoadedImage(np.ascontiguousarray(pixels)), None, name))

    def _opened(self, loaded: imageio.LoadedImage | PreparedImage, path: str | None, name: str | None = None) -> None:
        self.messages.dismiss()
        self.session.open_image(loaded, path, name)
        info = loaded.info  # a dict on both kinds
        notes = "; ".join(str(info[k]) for k in ("converted", "note") if info.get(k))  # e.g. "only the first of 3 frames/pages is used"
        self._status(f"Opened {self.session.display_name}" + (f" ({notes})" if notes else "") + " — paint the area to repaint.")
        recalled = info.get("recall")
        if recalled is not None:
            self.recall.offer(recalled, path)
        self.document_opened.emit(path or "")

    def fill_recent_menu(self, files: list[str] | None = None) -> None:
        menu = self.recent_menu
        if menu is None:
            return
        files = self.settings.recent_files() if files is None else files
        menu.clear()
        for i, f in enumerate(files):
            a = menu.addAction(f"&{i + 1}  {Path(f).name}")
            a.setToolTip(f)
            a.setStatusTip(f)
            a.triggered.connect(lambda _c=False, p=f: self.open_path(p))
        menu.setEnabled(bool(files))
        if files:
            menu.addSeparator()
            menu.addAction("Clear List", lambda: (self.settings.clear_recent_files(), self.fill_recent_menu([])))

    def open_mime(self, mime: QMimeData) -> bool:
        """Open what a drop or the clipboard carries: a file URL first, else image data."""
        paths = dropped_paths(mime)
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
        self.messages.show_message("warning", "Nothing to paste", "The clipboard holds no image or image file.")
        return False

    def paste(self) -> bool:
        return self.open_mime(QGuiApplication.clipboard().mimeData())

    def copy_image(self) -> bool:
        if self.document.is_empty:
            return False
        rgba = self.document.display_rgba8()
        image = QImage(rgba.data, rgba.shape[1], rgba.shape[0], rgba.strides[0], QImage.Format.Format_RGBA8888).copy()
        QGuiApplication.clipboard().setImage(image)
        self._status("Image copied to the clipboard.")
        return True

    # -- saving: off the GUI thread (`app.editor.saving`); the result arrives in `_saved` / `_save_failed`
    def save(self, then: Callable[[], None] | None = None, *, project: bool = False) -> bool:
        """Save the work where it came from: an open project as the project, else the result image
        (asking where the first time; ``project``: as a project instead). ``then`` runs once the
        file is on disk. True if a save started."""
        if self.session.project_path:
            return self.save_project_to(self.session.project_path, then)
        if project:
            return self.save_project_as_dialog(then)
        if self.session.save_path:
            return self.save_result(self.session.save_path, then)
        path = self._ask_result_path()
        return bool(path) and self.save_result(path, then)

    def save_as_dialog(self) -> None:
        path = self._ask_result_path()
        if path:
            self.save_result(path)

    def _ask_result_path(self) -> str | None:
        doc = self.document
        if doc.is_empty:
            return None
        base = Path(doc.path).with_name(Path(doc.path).stem + "-inpainted.png") if doc.path else Path(self.settings.last_dir()) / "result.png"
        path, _ = QFileDialog.getSaveFileName(self.window, "Save result as", str(base), SAVE_FILTER)
        return (path if Path(path).suffix else path + ".png") if path else None

    def _refused(self, path: str | Path, choose_again: Callable[[], object]) -> bool:
        """True (and the user is asked for another name) if saving to ``path`` would replace
        something the user would lose: a read-only file, a link, the opened original
        (`app.core.overwrite`, the rules the CLI keeps too)."""
        reason = overwrite_refusal(path, [self.document.path])
        if reason is None:
            return False
        buttons = QMessageBox.StandardButton
        box = QMessageBox(QMessageBox.Icon.Warning, "Not saved", f"{Path(path).name} {reason}.\n\nChoose another name to save your work.",
                          buttons.Save | buttons.Cancel, self.window)
        box.button(buttons.Save).setText("Choose Another Name…")
        box.setDefaultButton(buttons.Save)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(_code: int) -> None:
            self.refusal = None
            if box.clickedButton() is box.button(buttons.Save):
                choose_again()

        box.finished.connect(answered)
        self.refusal = box
        self._status(f"Not saved: {Path(path).name} {reason}.")
        box.open()
        return True

    def save_result(self, path: str | Path, then: Callable[[], None] | None = None) -> bool:
        """Start writing the current image (with the applied candidate's parameters) atomically;
        a target that must not be replaced asks for another name instead."""
        if self.document.is_empty:
            return False
        if self._refused(path, lambda: (p := self._ask_result_path()) and self.save_result(p, then)):
            return False
        name = Path(path).name
        return self._saving(self.session.save_result(path), "Cannot save", f"Saving {name}…", f"Saved {name}", then)

    def save_project_to(self, path: str | Path, then: Callable[[], None] | None = None) -> bool:
        """Start saving the whole session (image, mask, context box, history, params) atomically;
        a target that must not be replaced asks for another name instead."""
        if self.document.is_empty:
            return False
        if self._refused(path, lambda: self.save_project_as_dialog(then)):
            return False
        name = Path(path).name
        return self._saving(self.session.save_project(path, self.current_params()), "Cannot save the project",
                            f"Saving project {name}…", f"Saved project {name}", then)

    def export_mask_dialog(self) -> None:
        if self.document.is_empty:
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Export mask", str(Path(self.settings.last_dir()) / "mask.png"), "PNG (*.png)")
        if path:
            self.export_mask(path)

    def export_mask(self, path: str | Path) -> bool:
        if self.document.is_empty:
            return False
        return self._saving(self.session.export_mask(path), "Cannot export the mask", "Exporting the mask…",
                            f"Mask exported to {Path(path).name}")

    def _saving(self, started: bool, failure_title: str, busy_text: str, done_text: str,
                then: Callable[[], None] | None = None) -> bool:
        """Report a save the session started (``started``), or why none did."""
        if not started:
            self._status("A save is under way; try again when it has finished.")
            return False
        self._save_report = (failure_title, done_text, then)
        self._status(busy_text)
        return True

    def _saved(self, _path: str) -> None:
        _title, done_text, then = self._save_report
        self._status(done_text)
        if then is not None:
            then()

    def _save_failed(self, path: str, message: str) -> None:
        title, _done, _then = self._save_report  # what was to follow the save does not happen
        self._status(f"{title}: nothing was written; the work is unchanged.")  # not a stale "Saving…"
        self.messages.show_message("error", title, message)

    def import_mask_dialog(self) -> None:
        if self.document.is_empty:
            return
        path, _ = QFileDialog.getOpenFileName(self.window, "Import mask", self.settings.last_dir(), IMAGE_FILTER)
        if path:
            self.import_mask(path)

    def import_mask(self, path: str | Path) -> bool:
        try:
            self.document.set_mask(imageio.load_mask(path, self.document.mask.shape), "Import mask")
        except ValueError as exc:  # ImageLoadError and MaskError are ValueErrors
            self.messages.show_message("error", "Cannot import the mask", str(exc))
            return False
        return True

    # -- projects ----------------------------------------------------------------------------------
    def open_project(self, path: str | Path) -> bool:
        """Start loading a project off the GUI thread (progress dialog after a moment, Cancel); it
        replaces the document when loaded. On failure say why and leave the document as it was."""
        return self._load_in_background(project_load, str(path), "Cannot open the project", self._project_loaded)

    def _project_loaded(self, path: str, prepared: PreparedImage) -> None:
        self.messages.dismiss()
        state = self.session.open_project(path, prepared)
        self.set_params(state.params)
        self._remember(path)
        self._status(f"Opened project {Path(path).name}: {len(state.generations)} generation(s); Ctrl+S saves the project.")
        self.document_opened.emit(path)

    def cancel_loading(self, wait_s: float = 0.0) -> None:
        """Cancel a project load in progress (``wait_s``: and wait for its thread, when quitting)."""
        if self.loading is not None and self.loading.running:
            self.loading.cancel()
            if wait_s:
                self.loading.wait(wait_s)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open project", "", PROJECT_FILTER)
        if path:
            self.open_path(path)

    def save_project_as_dialog(self, then: Callable[[], None] | None = None) -> bool:
        doc = self.document
        if doc.is_empty:
            return False
        start = self.session.project_path or (str(Path(doc.path).with_suffix(PROJECT_SUFFIX)) if doc.path else "untitled" + PROJECT_SUFFIX)
        path, _ = QFileDialog.getSaveFileName(self.window, "Save project as", start, PROJECT_FILTER)
        if not path:
            return False
        return self.save_project_to(path if path.endswith(PROJECT_SUFFIX) else path + PROJECT_SUFFIX, then)

    def save_project(self) -> bool:
        path = self.session.project_path
        return self.save_project_to(path) if path else self.save_project_as_dialog()

    def project_actions(self) -> list[QAction]:
        """Open Project…, Save Project, Save Project As… for the File menu."""
        open_action = QAction("Open &Project…", self.window)
        open_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
        open_action.triggered.connect(self.open_project_dialog)
        save_action = QAction("Save Pro&ject", self.window)
        save_action.setShortcut(QKeySequence("Ctrl+Alt+S"))
        save_action.setToolTip("Save image, mask, history and parameters in one file")
        save_action.triggered.connect(self.save_project)
        save_as_action = QAction("Save Project &As…", self.window)
        save_as_action.triggered.connect(lambda: self.save_project_as_dialog())
        self.needs_image = [save_action, save_as_action]  # the window disables them with no image open
        for a in self.needs_image:
            a.setEnabled(not self.document.is_empty)
        return [open_action, save_action, save_as_action]
