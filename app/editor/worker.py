"""The bridge between the window and the engine: one `GenerationWorker` living on a `QThread`.

Why a dedicated thread object rather than a thread pool: the loaded backend (for a diffusion
model, gigabytes of weights) is cached on the worker and reused by the next run, and torch is
imported there — never on the GUI thread, so start-up stays fast and the window never freezes.

The GUI calls `submit()`; the request crosses to the worker thread through a queued signal; the
worker reports back with `progress`, `finished`, `failed` and `cancelled`, emitted on its own thread
so Qt delivers them queued to GUI receivers. Progress is throttled (≤ 10/s, first and last step
always sent) because a preview QImage per step could flood the GUI event queue on a fast GPU.
Cancellation is a `threading.Event` the engine polls every step.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.inference.engine import Cancelled, EmptyMaskError, Engine, Job, Progress
from app.core.params import CLASSICAL_MODELS, ParamError

#: Seconds between two progress signals (the first and the last step are always sent).
PROGRESS_INTERVAL_S = 0.1

#: Threads that did not stop in time at shutdown; referenced so they are never destroyed running.
_ORPHANS: list = []

BackendFactory = Callable[..., Any]  # (model, device, low_memory, allow_pickle, **options) -> backend


@dataclass(frozen=True)
class WorkRequest:
    """What one run needs besides the job: where the weights come from and how to load them."""

    job: Job
    model: str
    device: str | None = None  # None/"auto" = best available
    low_memory: bool = False
    allow_pickle: bool = False
    safety_checker: bool = False  # off by default for local use (DESIGN.md); a preference turns it on


def default_backend_factory(
    model: str, device: str | None, low_memory: bool, allow_pickle: bool, *, safety_checker: bool = False
) -> Any:
    """Classical methods need no torch; everything else goes through the model loader, whose
    import (and torch's) happens here, on the worker thread."""
    if model in CLASSICAL_MODELS:
        from app.inference.classical import ClassicalBackend

        return ClassicalBackend(model)
    from app.inference.diffusers.loader import load_backend

    return load_backend(model, None if device in (None, "auto") else device, low_memory=low_memory,
                        allow_pickle=allow_pickle, safety_checker=safety_checker)


def describe_error(exc: BaseException) -> tuple[str, str, bool]:
    """(title, message, out_of_memory) for the user. Class names are compared for the inference
    errors so this module never has to import the inference package (and torch) to classify."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc) or type(exc).__name__
    if "GpuOutOfMemory" in names or "OutOfMemoryError" in names or isinstance(exc, MemoryError):
        return (
            "Out of memory",
            f"The device ran out of memory ({text}). Nothing in your image was changed. "
            "Try the low-memory mode, a smaller batch or resolution, or the CPU.",
            True,
        )
    if isinstance(exc, EmptyMaskError):
        return "Nothing to repaint", text, False
    if isinstance(exc, ParamError):
        return "Invalid parameter", text, False
    if "ModelLoadError" in names:
        return "Cannot load the model", text, False
    if "DeviceError" in names:
        return "Device not available", f"{text} Choose Auto or CPU under Device in the Model panel.", False
    if "ImageLoadError" in names:
        return "Cannot read the image", text, False
    if "MaskError" in names:
        return "Mask problem", text, False
    if isinstance(exc, ImportError):
        return (
            "Diffusion support is not installed",
            f"{text}. Install it with: python -m pip install -e \".[diffusion]\" — the classical methods work without it.",
            False,
        )
    return "Generation failed", f"{type(exc).__name__}: {text}", False


class GenerationWorker(QObject):
    """Runs jobs one at a time on its own thread and caches the last backend."""

    #: step, total, eta seconds (−1 unknown), preview RGB8 ndarray or None, region Bounds or None
    progress = Signal(int, int, float, object, object)
    finished = Signal(object)  # app.inference.engine.Result
    failed = Signal(str, str)  # title, message (one line for the user)
    out_of_memory = Signal()  # emitted just before `failed` when low-memory mode may help
    cancelled = Signal()
    status = Signal(str)  # "Loading model…" and such, for the status bar
    backend_ready = Signal(str)  # model reference whose backend is now loaded
    _submit = Signal(object)
    _preload = Signal(object)

    def __init__(self, backend_factory: BackendFactory | None = None) -> None:
        super().__init__()
        self._factory = backend_factory or default_backend_factory
        self._cancel = threading.Event()
        self._busy = threading.Event()
        self._backend: Any = None
        self._backend_key: tuple | None = None
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

    def submit(self, request: WorkRequest) -> bool:
        """Queue a run; False if one is already running (one at a time, by design)."""
        if self._thread is None:
            self.start()
        if self._busy.is_set():
            return False
        self._busy.set()
        self._cancel.clear()
        self._submit.emit(request)
        return True

    def preload(self, model: str, device: str | None = None, low_memory: bool = False, allow_pickle: bool = False,
                safety_checker: bool = False) -> None:
        """Load a backend ahead of the first run (e.g. after the window shows)."""
        if self._thread is None:
            self.start()
        self._preload.emit((model, device, low_memory, allow_pickle, safety_checker))

    def set_backend_factory(self, factory: BackendFactory | None) -> None:
        """Swap how backends are made (tests, benchmarks) and drop the cached one. Call while idle."""
        if self._busy.is_set():
            raise RuntimeError("cannot change the backend factory during a run")
        self._factory = factory or default_backend_factory
        self.release_backend()

    def release_backend(self) -> None:
        """Forget the cached backend so its memory can be freed (the next run loads again)."""
        self._backend, self._backend_key = None, None

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
    def _backend_for(self, model: str, device: str | None, low_memory: bool, allow_pickle: bool, safety: bool = False) -> Any:
        key = (model, device, low_memory, allow_pickle, safety)
        if self._backend_key != key:
            self._backend, self._backend_key = None, None  # release the old weights first
            if model not in CLASSICAL_MODELS:
                self.status.emit(f"Loading model {model}…")
            # The option is passed only when on, so simple 4-argument factories (tests) keep working.
            extra = {"safety_checker": True} if safety else {}
            self._backend = self._factory(model, device, low_memory, allow_pickle, **extra)
            self._backend_key = key
            self.backend_ready.emit(model)
        return self._backend

    @Slot(object)
    def _do_preload(self, args: tuple) -> None:
        if self._busy.is_set():
            return
        try:
            self._backend_for(*args)
            self.status.emit("Model ready")
        except Exception as exc:  # shown when the user generates; a preload must not nag
            self.status.emit(f"Model not loaded: {describe_error(exc)[1]}")

    @Slot(object)
    def _run(self, request: WorkRequest) -> None:
        try:
            backend = self._backend_for(request.model, request.device, request.low_memory, request.allow_pickle,
                                        request.safety_checker)
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

            result = Engine(backend).run(request.job, on_progress, self._cancel.is_set)
        except Cancelled:
            self._busy.clear()
            self.cancelled.emit()
            return
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the window
            title, message, oom = describe_error(exc)
            if oom:
                self._backend, self._backend_key = None, None  # free what we can before a retry
            if title == "Generation failed":
                traceback.print_exc()
            self._busy.clear()
            if oom:
                self.out_of_memory.emit()
            self.failed.emit(title, message)
            return
        self._busy.clear()
        self.finished.emit(result)
