"""A GUI-thread receiver for GenerationWorker signals.

pytest-qt's ``waitSignal`` on a worker-thread signal runs its callback on that thread (Qt then
warns "Timers cannot be stopped from another thread" and waits can hang); a QObject that lives
on the GUI thread gets the signals queued, exactly as the window does.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Slot

from app.editor.worker import GenerationWorker


class Recorder(QObject):
    """Lives on the GUI thread, so the worker's signals reach it queued, as they reach the window."""

    def __init__(self, worker: GenerationWorker):
        super().__init__()
        self.progress, self.finished, self.failed, self.cancelled, self.oom = [], [], [], [], []
        self.threads: set[int] = set()
        worker.progress.connect(self.on_progress)
        worker.finished.connect(self.on_finished)
        worker.failed.connect(self.on_failed)
        worker.cancelled.connect(self.on_cancelled)
        worker.out_of_memory.connect(self.on_oom)

    def _note(self):
        self.threads.add(threading.get_ident())

    @Slot(int, int, float, object, object)
    def on_progress(self, step, total, eta, preview, region):
        self._note()
        self.progress.append((step, total, eta, preview, region))

    @Slot(object)
    def on_finished(self, result):
        self._note()
        self.finished.append(result)

    @Slot(str, str)
    def on_failed(self, title, message):
        self.failed.append((title, message))

    @Slot()
    def on_cancelled(self):
        self.cancelled.append(True)

    @Slot()
    def on_oom(self):
        self.oom.append(True)
