"""Drives autosave for a Document and restores a crashed session (model layer: QtCore only).

When it saves, and why:
* after every applied result or new generation (``image_changed`` / ``generations_changed``), a
  short moment later so a burst of signals costs one save: a result can be minutes of GPU time;
* the first change to a freshly opened image ``first_delay_ms`` (default 2.5 s) later, so a crash
  a minute into the work loses at most the last seconds (measured cost: docs/RELIABILITY.md);
* after that, mask or context-box work at most ``mask_interval_s`` (default 120 s) after the first unsaved change:
  the timer is *not* restarted by later strokes, so steady painting is still saved every interval;
* when asked (`autosave_now`), e.g. right after a restore;
* while the last autosave failed (``failing``), again every ``retry_ms`` (default 20 s) until one
  succeeds. The autosaver falls back to a recovery without candidates when the full one fails;
  either way the window shows the failure until a complete save clears it.

The GUI thread only takes the snapshot, a slice per event-loop turn (`app.editor.snapshot`: the
mask, plus the pixels when a result changed them since the last snapshot; the original is
read-only and candidates are never edited, so they are shared); encoding and writing run on the
`Autosaver`'s worker thread. A normal quit (``QCoreApplication.aboutToQuit``) marks a clean exit
and removes the recovery file only when the work is saved (the document is not modified) or the user
chose to discard it (`discard_on_exit`); any other end of the process leaves it for the next start.
Restored work is marked modified: it is on disk only as a recovery file until the user saves it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from app.storage.autosave import Autosaver, Recovery
from app.core.params import GenerationParams
from app.editor.opened_image import PreparedImage
from app.storage.project import ProjectState

DEFAULT_MASK_INTERVAL_S = 120.0
RESULT_DELAY_MS = 300
FIRST_DELAY_MS = 2500
RETRY_MS = 20000


class RecoveryController(QObject):
    """Autosave + recovery for one `app.editor.document.Document`.

    ``params_getter`` returns the current `GenerationParams` (the window's panel); if it
    raises (a half-typed value in the UI), the last good params are saved instead.
    """

    saved = Signal(str)  # path of the recovery file just written (from the worker, queued)
    save_failed = Signal(str)  # user-facing message
    restored = Signal(object)  # GenerationParams of a restored session (connect to set_params)

    def __init__(
        self,
        document: Any,
        params_getter: Callable[[], GenerationParams] | None = None,
        *,
        autosaver: Autosaver | None = None,
        mask_interval_s: float = DEFAULT_MASK_INTERVAL_S,
        result_delay_ms: int = RESULT_DELAY_MS,
        first_delay_ms: int = FIRST_DELAY_MS,
        retry_ms: int = RETRY_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.params_getter = params_getter
        self.autosaver = autosaver or Autosaver(on_saved=self._on_saved, on_error=self._on_error)
        if autosaver is not None:
            autosaver.on_saved = self._on_saved
            autosaver.on_error = self._on_error
        self._last_params = GenerationParams()
        self._dirty = False
        self._closed = False
        self._saved_since_reset = False  # the first change after opening is saved within seconds
        self._discard_on_exit = False
        self.restoring: Any = None  # the background load of a recovery being restored (widgets set it)
        #: Why the last autosave failed (None once a complete one succeeded): the window keeps it visible.
        self.failing: str | None = None

        self._first_timer = QTimer(self)
        self._first_timer.setSingleShot(True)
        self._first_timer.setInterval(int(first_delay_ms))
        self._first_timer.timeout.connect(self.autosave_now)
        self._mask_timer = QTimer(self)
        self._mask_timer.setSingleShot(True)
        self._mask_timer.setInterval(int(mask_interval_s * 1000))
        self._mask_timer.timeout.connect(self.autosave_now)
        self._result_timer = QTimer(self)
        self._result_timer.setSingleShot(True)
        self._result_timer.setInterval(int(result_delay_ms))
        self._result_timer.timeout.connect(self.autosave_now)
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.setInterval(int(retry_ms))
        self._retry_timer.timeout.connect(self.autosave_now)
        self._timers = (self._first_timer, self._mask_timer, self._result_timer, self._retry_timer)

        self.saved.connect(self._note_saved)
        self.save_failed.connect(self._note_failed)
        self._generation_ids = self._current_generation_ids()
        document.image_changed.connect(self.notify_result)
        document.generations_changed.connect(self._on_generations)
        document.mask_changed.connect(self._on_mask_work)
        document.context_box_changed.connect(self._on_mask_work)
        document.reset.connect(self._on_reset)
        self._controls = getattr(document, "controls", None)  # control layers: painted or set up like the mask
        if self._controls is not None:
            self._controls.changed.connect(self._on_mask_work)
            self._controls.image_changed.connect(self._on_mask_work)

    # -- configuration -------------------------------------------------------------------------
    @property
    def mask_interval_s(self) -> float:
        return self._mask_timer.interval() / 1000.0

    @mask_interval_s.setter
    def mask_interval_s(self, seconds: float) -> None:
        self._mask_timer.setInterval(int(seconds * 1000))

    def attach(self) -> RecoveryController:
        """Wire into the application: a normal quit is a clean exit."""
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_quit)
        return self

    def discard_on_exit(self) -> None:
        """The user chose to quit without saving: the recovery file goes with the session."""
        self._discard_on_exit = True

    def _on_quit(self) -> None:
        """A normal quit deletes the recovery file only if nothing would be lost by it."""
        self.shutdown(clean=self._discard_on_exit or self.document.is_empty or not self.document.modified)

    # -- triggers --------------------------------------------------------------------------------
    def notify_result(self, *_: Any) -> None:
        """A result was applied (or its ``applied`` index set): save soon."""
        self._dirty = True
        if not self._closed:
            self._result_timer.start()

    def _current_generation_ids(self) -> tuple[int, ...]:
        return tuple(id(g) for g in getattr(self.document, "generations", []))

    def _on_generations(self) -> None:
        """New or removed generations are work; the re-emit after opening an image is not."""
        ids = self._current_generation_ids()
        if ids != self._generation_ids:
            self._generation_ids = ids
            if ids:
                self.notify_result()

    def _on_reset(self) -> None:
        """A freshly opened image or project is already on disk: nothing to save until work starts."""
        self._generation_ids = self._current_generation_ids()
        self._saved_since_reset = False
        self._first_timer.stop()

    def _on_mask_work(self, *_: Any) -> None:
        self._dirty = True
        if self._closed:
            return
        if not self._saved_since_reset and not self._first_timer.isActive():
            self._first_timer.start()
        if not self._mask_timer.isActive():
            self._mask_timer.start()

    @property
    def dirty(self) -> bool:
        """Work since the last snapshot that is not yet queued for saving."""
        return self._dirty

    # -- saving --------------------------------------------------------------------------------
    def last_good_params(self) -> GenerationParams:
        """The UI's params if they validate, else the last ones that did (a project must reopen)."""
        if self.params_getter is not None:
            try:
                params = self.params_getter()
                if isinstance(params, GenerationParams):
                    self._last_params = params.validate()
            except Exception:  # a half-typed field in the UI must never stop the autosave
                pass
        return self._last_params

    _params = last_good_params

    def autosave_now(self, *, wait: bool = False) -> bool:
        """Queue a snapshot for writing (``wait``: copy at once and block until it is on disk).
        False if nothing to save."""
        for timer in self._timers:
            timer.stop()
        if self._closed or self.document.is_empty:
            return False
        self._dirty = False
        self._saved_since_reset = True
        self.document.snapshots.take(self._write, now=wait)
        if self.failing is not None:
            self._retry_timer.start()  # stopped by the first save that succeeds
        if wait:
            self.autosaver.flush()
        return True

    def _write(self, state: ProjectState) -> None:
        """The snapshot is complete: hand it to the worker thread."""
        if not self._closed:
            state.params = self._params()
            self.autosaver.save_async(state)

    def _on_saved(self, path: Any) -> None:  # worker thread: the signal is queued to the GUI thread
        self.saved.emit(str(path))

    def _on_error(self, message: str) -> None:  # worker thread, queued like `_on_saved`
        self.save_failed.emit(message)

    def _note_saved(self, _path: str) -> None:
        self.failing = None
        self._retry_timer.stop()

    def _note_failed(self, message: str) -> None:
        self.failing = message
        if not self._closed:
            self._retry_timer.start()

    # -- recovery ----------------------------------------------------------------------------------
    def offer_recovery(self) -> list[Recovery]:
        """Recovery files of sessions that did not exit cleanly, newest first."""
        return self.autosaver.pending_recoveries()

    def restore(self, recovery: Recovery, state: ProjectState | PreparedImage | None = None) -> ProjectState:
        """Load ``recovery`` into the document (raises `ProjectError` if it is damaged, leaving the
        document and the file untouched; ``state``: already loaded, and prepared, off the GUI
        thread), emit `restored` with its params and save it to this session's slot at once; the
        old file is deleted only after that save succeeded. The document stays modified until the
        user saves it, so quitting asks first."""
        prepared = state if isinstance(state, PreparedImage) else None
        state = self.autosaver.adopt(recovery, prepared.loaded if prepared is not None else state)
        self.document.load_state(prepared if prepared is not None else state)
        self.document.undo_stack.resetClean()  # no state of the stack is on disk as a real file
        self._last_params = state.params
        self.restored.emit(state.params)
        self.autosave_now()
        return state

    def discard(self, recovery: Recovery) -> None:
        self.autosaver.discard(recovery)

    # -- end of session ------------------------------------------------------------------------------
    def shutdown(self, clean: bool = True) -> None:
        """Stop autosaving. ``clean`` (a normal quit) deletes the recovery file; otherwise the
        pending work is written first and kept for the next start."""
        if self._closed:
            return
        if not clean and self._dirty:
            self.autosave_now()
        if not clean:
            self.document.snapshots.finish_now()  # a snapshot under way is written before closing
        self._closed = True
        for timer in self._timers:
            timer.stop()
        with contextlib.suppress(Exception):
            self.document.image_changed.disconnect(self.notify_result)
            self.document.generations_changed.disconnect(self._on_generations)
            self.document.mask_changed.disconnect(self._on_mask_work)
            self.document.context_box_changed.disconnect(self._on_mask_work)
            self.document.reset.disconnect(self._on_reset)
            if self._controls is not None:
                self._controls.changed.disconnect(self._on_mask_work)
                self._controls.image_changed.disconnect(self._on_mask_work)
        self.autosaver.close(clean=clean)
