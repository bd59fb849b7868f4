"""Generate, cancel, progress and candidate review: the window's side of a generation.

`GenerationView` is owned by the window (``window.generation``) and gets what it works with as
constructor arguments. The session runs the job and keeps the record; this turns its signals
into the progress bar, the live preview, the candidates strip and before/after comparison, and
the user's choice back into session calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDockWidget

from app.core.params import GenerationParams
from app.core.records import GenerationRecord
from app.editor.session import EditorSession
from app.editor.settings import Settings
from app.service import LoadOptions
from app.widgets.panel_names import PANEL
from app.widgets.candidates import CandidatesPanel
from app.widgets.canvas import CanvasView
from app.widgets.history_panel import has_seed
from app.widgets.messages import MessageBar
from app.widgets.model_picker import ModelPicker
from app.widgets.params_panel import ParamsPanel
from app.widgets.window_status import WindowStatus


class GenerationView(QObject):
    """``current_params``: the form's parameters; ``run_options``: how the model loads;
    ``update_actions``: re-enable the window's actions after a state change."""

    def __init__(self, session: EditorSession, settings: Settings, *, params_panel: ParamsPanel,
                 model_picker: ModelPicker, candidates_panel: CandidatesPanel, candidates_dock: QDockWidget,
                 canvas: CanvasView, status: WindowStatus, messages: MessageBar,
                 current_params: Callable[[], GenerationParams], run_options: Callable[[], LoadOptions],
                 update_actions: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.settings = session, settings
        self.params_panel, self.model_picker, self.canvas = params_panel, model_picker, canvas
        self.candidates_panel, self.candidates_dock = candidates_panel, candidates_dock
        self.status, self.messages = status, messages
        self.current_params, self.run_options, self.update_actions = current_params, run_options, update_actions
        #: Before/after: while True the canvas shows the image as it is, not the candidate.
        self.comparing = False
        s = session
        s.generation_started.connect(self._on_started)
        s.progress.connect(self._on_progress)
        s.generation_finished.connect(self._on_finished)
        s.generation_failed.connect(self._on_failed)
        s.generation_cancelled.connect(lambda: self._end_run("Generation cancelled. The image is unchanged."))
        s.generation_dropped.connect(lambda: self._end_run("A generation finished for an image that is no longer open; it was dropped."))
        s.worker_status.connect(self._on_worker_status)
        s.candidates_changed.connect(self._on_candidates_changed)
        candidates_panel.candidate_selected.connect(self.preview_candidate)
        candidates_panel.apply_requested.connect(self.apply_candidate)
        candidates_panel.discard_requested.connect(self.discard_candidates)
        candidates_panel.compare_pressed.connect(lambda: self.set_compare(True))
        candidates_panel.compare_released.connect(lambda: self.set_compare(False))

    def generate(self, params: GenerationParams | None = None) -> bool:
        """Start a generation with ``params`` (default: the panel's). False, with the reason in
        the message bar, if it cannot start; the document is never touched here."""
        if self.session.generating:
            return False
        params = params if params is not None else self.current_params()
        self.set_compare(False)
        problem = self.session.generate(params, self.run_options(), PANEL)
        if problem is not None:
            self.messages.show_message(problem.level, problem.title, problem.text)
        return problem is None

    def cancel(self) -> None:
        if self.session.generating:
            self.session.cancel()
            self.status.progress.setFormat("Cancelling…")

    def _on_started(self, params: GenerationParams) -> None:
        self.messages.dismiss()
        self.settings.set_last_params(params)
        self.params_panel.seed_used()
        progress = self.status.progress
        progress.setRange(0, 0)  # busy until the first step reports
        progress.setFormat("Starting…")
        progress.show()
        self.status.message.setText("Generating…" if params.is_prompt_free else f"Generating with {Path(params.model).name}…")
        self.update_actions()

    def _on_progress(self, step: int, total: int, eta: float, preview, region) -> None:
        progress = self.status.progress
        progress.setRange(0, max(1, total))
        progress.setValue(step)
        progress.setFormat(f"Step {step}/{total}" + (f" · {eta:.0f} s left" if eta >= 0.5 else ""))
        if preview is not None and not self.canvas.candidate_shown:
            self.canvas.set_preview(preview, region)

    def _end_run(self, status: str | None = None) -> None:
        self.status.progress.hide()
        self.canvas.set_preview(None)
        self.update_actions()
        if status:
            self.status.message.setText(status)

    def _on_finished(self, record: GenerationRecord) -> None:
        self._end_run()
        self.params_panel.set_last_seed(record.params.seed)
        self.status.seed.setText(f"Seed {record.params.seed}" if has_seed(record.params) else "")
        n = len(record.candidates)
        self.status.message.setText(f"{n} candidate{'s' if n > 1 else ''} in {record.elapsed_s:.2f} s — preview, then Apply (or double-click) or Discard.")

    def _on_failed(self, title: str, message: str) -> None:
        self._end_run(f"{title}. The image is unchanged.")
        actions = []
        if self.session.out_of_memory and not self.model_picker.low_memory:
            actions.append(("Use low-memory mode and retry", self._retry_low_memory))
        self.messages.show_message("error", title, message, actions)

    def _retry_low_memory(self) -> None:
        self.model_picker.set_low_memory(True)
        if self.session.run_params is not None:
            self.generate(self.session.run_params)

    def _on_worker_status(self, text: str) -> None:
        """Model loading news: in the progress bar while a job runs (a preload finishing
        mid-run must not say "Model ready" over "Generating…"), else in the status line."""
        if self.session.generating:
            if text != "Model ready":
                self.status.progress.setFormat(text[:40])
            return
        self.status.message.setText(text)

    # -- candidates --------------------------------------------------------------------------------
    def _on_candidates_changed(self) -> None:
        rec = self.session.candidates
        if rec is None:
            if self.comparing:
                self.status.message.setText("")  # the "release to see the candidate" hint is stale now
            self.comparing = False
            self.canvas.show_candidate(None)
            self.candidates_panel.set_candidates([], [])
        else:
            seeds = rec.seeds if has_seed(rec.params) else [None] * len(rec.seeds)
            self.candidates_panel.set_candidates(rec.candidates, seeds, rec.regions)
            self.candidates_dock.show()
            self.candidates_dock.raise_()
            self.candidates_panel.select(0)
        self.update_actions()

    def preview_candidate(self, index: int) -> None:
        rec = self.session.candidates
        if rec is None or not 0 <= index < len(rec.candidates):
            self.canvas.show_candidate(None)
            return
        if not self.comparing:
            self.canvas.show_candidate(rec.candidates[index])
        self.status.seed.setText(f"Seed {rec.seeds[index]}" if has_seed(rec.params) else "")

    def set_compare(self, on: bool) -> None:
        """Before/after: while on, the canvas shows the image as it is (before the candidate)."""
        self.comparing = on
        self.preview_candidate(-1 if on else self.candidates_panel.current())
        if on and self.session.candidates is not None:
            self.status.message.setText("Showing the image before this generation (release to see the candidate).")

    def apply_current_candidate(self) -> bool:
        return self.apply_candidate(self.candidates_panel.current())

    def apply_candidate(self, index: int) -> bool:
        """Apply a candidate as one undo command; the candidates panel is then cleared."""
        changed = self.session.apply_candidate(index)
        if changed is None:
            return False
        self.status.message.setText("Result applied — Undo (Ctrl+Z) restores the previous pixels." if changed else "The candidate equals the image; nothing changed.")
        return True

    def discard_candidates(self) -> None:
        self.session.discard_candidates()
