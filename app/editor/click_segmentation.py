"""Select by click, off the GUI thread: a Qt bridge around `app.inference.segment.ClickSegmenter`.

One worker thread runs everything SAM does (loading the model, the image embedding, each click's
decoder) in order, so a click made while the embedding is computed simply waits behind it and the
window never blocks. Results come back as queued signals on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.core.errors import UserError


class ClickSegmentation(QObject):
    #: (H×W bool mask, token given to `click`)
    mask_ready = Signal(object, object)
    #: one line for the user (no model installed, model broken, …)
    failed = Signal(str)
    #: progress for the status bar ("Preparing select by click…", "Select by click ready")
    status = Signal(str)

    def __init__(self, factory: Callable[[], object] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = factory
        self._segmenter = None
        self._key: str | None = None  # the image key last handed to `prepare`
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam")

    def _get(self):
        if self._segmenter is None:
            if self._factory is None:
                from app.service import segment

                self._factory = segment.ClickSegmenter
            self._segmenter = self._factory()
        return self._segmenter

    def _guarded(self, job: Callable[[], None]) -> Future:
        def run() -> None:
            try:
                job()
            except UserError as exc:
                self.failed.emit(exc.message)
            except Exception as exc:  # a click must never take the window down
                self.failed.emit(f"Select by click failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")

        return self._pool.submit(run)

    def prepare(self, image: np.ndarray, key: str | None = None) -> Future:
        """Compute the embedding of ``image`` (the visible 8-bit image) in the background.
        ``key`` names the image's content (see `Document.image_version`); None hashes the pixels."""
        image = image.copy()
        self._key = key

        def job() -> None:
            self.status.emit("Preparing select by click…")
            try:
                self._get().prepare(image, key)
            except BaseException:
                self._key = None  # the next click prepares again
                raise
            self.status.emit("Select by click ready: click an object")

        return self._guarded(job)

    def click(self, image: np.ndarray, points: list[tuple[float, float, int]], token: object = None, key: str | None = None) -> Future:
        """Segment at ``points`` ((x, y, 1=object/0=background)); answers with `mask_ready`. With
        the ``key`` last prepared, the image is not copied again: the click only runs the decoder."""
        if key is None or key != self._key:
            self.prepare(image, key)
        return self._guarded(lambda: self.mask_ready.emit(self._get().segment(points, key=key), token))

    def run(self, job: Callable[[], np.ndarray], token: object = None) -> Future:
        """Any other slow selection (GrabCut) on the same worker: answers with `mask_ready`."""
        return self._guarded(lambda: self.mask_ready.emit(job(), token))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
