"""Saving the document without freezing the window: copy, write on a pool thread, mark saved.

A 24 MP PNG takes about a second to encode and a project with its history several; on the GUI
thread the window would stop answering meanwhile. A save here copies the document with
`app.editor.snapshot` (a slice per event-loop turn), writes the copy in a `BackgroundTask`
(the writers are atomic: the file on disk is the old one or the new one, whole), and marks the
document saved only if nothing was edited since the copy was taken, so an edit made during the
save stays unsaved, as it should. One save runs at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.errors import UserError
from app.editor.background_task import BackgroundTask
from app.storage.project import ProjectError

Write = Callable[[Any], None]  # writes a `ProjectState` snapshot to disk (pool thread; raises on failure)


class Saver(QObject):
    """Runs the saves of one document; ``started(task)`` lets a window show its progress."""

    started = Signal(object)  # the BackgroundTask writing the file
    saved = Signal(str)  # path, once the file is on disk
    failed = Signal(str, str)  # path, one line for the user

    def __init__(self, document: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.task: BackgroundTask | None = None
        self._active = False  # from `save` until its result is reported
        self._copying = False
        self._watch: _Changes | None = None

    @property
    def busy(self) -> bool:
        """A save was asked for and has not reported yet (``saved`` / ``failed`` end it)."""
        return self._active

    def save(self, path: str | Path, write: Write, *, marks_saved: bool = True,
             on_saved: Callable[[], None] | None = None) -> bool:
        """Start saving to ``path`` with ``write(snapshot)``. After success ``on_saved`` runs on
        the GUI thread unless another document was opened meanwhile, and the document is marked
        saved unless it changed after the snapshot. False (nothing started) while another save is
        under way."""
        if self.busy:
            return False
        self._active = self._copying = True
        self._watch = _Changes(self.document)  # from now: another document opened during the copy counts too
        self.document.snapshots.take(lambda state: self._write(str(path), write, state, marks_saved, on_saved))
        return True

    def wait(self, timeout_s: float = 120.0) -> bool:
        """Finish the save under way, blocking (quitting): False if it is still writing after
        ``timeout_s``. Its result signals arrive with the next event-loop turn."""
        if self._copying:
            self.document.snapshots.finish_now()
        return self.task is None or not self.task.running or self.task.wait(timeout_s)

    def _write(self, path: str, write: Write, state: Any, marks_saved: bool, on_saved: Callable[[], None] | None) -> None:
        self._copying = False
        doc, watch = self.document, self._watch
        watch.edited = False  # the snapshot is the document as it is now

        def run(_progress: Any) -> None:
            try:
                write(state)
            except ProjectError:
                raise  # already one line for the user
            except OSError as exc:  # no folder, no permission, disk full: say which file and why
                raise UserError(f"{Path(path).name}: {exc.strerror or exc}. Check that the folder exists, "
                                "is writable and has free space, or save somewhere else.") from exc
            except ValueError as exc:  # e.g. a format that cannot hold this image
                raise UserError(f"{Path(path).name}: {exc}") from exc

        def failed(message: str) -> None:
            self._active = False
            self.failed.emit(path, message)

        def finished(_result: Any) -> None:
            self._active = False  # before the receivers run: one may save again at once
            if not watch.replaced:
                if marks_saved and not watch.edited:
                    doc.mark_saved()
                if on_saved is not None:
                    on_saved()
            self.saved.emit(path)

        task = BackgroundTask(run, f"Saving {Path(path).name}", self, title="Saving", cancellable=False)
        task.finished.connect(finished)
        task.failed.connect(failed)
        task.ended.connect(watch.close)
        self.task = task
        self.started.emit(task)
        task.start()


class _Changes:
    """Whether a document was edited (its undo index moved) or replaced (``reset``) since a moment."""

    def __init__(self, document: Any) -> None:
        self.document = document
        self.edited = self.replaced = False
        document.undo_stack.indexChanged.connect(self._on_edit)
        document.reset.connect(self._on_reset)

    def _on_edit(self, *_args: Any) -> None:
        self.edited = True

    def _on_reset(self) -> None:
        self.replaced = True

    def close(self) -> None:
        self.document.undo_stack.indexChanged.disconnect(self._on_edit)
        self.document.reset.disconnect(self._on_reset)
