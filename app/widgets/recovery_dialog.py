"""Never-lose-work UI: the "restore your work?" dialog and `install`.

The default button is Restore: after a crash, keeping the work is what almost everyone wants, and
"Later" keeps the file for the next start so nothing is deleted without an explicit Discard.
The dialog is shown non-modally from `install` (``open()``, not ``exec()``) so that a window
built in a test never blocks on it.

`install(window)` turns autosave on for the window's `EditorSession` (which owns the
`RecoveryController`), adds the session's project actions (app/widgets/file_actions.py) to the File
menu and offers pending recoveries once the event loop runs. It sets nothing on the window.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.editor.background_task import BackgroundTask, project_load
from app.editor.recovery_controller import RecoveryController
from app.storage.autosave import Recovery
from app.storage.project import ProjectError
from app.widgets.task_progress import TaskProgressDialog

RESTORE, DISCARD, LATER = "restore", "discard", "later"


def describe(recovery: Recovery) -> tuple[str, bytes | None]:
    """One line for the list (image size, generations, time) and the thumbnail PNG, if readable."""
    when = _dt.datetime.fromtimestamp(recovery.saved_at).strftime("%Y-%m-%d %H:%M")
    try:
        info = recovery.info()
    except ProjectError as exc:
        return f"{when} — damaged ({exc})", None
    source = f" — {Path(info.source_path).name}" if info.source_path else ""
    return f"{when} — {info.width}×{info.height}, {info.generations} generation(s){source}", info.thumbnail_png


class RecoveryDialog(QDialog):
    """Lists recoveries; `choice` is RESTORE, DISCARD or LATER and `selected` the chosen recovery."""

    def __init__(self, recoveries: list[Recovery], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Restore unsaved work?")
        self.recoveries = list(recoveries)
        self.choice = LATER
        self.selected: Recovery | None = self.recoveries[0] if self.recoveries else None

        text = QLabel(
            "Inpaint Studio did not close normally last time. Your work was saved automatically "
            "and can be restored."
        )
        text.setWordWrap(True)
        self.list = QListWidget()
        self.list.setWordWrap(True)  # an entry is a sentence (name, size, time): never cut it off
        self.list.setTextElideMode(Qt.TextElideMode.ElideNone)
        for rec in self.recoveries:
            line, _ = describe(rec)
            item = QListWidgetItem(line)
            item.setToolTip(f"{line}\n{rec.path}")
            item.setData(Qt.ItemDataRole.UserRole, str(rec.path))
            self.list.addItem(item)
        self.list.setMinimumWidth(min(520, max(280, self.list.sizeHintForColumn(0) + 24)))
        self.list.setCurrentRow(0)
        self.list.currentRowChanged.connect(self._on_row)
        self.preview = QLabel()
        self.preview.setFixedSize(256, 256)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.buttons = QDialogButtonBox()
        self.restore_button = QPushButton("Restore")
        self.discard_button = QPushButton("Discard")
        self.later_button = QPushButton("Decide later")
        self.buttons.addButton(self.restore_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(self.discard_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        self.buttons.addButton(self.later_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.restore_button.setDefault(True)
        self.restore_button.clicked.connect(lambda: self._finish(RESTORE))
        self.discard_button.clicked.connect(lambda: self._finish(DISCARD))
        self.later_button.clicked.connect(lambda: self._finish(LATER))

        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addWidget(self.preview)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addLayout(row)
        layout.addWidget(self.buttons)
        self._on_row(0)

    def _on_row(self, row: int) -> None:
        if not 0 <= row < len(self.recoveries):
            return
        self.selected = self.recoveries[row]
        _, thumb = describe(self.selected)
        pix = QPixmap()
        if thumb and pix.loadFromData(thumb, "PNG"):
            self.preview.setPixmap(pix)
        else:
            self.preview.setText("no preview")

    def _finish(self, choice: str) -> None:
        if choice == DISCARD:
            answer = QMessageBox.question(
                self, "Discard recovered work?", "The recovered work will be deleted. This cannot be undone."
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.choice = choice
        (self.reject if choice == LATER else self.accept)()


def _act(parent: QWidget | None, controller: Any, dialog: RecoveryDialog) -> bool:
    rec = dialog.selected
    if rec is None or dialog.choice == LATER:
        return False
    if dialog.choice == DISCARD:
        controller.discard(rec)
        return False
    try:
        controller.restore(rec)
    except ProjectError as exc:
        _cannot_restore(parent, rec, str(exc))
        return False
    return True


def _cannot_restore(parent: QWidget | None, rec: Recovery, text: str) -> None:
    message = f"{text} The file was kept: {rec.path}"
    if hasattr(parent, "show_message"):
        parent.show_message("error", "Cannot restore", message)
    else:
        QMessageBox.warning(parent, "Cannot restore", message)


def _act_in_background(parent: QWidget | None, controller: Any, dialog: RecoveryDialog) -> BackgroundTask | None:
    """`_act`, with the recovery file loaded off the GUI thread (progress dialog, Cancel keeps it)."""
    rec = dialog.selected
    if rec is None or dialog.choice != RESTORE:
        _act(parent, controller, dialog)
        return None
    load = project_load(rec.path, parent)
    load.finished.connect(lambda result: controller.restore(rec, result[0]))
    load.failed.connect(lambda text: _cannot_restore(parent, rec, text))
    TaskProgressDialog(load, parent)
    controller.restoring = load  # kept alive until it ends; tests wait on it
    return load.start()


def offer_recovery(parent: QWidget | None, controller: Any) -> bool:
    """Ask (modally) about pending recoveries, if any, and act on the answer. True if restored.
    A damaged recovery file is reported and kept (the user may want to send it to us)."""
    pending = controller.offer_recovery()
    if not pending:
        return False
    dialog = RecoveryDialog(pending, parent)
    dialog.exec()
    return _act(parent, controller, dialog)


def offer_recovery_later(parent: QWidget | None, controller: Any) -> RecoveryDialog | None:
    """Non-blocking `offer_recovery`: opens the dialog and acts when it closes (a restore loads
    off the GUI thread: a recovery can be a big project)."""
    pending = controller.offer_recovery()
    if not pending:
        return None
    dialog = RecoveryDialog(pending, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.finished.connect(lambda _code: _act_in_background(parent, controller, dialog))
    dialog.open()
    return dialog


def _autosave_failed(window: Any, text: str) -> None:
    window.show_message("warning", "Autosave failed", text)
    window.status.autosave.setToolTip(f"{text}\nA crash now would restore older work; it is retried until it succeeds. "
                                     "Save the project (File ▸ Save Project) to be safe.")
    window.status.autosave.show()


def install(window: Any, *, offer: bool = True, mask_interval_s: float | None = None) -> RecoveryController:
    """Autosave, crash recovery and project files for a main window (idempotent).

    The session owns the controller (``window.session.recovery``); this adds the project actions
    to the File menu, routes restored params and save failures to the window, and offers pending
    recoveries once the event loop runs.
    """
    session = window.session
    if session.recovery is not None:
        return session.recovery
    kwargs = {} if mask_interval_s is None else {"mask_interval_s": mask_interval_s}
    controller = session.install_recovery(window.current_params, **kwargs)
    controller.restored.connect(window.set_params)
    controller.restored.connect(lambda _params: window.status.message.setText(
        "Restored unsaved work — save it as a project (File ▸ Save Project) to keep the mask and history."))
    window.add_file_actions(window.files.project_actions())
    # The autosaver reports one failure once (not per attempt): one message in the bar, no dialog;
    # the status bar keeps saying so until an autosave succeeds (it is retried meanwhile).
    controller.save_failed.connect(lambda text: _autosave_failed(window, text))
    controller.saved.connect(lambda _path: window.status.autosave.hide())
    if offer:
        QTimer.singleShot(0, window, lambda: offer_recovery_later(window, controller))
    return controller
