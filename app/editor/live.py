"""Live painting: while Live is on, each finished edit regenerates the masked region at once.

Every finished stroke (any undoable edit; the window adds prompt, strength and seed changes)
calls `request`; the newest request wins: a run in flight is cancelled between steps (the
service's cancel callback) and the latest parameters start as soon as it stops, so a burst of
strokes costs at most the run in flight plus one. Runs go to the same `GenerationService` as
Generate (a remote backend included: the service decides where pixels are made) through a
second `GenerationWorker` thread, so the live result never touches the session's generation
state. The result is a layer the window draws over the canvas — never in the undo history or
the document's generations — until `apply`, which makes it one ordinary history entry with its
parameters (the same record a normal run with those parameters and seed gives), or Live off.
The seed is fixed while Live is on (the panel's, or one drawn when Live turns on), so two
updates differ only by what the user changed. The canvas never waits: the document copy is
taken a slice per event-loop turn, as for Generate.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.core.params import GenerationParams
from app.core.records import GenerationRecord
from app.editor.worker import GenerationWorker
from app.editor.control_layer import request_controls
from app.service import LoadOptions
from app.service.generation import GenerationRequest
from app.storage.project import ProjectState

#: What a live run is made from: the window's current parameters and load options.
ParamsSource = Callable[[], tuple[GenerationParams, LoadOptions]]


class LivePainter(QObject):
    """The live mode of one `EditorSession` (``session.live``)."""

    updated = Signal(object)  # the live GenerationRecord to show, or None: clear the layer
    failed = Signal(str, str)  # title, message of a live run that could not start or failed

    def __init__(self, session) -> None:
        super().__init__(session)
        self._session = session
        self._doc = session.document
        self.enabled = False
        self.record: GenerationRecord | None = None  # the live result shown over the canvas
        self.seed = -1  # the fixed seed of this Live session
        self.started = self.cancelled = self.finished = 0  # runs, for the tests and the bench
        self._source: ParamsSource | None = None
        self._worker: GenerationWorker | None = None
        self._running = False  # a run is on the live worker (or being copied for it)
        self._pending = False  # a newer request waits for that run to stop
        self._applying = False
        self._run_token = self._token = 0  # bumped when the document is replaced or Live turns off: late results are dropped
        self._doc.undo_stack.indexChanged.connect(self._on_edit)
        self._doc.reset.connect(self._on_reset)

    # -- on / off ---------------------------------------------------------------------------
    def start(self, source: ParamsSource) -> None:
        """Turn Live on: fix the seed (the source's, or a new one) and run once."""
        self._source = source
        if self._worker is None:
            self._worker = GenerationWorker(self._session.worker.service)  # the same service: one model, one lock
            self._worker.start()
            self._worker.finished.connect(self._on_finished)
            self._worker.cancelled.connect(self._on_stopped)
            self._worker.failed.connect(self._on_failed)
        elif not self._running:
            self._worker.service = self._session.worker.service  # swapped meanwhile (`GenerationWorker.set_service`)
        self.enabled = True
        self.seed = source()[0].with_resolved_seed().seed
        self.request()

    def stop(self) -> None:
        """Turn Live off: cancel the run in flight and drop the live layer (nothing is applied)."""
        self.enabled = False
        self._pending = False
        self._token += 1
        if self._running and self._worker is not None:
            self._worker.cancel()
        self._set_record(None)

    @property
    def busy(self) -> bool:
        """A live run is being prepared or is in flight."""
        return self._running

    # -- requests ---------------------------------------------------------------------------
    def live_params(self) -> tuple[GenerationParams, LoadOptions]:
        """The source's parameters as a live run uses them: the fixed seed (unless the user set
        one), one candidate."""
        assert self._source is not None
        params, options = self._source()
        if params.seed < 0:
            params = params.replace(seed=self.seed)
        return params.replace(batch_size=1), options

    def request(self) -> None:
        """Something changed: regenerate. Supersedes the run in flight (cancelled between steps)."""
        if not self.enabled or self._source is None:
            return
        if self._running:
            self._pending = True
            if self._worker is not None:
                self._worker.cancel()
            return
        self._start_run()

    def _start_run(self) -> None:
        self._pending = False
        params, options = self.live_params()
        params = params.replace(controls=self._doc.controls.units())  # a scribble stroke steers the next live run
        problem = self._session.check(params)
        if problem is not None:
            self.failed.emit(problem.title, problem.text)
            return
        self._running = True
        token = self._token
        self._doc.snapshots.take(lambda state: self._submit(params, options, state, token))

    def _submit(self, params: GenerationParams, options: LoadOptions, state: ProjectState, token: int) -> None:
        if token != self._token or not self.enabled:  # Live off, or another image: a pending request starts anew
            self._after_run()
            return
        if self._pending:  # edited while the copy was taken: copy again, the newest edit wins
            self._running = False
            self._start_run()
            return
        mask = state.mask if params.mode == "inpaint" or state.mask.any() else None
        assert self._worker is not None
        self.started += 1
        self._run_token = token
        units, images = request_controls(state)
        params = params.replace(controls=units)
        request = GenerationRequest(params, state.current, mask, state.context_box, options, control_images=images,
                                    control_maps=True,  # the layers are finished maps
                                    reference_image=self._session.reference_image)
        if not self._worker.submit(request):
            self._running = False  # cannot happen: one run at a time on this worker
            self.failed.emit("Busy", "The live generation thread is busy.")

    def _after_run(self) -> None:
        self._running = False
        if self._pending and self.enabled:
            self._start_run()

    def _on_finished(self, record: GenerationRecord) -> None:
        self.finished += 1
        if self.enabled and self._run_token == self._token:
            self._set_record(record)
        self._after_run()

    def _on_stopped(self) -> None:
        self.cancelled += 1
        self._after_run()

    def _on_failed(self, title: str, message: str) -> None:
        self._after_run()
        if self.enabled:
            self.failed.emit(title, message)

    def _on_edit(self, _index: int) -> None:
        if not self._applying:
            self.request()

    def _on_reset(self) -> None:
        """Another image or project: the live result no longer fits; start over on the new one."""
        self._token += 1
        self._set_record(None)
        if self._running and self.enabled and self._worker is not None:
            self._pending = True
            self._worker.cancel()

    def _set_record(self, record: GenerationRecord | None) -> None:
        if record is not None or self.record is not None:
            self.record = record
            self.updated.emit(record)

    # -- apply ------------------------------------------------------------------------------
    def apply(self) -> bool | None:
        """Make the live result an ordinary generation and apply it as one undo step (its
        parameters go to the history and the saved PNG). None without a live result; else
        whether any pixel changed. Live stays on."""
        rec = self.record
        if rec is None or rec.candidates[0].shape != self._doc.pixels.shape:
            return None
        self._doc.add_generation(rec)
        region = None
        for r in rec.regions:
            region = r if region is None else region.union(r)
        self._applying = True
        try:
            changed = self._doc.apply_result(rec.candidates[0], label=f"Apply live result (seed {rec.seeds[0]})",
                                             region=region, record=rec, index=0)
        finally:
            self._applying = False
        self._set_record(None)
        self._session.result_applied.emit(rec)
        return changed

    def shutdown(self) -> None:
        """Stop the live thread; its last signals (a cancelled run) are no longer received."""
        self.enabled = False
        self._doc.undo_stack.indexChanged.disconnect(self._on_edit)
        self._doc.reset.disconnect(self._on_reset)
        if self._worker is not None:
            for signal in (self._worker.finished, self._worker.cancelled, self._worker.failed):
                signal.disconnect()
            self._worker.shutdown()
