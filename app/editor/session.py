"""The editor session: everything about the open work that outlives any one widget.

It holds the `Document` (image, mask, context box, undo, generations), where the work lives on
disk (image, result and project paths, display name, modified state), the autosave/recovery
controller, and the generation in flight on the `GenerationWorker`. Widgets read it and call its
methods; it never touches a widget (QtCore only), so a test or another front end drives an editing
session without a window. Requests are checked by the generation service itself (`check`), and
its records come back whole; a saved result carries `candidate_params` of the applied candidate
(seed s+k, batch 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.core import imageio
from app.core.errors import EmptyMaskError, UserError
from app.core.params import CLASSICAL_METHODS, GenerationParams
from app.core.records import GenerationRecord
from app.editor.control_layer import request_controls
from app.editor.document import Document
from app.editor.live import LivePainter
from app.editor.opened_image import PreparedImage
from app.editor.recovery_controller import RecoveryController
from app.editor.saving import Saver
from app.editor.undo import AppliedDelta
from app.editor.worker import GenerationWorker
from app.service import FrontEnd, LoadOptions
from app.service.fields import PARAMS
from app.service.generation import GenerationRequest
from app.service.records import candidate_params
from app.storage.project import ProjectState, load_project, save_project


def _applied_params(generations: list[GenerationRecord]) -> GenerationParams | None:
    applied = [g for g in generations if g.applied is not None]
    return candidate_params(applied[-1], applied[-1].applied) if applied else None


def _pixels_only(deltas) -> bool:
    """An undo step a result image holds: only image tiles (and which candidate is applied)."""
    return deltas is not None and all(isinstance(d, AppliedDelta) or getattr(d, "target", None) == "image" for d in deltas)


def apply_label(record: GenerationRecord, index: int) -> str:
    """The Edit menu's name for applying candidate ``index``: its seed, or the classical method
    (which has no seed: the service records 0)."""
    if record.params.model in CLASSICAL_METHODS:  # its name, from the table of methods
        return f"Apply result ({CLASSICAL_METHODS[record.params.model].label})"
    if record.params.is_prompt_free:  # LaMa: no seed either
        return "Apply result (LaMa)"
    return f"Apply result (seed {record.seeds[index]})"


@dataclass(frozen=True)
class Problem:
    """Why something could not be done, for the message bar: level (info/warning/error), title, text."""

    level: str
    title: str
    text: str


class EditorSession(QObject):
    """One open piece of work. Signals carry what the window shows; state is read from attributes."""

    generation_started = Signal(object)  # GenerationParams
    progress = Signal(int, int, float, object, object)  # step, total, eta s, preview or None, region
    generation_finished = Signal(object)  # GenerationRecord (already in document.generations)
    generation_failed = Signal(str, str)  # title, message
    generation_cancelled = Signal()
    generation_dropped = Signal()  # finished for an image that is no longer open
    worker_status = Signal(str)
    candidates_changed = Signal()  # ``candidates`` set or cleared
    result_applied = Signal(object)  # GenerationRecord whose ``applied`` candidate is now in the image
    title_changed = Signal()  # display name or modified state

    def __init__(self, worker: GenerationWorker | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = Document(self)
        self.saver = Saver(self.document, self)
        self.display_name: str | None = None
        self.save_path: str | None = None  # where Save writes the result image
        self.project_path: str | None = None  # where Save Project writes
        self.recovery: RecoveryController | None = None
        self.candidates: GenerationRecord | None = None  # the generation under review
        self.generating = False
        self.out_of_memory = False
        self.run_params: GenerationParams | None = None
        #: The reference image (IP-Adapter) runs get with ``params.reference``; set by the window.
        self.reference_image = None
        self._run_token = self._doc_token = 0
        self._cancelled_before_start = False
        self._shut_down = False
        self._saved_generations: tuple[int, ...] = ()  # the generations as last opened or saved in a project
        self.document.reset.connect(self._on_reset)
        self.document.modified_changed.connect(self.title_changed)
        self.worker = worker or GenerationWorker()
        self.worker.start()
        self.worker.progress.connect(self._on_progress)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.out_of_memory.connect(self._on_out_of_memory)
        self.worker.status.connect(self.worker_status)
        self.live = LivePainter(self)  # live painting: its own runs, outside the generation state above

    # -- the open work -----------------------------------------------------------------------------
    @property
    def modified(self) -> bool:
        return self.document.modified

    @property
    def has_unsaved_work(self) -> bool:
        """Something quitting or opening another file would lose: edits not on disk, or
        candidates still under review."""
        return not self.document.is_empty and (self.document.modified or self.candidates is not None)

    def unsaved_needs_project(self) -> bool:
        """Whether the unsaved work is something only a project holds (a result image keeps
        pixels and the applied parameters, not the mask, context box or candidates): candidates
        under review, new generations since the project was opened or saved, or an unsaved step
        that is not a change of pixels. A restored recovery (no saved state in its history)
        counts its painted mask and its generations."""
        doc = self.document
        if doc.is_empty:
            return False
        if self.candidates is not None or self._generation_ids() != self._saved_generations:
            return True
        stack = doc.undo_stack
        clean, index = stack.cleanIndex(), stack.index()
        if clean < 0:
            return bool(doc.mask.any()) or bool(doc.generations)
        steps = [stack.command(i) for i in range(min(clean, index), max(clean, index))]
        return any(not _pixels_only(getattr(c, "deltas", None)) for c in steps)

    def _generation_ids(self) -> tuple[int, ...]:
        return tuple(id(g) for g in self.document.generations)

    def _on_reset(self) -> None:
        """New image or restored project: stale candidates no longer apply, a late result is dropped."""
        self._doc_token += 1
        if self.candidates is not None:
            self.discard_candidates()
        if self.document.path:
            self.display_name = Path(self.document.path).name
        self.title_changed.emit()

    def _before_replace(self) -> None:
        if self.generating:
            self.cancel()
        self.discard_candidates()

    def open_image(self, loaded: imageio.LoadedImage | PreparedImage, path: str | None = None, name: str | None = None) -> None:
        """Make ``loaded`` the document (prepared off the GUI thread, or not; no file for pasted data: give ``name``)."""
        self._before_replace()
        self.document.set_image(loaded, path)
        self._saved_generations = ()
        self.save_path = self.project_path = None
        self.display_name = name or (Path(path).name if path else "Untitled")
        self.title_changed.emit()

    def open_project(self, path: str | Path, state: ProjectState | PreparedImage | None = None) -> ProjectState:
        """Make a project the document: ``state`` as loaded and prepared off the GUI thread
        (`app.editor.background_task.project_load`), or loaded here (raises `ProjectError`, leaving
        the document as it was). Returns the state, whose ``params`` the caller shows."""
        state = load_project(path) if state is None else state
        self._before_replace()
        self.document.load_state(state)
        self._saved_generations = self._generation_ids()
        state = state.loaded if isinstance(state, PreparedImage) else state
        self.save_path = None
        self.project_path = str(path)
        self.display_name = Path(path).name
        self.title_changed.emit()
        return state

    def applied_params(self) -> GenerationParams | None:
        """What a saved result carries: the parameters that regenerate the last applied candidate."""
        return _applied_params(self.document.generations)

    def save_result(self, path: str | Path) -> bool:
        """Start writing the current image with `applied_params` (atomically, off the GUI thread:
        ``saver`` reports). False while another save is under way."""
        def write(state: ProjectState) -> None:
            imageio.save_image(path, state.current, params=_applied_params(state.generations), icc_profile=state.icc_profile)

        def saved() -> None:
            self.save_path = str(path)
            self.title_changed.emit()

        return self.saver.save(path, write, on_saved=saved)

    def save_project(self, path: str | Path, params: GenerationParams) -> bool:
        """Start saving the whole session as a project (off the GUI thread: ``saver`` reports);
        with autosave on, its last valid params are used when ``params`` do not validate (a
        project must reopen). False while another save is under way."""
        if self.recovery is not None:
            try:
                params = params.validate()
            except UserError:  # a half-typed field: keep the last params that validated
                params = self.recovery.last_good_params()

        generations = list(self.document.generations)  # what this save holds (the snapshot lists them too)

        def write(state: ProjectState) -> None:
            state.params = params
            save_project(path, state)

        def saved() -> None:
            self._saved_generations = tuple(id(g) for g in generations)
            self.project_path = str(path)
            self.display_name = Path(path).name
            self.title_changed.emit()

        return self.saver.save(path, write, on_saved=saved)

    def export_mask(self, path: str | Path) -> bool:
        """Start writing the mask as a grey PNG (off the GUI thread); the work stays unsaved."""
        return self.saver.save(path, lambda state: imageio.save_image(path, state.mask), marks_saved=False)

    def install_recovery(self, params_getter: Callable[[], GenerationParams], **kwargs) -> RecoveryController:
        """Turn on autosave and crash recovery for this session (once); restored params go to
        whoever listens to ``recovery.restored``."""
        if self.recovery is None:
            self.recovery = RecoveryController(self.document, params_getter, parent=self, **kwargs).attach()
            self.result_applied.connect(self.recovery.notify_result)  # ``applied`` is set after the pixels
        return self.recovery

    # -- generation --------------------------------------------------------------------------------
    def prompt_free(self, model_ref: str) -> bool:
        """Whether ``model_ref`` ignores prompt, seed and sampler (what the panel greys out), as
        its reference alone tells (`Capabilities.prompt_free`; no file read on the GUI thread)."""
        return self.worker.service.nominal_capabilities(model_ref).prompt_free

    def check(self, params: GenerationParams, front: FrontEnd = PARAMS) -> Problem | None:
        """Why ``params`` cannot run on the open document: the service's rules
        (`GenerationService.check_nominal`, in ``front``'s names), found without touching the
        model (the GUI thread never reads model files); the service checks the model's own
        capabilities again on the worker and its typed errors arrive through ``generation_failed``."""
        doc = self.document
        if doc.is_empty:
            return Problem("warning", "No image", "Open an image first (Ctrl+O, drag and drop, or paste).")
        if params.controls and (control_problem := doc.controls.problem()) is not None:
            return Problem("warning", "Control layer", control_problem)
        try:
            self.worker.service.check_nominal(params, front)
        except UserError as exc:
            return Problem("error", exc.title, exc.message)
        if params.mode == "inpaint" and not doc.mask.any():
            return Problem("warning", EmptyMaskError.title, EmptyMaskError().message)
        return None

    def generate(self, params: GenerationParams, options: LoadOptions = LoadOptions(),
                 front: FrontEnd = PARAMS) -> Problem | None:
        """Start a run; None when it started. The document changes only when a candidate is applied."""
        if self.generating:
            return Problem("info", "Busy", "A generation is running; cancel it (Esc) or wait.")
        if self.live.enabled:
            return Problem("info", "Live mode is on", "Apply keeps the live result; turn Live off to generate candidates.")
        params = replace(params, controls=self.document.controls.units())  # the layers are the units
        problem = self.check(params, front)
        if problem is not None:
            return problem
        if self.worker.busy:
            return Problem("info", "Busy", "The generation thread is busy; try again in a moment.")
        self.discard_candidates()
        self.generating, self.out_of_memory, self.run_params = True, False, params
        self._run_token = self._doc_token
        self._cancelled_before_start = False
        self.generation_started.emit(params)
        # The run gets its own copy of the document (painting edits it in place meanwhile), taken
        # a slice per event-loop turn: copying 24 MP at the click froze the window ~0.3 s.
        self.document.snapshots.take(lambda state: self._submit(params, options, state, front))
        return None

    def _submit(self, params: GenerationParams, options: LoadOptions, state: ProjectState, front: FrontEnd) -> None:
        """The snapshot is complete: hand it to the worker, unless the run was cancelled meanwhile."""
        if self._cancelled_before_start or self._run_token != self._doc_token:
            self.generating = False
            self.generation_cancelled.emit()
            return
        mask = state.mask if params.mode == "inpaint" or state.mask.any() else None
        units, images = request_controls(state)  # the layers as copied with the pixels
        params = self.run_params = replace(params, controls=units)
        request = GenerationRequest(params, state.current, mask, state.context_box, options, control_images=images,
                                    control_maps=True, reference_image=self.reference_image, front=front)
        if not self.worker.submit(request):
            self.generating = False
            self.generation_failed.emit("Busy", "The generation thread is busy; try again in a moment.")

    def preload(self, model: str, options: LoadOptions = LoadOptions()) -> None:
        """Load a diffusion model in the background so the first Generate is quick."""
        if not self.generating:
            self.worker.preload(model, options)

    def cancel(self) -> None:
        if self.generating:
            self._cancelled_before_start = True  # the worker has it once submitted; until then, this stops it
            self.worker.cancel()

    @property
    def run_is_current(self) -> bool:
        """The running (or last) generation was made from the image that is open now."""
        return self._run_token == self._doc_token

    def _on_progress(self, step: int, total: int, eta: float, preview, region) -> None:
        if self.generating:
            self.progress.emit(step, total, eta, preview if self.run_is_current else None, region)

    def _on_finished(self, record: GenerationRecord) -> None:
        self.generating = False
        if not self.run_is_current:
            self.generation_dropped.emit()
            return
        self.document.add_generation(record)
        self.show_record(record)
        self.generation_finished.emit(record)

    def _on_failed(self, title: str, message: str) -> None:
        self.generating = False
        self.generation_failed.emit(title, message)

    def _on_out_of_memory(self) -> None:
        self.out_of_memory = True

    def _on_cancelled(self) -> None:
        self.generating = False
        self.generation_cancelled.emit()

    # -- candidates --------------------------------------------------------------------------------
    def show_record(self, record: GenerationRecord) -> bool:
        """Put a generation's candidates under review (only if they fit the open image)."""
        if not record.candidates or record.candidates[0].shape != self.document.pixels.shape:
            return False
        self.candidates = record
        self.candidates_changed.emit()
        return True

    def apply_candidate(self, index: int) -> bool | None:
        """Apply candidate ``index`` as one undo command and end the review. None if there is no
        such candidate; else whether any pixel changed."""
        rec = self.candidates
        if rec is None or not 0 <= index < len(rec.candidates):
            return None
        region = None
        for r in rec.regions:
            region = r if region is None else region.union(r)
        changed = self.document.apply_result(rec.candidates[index], label=apply_label(rec, index), region=region, record=rec, index=index)
        self.discard_candidates()
        self.result_applied.emit(rec)
        return changed

    def discard_candidates(self) -> None:
        if self.candidates is not None:
            self.candidates = None
            self.candidates_changed.emit()

    # -- end ------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Finish a save under way, stop the worker thread (idempotent). Autosave ends on the
        application's aboutToQuit."""
        if self._shut_down:
            return
        self._shut_down = True
        self.saver.wait()  # a save under way lands before the process ends
        self.live.shutdown()
        self.worker.shutdown()

