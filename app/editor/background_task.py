"""File work that can take seconds (opening big images, projects, recoveries; saving) on a pool
thread, with progress and, for loads, Cancel.

A project with many generations, or a hostile one at the caps, decodes for seconds, and a 24 MP
PNG takes a second to encode: on the GUI thread the window would freeze with no way out.
`BackgroundTask` runs a function on `QThreadPool.globalInstance()` and reports through queued
signals, so the window keeps answering input; the dialog that shows it lives in
`app.widgets.task_progress`. Cancel is cooperative: the function's ``progress`` callback raises
`LoadCancelled` at the next image, and a result that arrives after Cancel is dropped. A save
cannot be cancelled (``cancellable`` False): its atomic write either lands whole or not at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from app.core import imageio
from app.core.errors import UserError
from app.editor.opened_image import PreparedImage, prepare_image, prepare_state
from app.storage.project import LoadCancelled, ProjectError, load_project

TaskFunction = Callable[[Callable[[int, int], None]], Any]


class _Task(QRunnable):
    def __init__(self, job: Callable[[], None]) -> None:
        super().__init__()
        self.job = job
        self.setAutoDelete(True)

    def run(self) -> None:
        self.job()


class BackgroundTask(QObject):
    """One task: call `start`; exactly one of ``finished``, ``failed``, ``cancelled`` follows."""

    progress = Signal(int, int)  # done, total
    finished = Signal(object)  # what the function returned
    failed = Signal(str)  # one line for the user
    cancelled = Signal()
    ended = Signal()  # after any of the three, once its receivers ran (``running`` is then False)

    def __init__(self, function: TaskFunction, description: str, parent: QObject | None = None, *,
                 title: str = "Opening", cancellable: bool = True) -> None:
        super().__init__(parent)
        self.function = function
        self.description = description  # "Opening photo.inpaint", for the progress dialog
        self.title = title  # the dialog's window title
        self.cancellable = cancellable
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._result_sent = False
        self.running = False
        self.ended.connect(self._on_ended)

    def _on_ended(self) -> None:
        self.running = False

    def start(self) -> BackgroundTask:
        self.running = True
        QThreadPool.globalInstance().start(_Task(self._run))
        return self

    def cancel(self) -> None:
        """Stop at the next image; ``cancelled`` is emitted once the thread has let go. A task
        that is not ``cancellable`` (a save) runs on."""
        if self.cancellable:
            self._cancel.set()

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Block until the pool thread is done (tests, quitting); False on timeout."""
        return self._done.wait(timeout_s)

    def _report(self, done: int, total: int) -> None:
        if self._cancel.is_set():
            raise LoadCancelled
        self.progress.emit(done, total)

    def _run(self) -> None:  # pool thread: signals are queued to the GUI thread
        try:
            result = self.function(self._report)
        except LoadCancelled:
            self._emit(self.cancelled)
        except (ProjectError, UserError) as exc:  # a message written for the user
            self._emit(self.failed, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bad file must never take the app down
            self._emit(self.failed, f"{self.description} failed ({type(exc).__name__}: {exc}).")
        else:
            self._emit(self.cancelled) if self._cancel.is_set() else self._emit(self.finished, result)
        finally:
            self._done.set()

    def _emit(self, signal, *args: Any) -> None:
        signal.emit(*args)
        self.ended.emit()  # queued after the result: receivers of both run in this order


def project_load(path: str | Path, parent: QObject | None = None,
                 view: Callable[[PreparedImage], Any] | None = None) -> BackgroundTask:
    """A `BackgroundTask` of the project at ``path`` (not started), made ready for the document
    there too (`prepare_state`); ``view`` and the result as for `image_load`."""
    def load(progress) -> tuple[PreparedImage, Any]:
        prepared = prepare_state(load_project(path, progress), owned=True)
        return prepared, (view(prepared) if view is not None else None)

    return BackgroundTask(load, f"Opening {Path(path).name}", parent)


def image_load(path: str | Path, parent: QObject | None = None,
               view: Callable[[PreparedImage], Any] | None = None) -> BackgroundTask:
    """A `BackgroundTask` of the image at ``path`` (not started), made ready for the document on
    the pool thread too (`prepare_image`: decoding a 24 MP JPEG takes ~0.5 s, a 16-bit TIFF
    seconds, and the copies another 0.1–0.3 s). ``view(prepared)``, if given, also runs there (the
    canvas builds what its first paint draws). Result: ``(prepared, view's result or None)``. No
    progress steps: the dialog shows a busy bar, and Cancel drops the result."""
    def load(_progress) -> tuple[PreparedImage, Any]:
        prepared = prepare_image(imageio.load_image(path))
        return prepared, (view(prepared) if view is not None else None)

    return BackgroundTask(load, f"Opening {Path(path).name}", parent)
