"""The bridge between the window and the generation service: one `GenerationWorker` on a `QThread`.

The worker only moves work across threads: the GUI calls `submit()` with a `GenerationRequest`,
the request crosses to the worker thread through a queued signal, `GenerationService.run` does
the rest (checking, loading and caching the backend, running, building the record), and the
worker reports back with `progress`, `finished`, `failed` and `cancelled`, emitted on its own
thread so Qt delivers them queued to GUI receivers. torch is imported there, never on the GUI
thread. Progress is throttled (≤ 10/s, first and last step always sent) because a preview per
step could flood the GUI event queue on a fast GPU. Cancellation is a `threading.Event` the
engine polls every step. Failures reach the window as the typed error's title and message.
"""

from __future__ import annotations

import threading
import time
import traceback

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.errors import UserError
from app.service import Cancelled, GpuOutOfMemory, LoadOptions, Progress
from app.service.generation import GenerationRequest, GenerationService, Loader

#: Seconds between two progress signals (the first and the last step are always sent).
PROGRESS_INTERVAL_S = 0.1

#: Threads that did not stop in time at shutdown; referenced so they are never destroyed running.
_ORPHANS: list = []


def error_text(exc: BaseException) -> tuple[str, str]:
    """(title, message) for the user: a `UserError` speaks for itself; anything else is a bug,
    reported with its type so it can be filed."""
    if isinstance(exc, UserError):
        return exc.title, exc.message
    return "Generation failed", f"{type(exc).__name__}: {str(exc) or type(exc).__name__}"


class GenerationWorker(QObject):
    """Runs requests one at a time on its own thread through one `GenerationService`."""

    #: step, total, eta seconds (−1 unknown), preview RGB8 ndarray or None, region Bounds or None
    progress = Signal(int, int, float, object, object)
    finished = Signal(object)  # GenerationRecord
    failed = Signal(str, str)  # title, message (one line for the user)
    out_of_memory = Signal()  # emitted just before `failed` when low-memory mode may help
    cancelled = Signal()
    status = Signal(str)  # "Loading model…" and such, for the status bar
    _submit = Signal(object)
    _preload = Signal(object)

    def __init__(self, service: GenerationService | Loader | None = None) -> None:
        """``service``: the service to run on, or a loader to build one with (tests), or None."""
        super().__init__()
        self.service = service if isinstance(service, GenerationService) else GenerationService(service)
        self._cancel = threading.Event()
        self._busy = threading.Event()
        self._thread: QThread | None = None
        self._submit.connect(self._run)
        self._preload.connect(self._do_preload)

    # -- GUI-thread API ---------------------------------------------------------------------
    def start(self) -> QThread:
        """Create the thread and move onto it. Call once, from the GUI thread."""
        if self._thread is None:
            self._thread = QThread()
            self._thread.setObjectName("generation-worker")
            self.moveToThread(self._thread)
            self._thread.start()
        return self._thread

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def submit(self, request: GenerationRequest) -> bool:
        """Queue a run; False if one is already running (one at a time, by design)."""
        if self._thread is None:
            self.start()
        if self._busy.is_set():
            return False
        self._busy.set()
        self._cancel.clear()
        self._submit.emit(request)
        return True

    def preload(self, model_ref: str, options: LoadOptions = LoadOptions()) -> None:
        """Load a backend ahead of the first run (e.g. after the window shows)."""
        if self._thread is None:
            self.start()
        self._preload.emit((model_ref, options))

    def set_service(self, service: GenerationService | Loader | None) -> None:
        """Swap the service (tests, benchmarks); the old one's backend is released. Call while idle."""
        if self._busy.is_set():
            raise RuntimeError("cannot change the service during a run")
        self.service.release()
        self.service = service if isinstance(service, GenerationService) else GenerationService(service)

    def cancel(self) -> None:
        self._cancel.set()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel any run, stop the thread and wait for it (call before the app quits)."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.quit()
            if not self._thread.wait(timeout_ms):
                # Still loading weights (not cancellable): keep the QThread alive until the process
                # exits, since destroying a running QThread aborts the interpreter.
                _ORPHANS.append((self._thread, self))
            self._thread = None

    # -- worker thread ----------------------------------------------------------------------
    def _load(self, model_ref: str, options: LoadOptions) -> None:
        if not self.service.is_loaded(model_ref, options):
            if not self.service.capabilities(model_ref, options).prompt_free:
                self.status.emit(f"Loading model {model_ref}…")
            self.service.preload(model_ref, options)

    @Slot(object)
    def _do_preload(self, args: tuple[str, LoadOptions]) -> None:
        if self._busy.is_set():
            return
        try:
            self._load(*args)
            self.status.emit("Model ready")
        except Exception as exc:  # shown when the user generates; a preload must not nag
            self.status.emit(f"Model not loaded: {error_text(exc)[1]}")

    @Slot(object)
    def _run(self, request: GenerationRequest) -> None:
        try:
            request = self.service.check(request)
            self._load(request.params.model, request.options)
            record = self.service.run(request, self._throttled_progress(), self._cancel.is_set)
        except Cancelled:
            self._busy.clear()
            self.cancelled.emit()
            return
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the window
            title, message = error_text(exc)
            if not isinstance(exc, UserError):
                traceback.print_exc()
            self._busy.clear()
            if isinstance(exc, GpuOutOfMemory):
                self.out_of_memory.emit()
            self.failed.emit(title, message)
            return
        self._busy.clear()
        self.finished.emit(record)

    def _throttled_progress(self):
        last = [0.0]
        clock = StepClock()

        def on_progress(p: Progress) -> None:
            now = time.perf_counter()
            eta = clock.eta(p.step, p.total, now)
            final = p.step >= p.total
            if not final and p.step > 0 and now - last[0] < PROGRESS_INTERVAL_S:
                return
            last[0] = now
            preview = None if p.preview is None else p.preview.copy()  # the backend may reuse its buffer
            self.progress.emit(int(p.step), int(p.total), float(eta), preview, p.region)

        return on_progress


class StepClock:
    """Seconds left from the pace of the steps after the first: the first step carries the
    warm-up (kernel compilation, memory allocation, offload transfers) and would make the first
    estimates wildly long. Unknown (−1) until a second step has been timed."""

    def __init__(self) -> None:
        self._first: tuple[int, float] | None = None  # (step, time) of the first step seen

    def eta(self, step: int, total: int, now: float) -> float:
        if step <= 0:
            return -1.0
        if self._first is None or step < self._first[0]:  # a new pass (e.g. the next region) restarts
            self._first = (step, now)
        first_step, first_time = self._first
        if step == first_step:
            return -1.0
        return (now - first_time) / (step - first_step) * (total - step)
