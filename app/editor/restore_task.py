"""The editor's side of a restoration run (upscale, restore faces, denoise, colourise): choose,
run off the GUI thread with progress and Cancel, review, then apply as ONE undo step.

The run goes through `app.service.restoration.RestorationService` (the same path as the CLI and
the server) on a pool thread (`BackgroundTask`), on a snapshot of the document, so the window
never freezes and painting goes on meanwhile. The result is reviewed before it touches the
document, like a generation's candidates: `RestoreRunner.apply` then makes it one undo step (the
changed tiles for a same-size result; the whole canvas, mask and context box for an upscale, like
Expand canvas). A result made from pixels that have changed since is refused, never applied over
them. QtCore only: a test drives a run without a window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal

from app.core import maskops
from app.core.errors import UserError
from app.core.geometry import Bounds
from app.editor.background_task import BackgroundTask
from app.editor.canvas_delta import PackedArray
from app.editor.document import Document
from app.editor.restore_preview import compare_pair, focus_of
from app.service import Cancelled, ModelLoadError
from app.service.restoration import OPERATIONS, RestorationRequest, RestorationService
from app.storage.project import LoadCancelled

UPSCALE, FACES, DENOISE, COLORIZE = "upscale", "restore-faces", "denoise", "colorize"
#: Menu order and names. Colourise runs once the service knows the operation (`OPERATIONS`):
#: until then `available` says no and the window shows why.
LABELS = {UPSCALE: "Upscale", FACES: "Restore faces", DENOISE: "Denoise", COLORIZE: "Colourise"}
UPSCALE_FACTORS = (2, 4)


def available(operation: str) -> bool:
    """Whether the restoration service runs ``operation`` (colourise comes with DDColor support)."""
    return operation in OPERATIONS


@dataclass(frozen=True)
class ModelChoice:
    """A model file found for an operation, as spandrel detected it."""

    path: Path
    architecture: str
    scale: int

    @property
    def label(self) -> str:
        return f"{self.path.stem} — {self.architecture} ×{self.scale}" if self.scale != 1 else f"{self.path.stem} — {self.architecture}"


def list_models(operation: str) -> list[ModelChoice]:
    """The model files usable for ``operation`` (imports torch and spandrel: run it off the GUI
    thread). A file that cannot be read or is for another purpose is left out."""
    from app.service import restoration_files as files, restoration_loader as loader

    purpose = OPERATIONS.get(operation)
    found = []
    for f in files.discover():
        if f.folder_purpose not in (purpose, None):
            continue
        try:
            summary = loader.detect(f.path)
        except UserError:
            continue
        if summary.purpose == purpose:
            found.append(ModelChoice(f.path, summary.architecture, summary.scale))
    return found


@dataclass(frozen=True)
class RestoreChoice:
    """What the user asked for."""

    operation: str
    model: str | None = None  # a file; None = the first found
    factor: int = 1  # upscale: the size wanted (×2, ×4) whatever the model's own scale
    strength: float = 1.0  # restore faces: how much of the restored face is used
    in_selection: bool = False  # apply within the painted mask only (same-size operations)

    def label(self, model: Path, architecture: str, scale: int) -> str:
        """The undo step's text: the operation with every parameter that decided the pixels."""
        name = LABELS[self.operation] + (f" ×{self.factor}" if self.operation == UPSCALE else "")
        details = [f"{model.stem} ({architecture}" + (f" ×{scale})" if scale != 1 else ")")]
        if self.operation == FACES:
            details.append(f"strength {self.strength:.2f}")
        if self.in_selection:
            details.append("in the selection")
        return f"{name} — {', '.join(details)}"


@dataclass(frozen=True)
class RestoreOutcome:
    """A finished run, not applied yet: the document at ``version`` → ``pixels``."""

    choice: RestoreChoice
    label: str
    before: np.ndarray  # the snapshot it was made from
    pixels: np.ndarray  # the result, in the document's layout and dtype
    region: Bounds | None  # where a same-size result may differ (None: anywhere)
    focus: Bounds | None  # what the compare view centres on (the selection), None = the whole image
    preview: tuple[np.ndarray, np.ndarray]  # the fitted before/after pair (`restore_preview.compare_pair`)
    packed: tuple[PackedArray, PackedArray] | None  # an upscale's before/after, packed on the pool thread
    version: int  # `Document.image_version` of the snapshot
    elapsed_s: float

    @property
    def resizes(self) -> bool:
        return self.pixels.shape[:2] != self.before.shape[:2]


@dataclass(frozen=True)
class RestoreFailure:
    title: str
    message: str
    missing_model: bool  # no usable model file: the window offers "Get models…"


def resize_to(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """A model's ×s result brought to the size asked for (a ×4 model for ×2): area filter down,
    cubic up; layout and dtype kept (OpenCV resizes uint16 and four channels alike)."""
    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    shrink = width < pixels.shape[1]
    out = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return out.reshape(height, width, *pixels.shape[2:])


def scale_canvas(mask: np.ndarray, box: Bounds | None, offset: tuple[int, int],
                 factor: int) -> tuple[np.ndarray, Bounds | None, tuple[int, int]]:
    """The mask (nearest: stays 0/255 where it was), context box and original's place, ×``factor``."""
    h, w = mask.shape
    big = cv2.resize(mask, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    box = None if box is None else Bounds(box.x * factor, box.y * factor, box.width * factor, box.height * factor)
    return big, box, (offset[0] * factor, offset[1] * factor)


def run_restoration(service: RestorationService, choice: RestoreChoice, image: np.ndarray, mask: np.ndarray,
                    version: int, progress: Callable[[int, int], None], cancelled: Callable[[], bool]) -> RestoreOutcome | RestoreFailure:
    """One run on the pool thread (what `RestoreRunner` schedules; tests may call it directly)."""
    if choice.operation == COLORIZE and (image.ndim == 2 or image.shape[2] == 1):
        # the service returns RGB, and a document keeps its layout through undo and projects
        return RestoreFailure("A gray image cannot hold colour",
                              "This image is grayscale. Colourise it with the command line, which writes RGB "
                              "(inpaint-studio colorize IN -o OUT), and open the result.", False)
    selection = maskops.binarize(mask) if choice.in_selection else None
    request = RestorationRequest(choice.operation, image, mask=selection, model=choice.model, strength=choice.strength)
    try:
        result = service.run(request, progress, cancelled)
    except Cancelled:
        raise LoadCancelled from None
    except UserError as exc:
        return RestoreFailure(exc.title, exc.message, isinstance(exc, ModelLoadError))
    pixels, h, w = result.pixels, image.shape[0], image.shape[1]
    label = choice.label(result.model, result.architecture, result.scale)
    focus, packed, region = focus_of(selection), None, None
    if choice.operation == UPSCALE:
        pixels = resize_to(pixels, w * choice.factor, h * choice.factor)
        if cancelled():
            raise LoadCancelled
        packed = (PackedArray.raw(image), PackedArray.raw(pixels))  # raw: undo/redo must not inflate 100s of MB
    elif selection is not None:
        region = maskops.bounds(selection).pad(maskops.feather_reach(request.mask_blur)).clamp(w, h)
    preview = compare_pair(image, pixels, focus)
    return RestoreOutcome(choice, label, image, pixels, region, focus, preview, packed, version, result.elapsed_s)


class RestoreRunner(QObject):
    """Runs one restoration at a time for a document; exactly one of ``finished`` (a
    `RestoreOutcome` or `RestoreFailure`) or ``cancelled`` follows each `start`."""

    started = Signal()
    progress = Signal(int, int)  # done, total (tiles or faces)
    finished = Signal(object)
    cancelled = Signal()

    def __init__(self, document: Document, service_of: Callable[[], RestorationService],
                 parent: QObject | None = None) -> None:
        """``service_of`` gives the generation service's restoration service at each run, so a
        restoration and a generation never share the device at once (one device lock), even
        after the window swaps its generation service."""
        super().__init__(parent)
        self.document = document
        self._service_of = service_of
        self._service: RestorationService | None = None
        self.task: BackgroundTask | None = None
        self._cancel = threading.Event()
        self._active = False  # from `start` until its result (or cancel) is reported
        self._resets = 0  # the document was replaced (opened, undo of a resize…): a snapshot under way is stale
        document.reset.connect(self._on_reset)

    @property
    def service(self) -> RestorationService:
        return self._service or self._service_of()

    @service.setter
    def service(self, service: RestorationService) -> None:
        """Pin a service (tests, benchmarks)."""
        self._service = service

    @property
    def running(self) -> bool:
        return self._active

    def problem(self, choice: RestoreChoice) -> str:
        """Why ``choice`` cannot start now ("" when it can)."""
        doc = self.document
        if doc.is_empty:
            return "Open an image first."
        if self.running:
            return "A restoration is running: wait for it or cancel it."
        if not available(choice.operation):
            return f"{LABELS[choice.operation]} is not available in this version."
        if choice.in_selection and not doc.mask.any():
            return "Paint a selection (mask) first, or apply it to the whole image."
        if choice.operation == UPSCALE and choice.factor not in UPSCALE_FACTORS:
            return f"Upscale ×{choice.factor}: choose ×2 or ×4."
        return ""

    def start(self, choice: RestoreChoice) -> str:
        """Start a run on a snapshot of the document; "" when started, else why not."""
        problem = self.problem(choice)
        if problem:
            return problem
        self._cancel.clear()
        self._active = True
        self.started.emit()
        resets = self._resets
        self.document.snapshots.take(lambda state: self._submit(choice, state, resets))
        return ""

    def _on_reset(self) -> None:
        self._resets += 1

    def _submit(self, choice: RestoreChoice, state, resets: int) -> None:
        if self._cancel.is_set() or resets != self._resets:  # cancelled, or the snapshot is of a replaced image
            self._end(self.cancelled)
            return
        version = self.document.image_version  # the snapshot equals the document now
        service, cancel = self.service, self._cancel

        def work(progress):
            return run_restoration(service, choice, state.current, state.mask, version, progress, cancel.is_set)

        task = BackgroundTask(work, f"{LABELS[choice.operation]}", self, title="Restoring")
        task.progress.connect(self.progress)
        task.finished.connect(lambda outcome: self._end(self.finished, outcome))
        task.failed.connect(lambda text: self._end(self.finished, RestoreFailure(f"{LABELS[choice.operation]} failed", text, False)))
        task.cancelled.connect(lambda: self._end(self.cancelled))
        self.task = task.start()

    def _end(self, signal, *args) -> None:
        self._active = False  # before the receivers run: they may start the next run
        signal.emit(*args)

    def cancel(self) -> None:
        """Stop at the next tile (or face); ``cancelled`` follows and the document is untouched."""
        self._cancel.set()
        if self.task is not None:
            self.task.cancel()

    def wait(self, timeout_s: float = 30.0) -> bool:
        return self.task is None or self.task.wait(timeout_s)

    def apply(self, outcome: RestoreOutcome) -> str:
        """Make ``outcome`` the document as ONE undo step; "" when applied, else why not (the
        document changed since the run started: its result would overwrite that work)."""
        doc = self.document
        if doc.is_empty or doc.image_version != outcome.version or doc.pixels.shape != outcome.before.shape:
            return "The image changed while this ran: run it again on the image as it is now."
        if outcome.resizes:  # the mask as it is now (painting went on during the run), scaled with the image
            mask, box, offset = scale_canvas(doc.mask, doc.context_box, doc.original_offset, outcome.choice.factor)
            doc.resize_canvas(outcome.pixels, mask, box, offset, outcome.label, packed=outcome.packed)
        else:
            doc.apply_result(outcome.pixels, label=outcome.label, region=outcome.region)
        return ""
