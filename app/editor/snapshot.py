"""Consistent copies of the document for writer threads, taken without stalling the window.

Autosave and Save hand the document to a thread that encodes and writes it for a second or more,
while the user keeps painting: arrays are edited in place, so the writer needs its own copy.
Copying a 24 MP image and its mask at once holds the GUI thread 50–200 ms. Instead:

- pixels no edit has changed since the image was opened are the document's read-only
  original (`Document.unchanged_pixels`), shared without a copy; a finished copy of pixels is
  reused until the pixels change again (mask work does not change them);
- any other copy is made one slice (~2 MB, a few ms) per event-loop turn (`SlicedCopy`), and an
  edit to an already-copied part is copied again as its change signal arrives, so the copy
  equals the document at the moment it completes.

Everything here runs on the GUI thread; only the finished `ProjectState` crosses to a writer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QRect, QTimer

if TYPE_CHECKING:
    from app.editor.document import Document

def project_state(doc: Document, params: Any = None, *, copy: bool = True):
    """``doc`` as an ``app.storage.project.ProjectState`` (copies by default: painting edits in
    place; ``copy=False`` shares the arrays, for a `Snapshots` copy to replace)."""
    from app.core.params import GenerationParams
    from app.storage.project import ProjectState

    c = (lambda a: a.copy()) if copy else (lambda a: a)
    return ProjectState(
        original=c(doc.original),
        current=c(doc.pixels),
        mask=c(doc.mask),
        params=params if params is not None else GenerationParams(),
        generations=list(doc.generations),
        icc_profile=doc.icc_profile,
        source_path=doc.path,
        context_box=doc.context_box,
        original_offset=doc.original_offset,
        controls=doc.controls.saved(),
    )


#: Bytes copied per event-loop turn: ~1–5 ms of memcpy and first-touch page faults on a loaded 2-core machine.
SLICE_BYTES = 2 << 20


class SlicedCopy(QObject):
    """A copy of ``source`` made row slices at a time. ``changed`` (a rect signal of the array's
    owner) keeps copied rows current until `stop_listening`, also after ``done(copy)`` was called
    for the last slice, so several copies can complete together as one consistent state."""

    def __init__(self, source: np.ndarray, changed: Any, done: Callable[[], None],
                 slice_bytes: int = SLICE_BYTES, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self.copy = np.empty_like(source)
        self._changed = changed
        self._done = done
        self._rows = 0  # rows [0, _rows) are copied and kept current
        row_bytes = max(1, source.nbytes // max(1, source.shape[0]))
        self._rows_per_slice = max(1, slice_bytes // row_bytes)
        self._listening = False

    def start(self) -> SlicedCopy:
        self._changed.connect(self._on_changed)
        self._listening = True
        self._step()
        return self

    def stop_listening(self) -> None:
        """The source will not change any more, or the copy is taken: stop following it."""
        if self._listening:
            self._changed.disconnect(self._on_changed)
            self._listening = False

    def finish_now(self) -> None:
        """Copy what is left at once (quitting, a caller that must wait)."""
        if not self.finished:
            self._copy_rows(self.source.shape[0])
            self._done()

    @property
    def finished(self) -> bool:
        return self._rows >= self.source.shape[0]

    def _step(self) -> None:
        if self.finished:
            return  # finish_now ran meanwhile
        self._copy_rows(self._rows + self._rows_per_slice)
        if self.finished:
            self._done()
        else:
            QTimer.singleShot(0, self, self._step)  # input and paint events run in between

    def _copy_rows(self, end: int) -> None:
        end = min(end, self.source.shape[0])
        if end > self._rows:
            self.copy[self._rows:end] = self.source[self._rows:end]
            self._rows = end

    def _on_changed(self, rect: QRect) -> None:
        if rect.isEmpty():  # "everything": copy the finished rows again
            self.copy[: self._rows] = self.source[: self._rows]
            return
        y0, y1 = max(0, rect.y()), min(self._rows, rect.y() + rect.height())
        x0, x1 = max(0, rect.x()), rect.x() + rect.width()
        if y1 > y0:
            self.copy[y0:y1, x0:x1] = self.source[y0:y1, x0:x1]


class Snapshots(QObject):
    """Takes `ProjectState` copies of one document for writer threads (autosave, Save).

    `take(done)` calls ``done(state)`` once every copy is complete (before returning when nothing
    large needs copying); the state is the document at that moment. Takes asked for while one is
    under way share it. If the document is replaced meanwhile (``reset``), the take completes as
    the document was just before. ``state.params`` is left to the caller.
    """

    def __init__(self, document: Any, parent: QObject | None = None, *, slice_bytes: int = SLICE_BYTES) -> None:
        super().__init__(parent if parent is not None else document)
        self.document = document
        self.slice_bytes = slice_bytes
        self._cached: tuple[int, np.ndarray] | None = None  # (image_version, a finished pixels copy)
        self._copies: dict[str, SlicedCopy] = {}
        self._shared: tuple[int, np.ndarray] | None = None  # (image_version, pixels used without a copy)
        self._before: Any = None  # the document's other fields when the take began
        self._replaced = False  # the document was replaced during the take
        self._waiting: list[Callable[[Any], None]] = []
        document.reset.connect(self._on_reset)

    @property
    def busy(self) -> bool:
        return bool(self._waiting)

    def take(self, done: Callable[[Any], None], *, now: bool = False) -> None:
        """Copy the document for ``done(state)``; ``now``: finish copying before returning."""
        self._waiting.append(done)
        if len(self._waiting) == 1:
            self._begin()
        if now:
            self.finish_now()

    def finish_now(self) -> None:
        """Complete the take under way at once (blocking)."""
        while self._waiting:
            for sliced in list(self._copies.values()):
                sliced.finish_now()
            self._maybe_finish()  # a pixels change could need one more copy

    def _begin(self) -> None:
        doc = self.document
        self._before = project_state(doc, copy=False)  # the other fields, should the document be replaced
        self._replaced = False
        self._start_pixels()
        self._copies["mask"] = SlicedCopy(doc.mask, doc.mask_changed, self._maybe_finish, self.slice_bytes, self)
        self._copies["mask"].start()

    def _start_pixels(self) -> None:
        doc = self.document
        version = doc.image_version
        shared = doc.unchanged_pixels()
        if shared is None and self._cached is not None and self._cached[0] == version:
            shared = self._cached[1]  # only the mask changed since the last take
        if shared is not None:
            self._shared = (version, shared)
            return
        self._shared = None
        self._copies["pixels"] = SlicedCopy(doc.pixels, doc.image_changed, self._maybe_finish, self.slice_bytes, self)
        self._copies["pixels"].start()

    def _on_reset(self) -> None:
        # The arrays were replaced and the old ones no longer change: a take under way finishes
        # with them, as the document was just before.
        self._cached = None
        if self._waiting:
            self._replaced = True
            for sliced in self._copies.values():
                sliced.stop_listening()

    def _maybe_finish(self) -> None:
        if not self._waiting or "mask" not in self._copies or not all(c.finished for c in self._copies.values()):
            return  # (also while `_begin` is still starting the copies)
        doc = self.document
        if not self._replaced and self._shared is not None and self._shared[0] != doc.image_version:
            self._start_pixels()  # a result was applied while the mask was being copied
            return
        for sliced in self._copies.values():
            sliced.stop_listening()
            sliced.deleteLater()
        state = self._before if self._replaced else project_state(doc, copy=False)
        pixels = self._copies["pixels"].copy if "pixels" in self._copies else self._shared[1]
        if "pixels" in self._copies and not self._replaced:
            self._cached = (doc.image_version, pixels)
        state.current, state.mask = pixels, self._copies["mask"].copy
        self._copies, self._shared, self._before = {}, None, None
        waiting, self._waiting = self._waiting, []
        for done in waiting:
            done(copy.copy(state))  # one state each (a save sets its params), the arrays shared
