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
from dataclasses import dataclass

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.errors import UserError
from app.core.records import GenerationRecord
from app.inference.engine import Cancelled, Candidate, Job, Progress, Result
from app.inference.errors import GpuOutOfMemory
from app.inference.registry import LoadOptions
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
    finished = Signal(object)  # GenerationRecord (an engine Result for a transitional WorkRequest)
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

    def submit(self, request: GenerationRequest | WorkRequest) -> bool:
        """Queue a run; False if one is already running (one at a time, by design)."""
        if self._thread is None:
            self.start()
        if self._busy.is_set():
            return False
        self._busy.set()
        self._cancel.clear()
        self._submit.emit(request)
        return True

    def preload(self, model_ref: str, options: LoadOptions | str | None = None, *legacy: bool) -> None:
        """Load a backend ahead of the first run (e.g. after the window shows)."""
        if not isinstance(options, LoadOptions):
            options = _legacy_options(options, *legacy)
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
            if self.service.capabilities(model_ref, options).kind != "classical":
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
    def _run(self, submitted: GenerationRequest | WorkRequest) -> None:
        request = submitted.as_request() if isinstance(submitted, WorkRequest) else submitted
        try:
            self.service.check(request)
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
        self.finished.emit(submitted.result_of(record) if isinstance(submitted, WorkRequest) else record)

    def _throttled_progress(self):
        t0 = time.perf_counter()
        last = [0.0]

        def on_progress(p: Progress) -> None:
            now = time.perf_counter()
            final = p.step >= p.total
            if not final and p.step > 0 and now - last[0] < PROGRESS_INTERVAL_S:
                return
            last[0] = now
            elapsed = now - t0
            eta = elapsed / p.step * (p.total - p.step) if p.step > 0 else -1.0
            preview = None if p.preview is None else p.preview.copy()  # the backend may reuse its buffer
            self.progress.emit(int(p.step), int(p.total), float(eta), preview, p.region)

        return on_progress


# -- transitional: the window's submission before it builds GenerationRequests -----------------
# MainWindow still submits a WorkRequest and reads an engine Result; remove this block (and the
# legacy arguments of `preload`) once it submits `GenerationRequest` and reads the record.
@dataclass(frozen=True)
class WorkRequest:
    """Transitional: an engine `Job` plus loose load options, as MainWindow submits them."""

    job: Job
    model: str
    device: str | None = None
    low_memory: bool = False
    allow_pickle: bool = False
    safety_checker: bool = False

    def as_request(self) -> GenerationRequest:
        options = _legacy_options(self.device, self.low_memory, self.allow_pickle, self.safety_checker)
        job = self.job
        return GenerationRequest(job.params.replace(model=self.model), job.image, job.mask, job.context, options)

    def result_of(self, record: GenerationRecord) -> Result:
        candidates = tuple(Candidate(image, seed) for image, seed in zip(record.candidates, record.seeds))
        return Result(self.job, record.params, candidates, tuple(record.regions), record.backend, record.elapsed_s)


def _legacy_options(device: str | None = None, low_memory: bool = False, allow_pickle: bool = False,
                    safety_checker: bool = False) -> LoadOptions:
    return LoadOptions(device=device, low_memory=low_memory, allow_pickle=allow_pickle, safety_checker=safety_checker)
