"""The progress dialog of a `app.editor.background_task.BackgroundTask`: shown only when the task
takes longer than a moment, with a Cancel button for loads; window-modal so the document cannot
change under a load or a save, while the window keeps repainting and answering."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QProgressDialog, QWidget

from app.editor.background_task import BackgroundTask

SHOW_AFTER_MS = 400


class TaskProgressDialog(QProgressDialog):
    """Follows ``load``'s progress; Cancel cancels it; closes itself when the task ends."""

    def __init__(self, load: BackgroundTask, parent: QWidget | None = None) -> None:
        super().__init__(load.description + "…", "Cancel", 0, 0, parent)
        self.setWindowTitle(load.title)
        if not load.cancellable:
            self.setCancelButton(None)  # an empty label would still show an empty button
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setMinimumDuration(SHOW_AFTER_MS)
        self.setAutoClose(False)
        self.setAutoReset(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.load = load
        load.progress.connect(self._on_progress)
        for ended in (load.finished, load.failed, load.cancelled):
            ended.connect(self._end)
        self.canceled.connect(load.cancel)
        self.setValue(0)  # starts the minimum-duration clock

    def _on_progress(self, done: int, total: int) -> None:
        self.setMaximum(total)
        self.setValue(min(done, total))
        self.setLabelText(f"{self.load.description}: image {done} of {total}…")

    def _end(self, *_args) -> None:
        self.canceled.disconnect(self.load.cancel)
        self.close()
