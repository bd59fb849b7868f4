"""Generate, cancel, progress and candidate review: the window's side of a generation.

A mixin of `MainWindow` (it uses the window's session, panels, canvas and status widgets): the
session runs the job and keeps the record; this turns its signals into the progress bar, the live
preview, the candidates strip and before/after comparison, and the user's choice back into
session calls.
"""

from __future__ import annotations

from pathlib import Path

from app.core.params import GenerationParams
from app.core.records import GenerationRecord
from app.service import LoadOptions
from app.widgets.panel_names import PANEL
from app.widgets.history_panel import has_seed


class GenerationControls:
    """Needs ``session``, ``params_panel``, ``model_picker``, ``candidates_panel``, ``canvas``,
    ``progress``, ``status_message``, ``seed_label``, ``show_message``, ``_update_actions`` and the
    ``allow_pickle_action``, ``safety_action`` and ``compile_action`` toggles."""

    _compare = False

    def run_options(self) -> LoadOptions:
        mp = self.model_picker
        return LoadOptions(device=mp.device_choice(), low_memory=mp.low_memory, allow_pickle=self.allow_pickle_action.isChecked(),
                           safety_checker=self.safety_action.isChecked(), compile=self.compile_action.isChecked(),
                           server_token=self.settings.generation_server()[1] or None)

    def generate(self, params: GenerationParams | None = None) -> bool:
        """Start a generation with ``params`` (default: the panel's). False, with the reason in
        the message bar, if it cannot start; the document is never touched here."""
        if self.session.generating:
            return False
        params = params if params is not None else self.current_params()
        self.set_compare(False)
        problem = self.session.generate(params, self.run_options(), PANEL)
        if problem is not None:
            self.show_message(problem.level, problem.title, problem.text)
        return problem is None

    def cancel_generation(self) -> None:
        if self.session.generating:
            self.session.cancel()
            self.progress.setFormat("Cancelling…")

    def _on_started(self, params: GenerationParams) -> None:
        self.message_bar.dismiss()
        self.settings.set_last_params(params)
        self.params_panel.seed_used()
        self.progress.setRange(0, 0)  # busy until the first step reports
        self.progress.setFormat("Starting…")
        self.progress.show()
        self.status_message.setText("Generating…" if params.is_prompt_free else f"Generating with {Path(params.model).name}…")
        self._update_actions()

    def _on_progress(self, step: int, total: int, eta: float, preview, region) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(step)
        self.progress.setFormat(f"Step {step}/{total}" + (f" · {eta:.0f} s left" if eta >= 0.5 else ""))
        if preview is not None and not self.canvas.candidate_shown:
            self.canvas.set_preview(preview, region)

    def _end_run(self, status: str | None = None) -> None:
        self.progress.hide()
        self.canvas.set_preview(None)
        self._update_actions()
        if status:
            self.status_message.setText(status)

    def _on_finished(self, record: GenerationRecord) -> None:
        self._end_run()
        self.params_panel.set_last_seed(record.params.seed)
        self.seed_label.setText(f"Seed {record.params.seed}" if has_seed(record.params) else "")
        n = len(record.candidates)
        self.status_message.setText(f"{n} candidate{'s' if n > 1 else ''} in {record.elapsed_s:.2f} s — preview, then Apply (or double-click) or Discard.")

    def _on_failed(self, title: str, message: str) -> None:
        self._end_run(f"{title}. The image is unchanged.")
        actions = []
        if self.session.out_of_memory and not self.model_picker.low_memory:
            actions.append(("Use low-memory mode and retry", self._retry_low_memory))
        self.show_message("error", title, message, actions)

    def _retry_low_memory(self) -> None:
        self.model_picker.set_low_memory(True)
        if self.session.run_params is not None:
            self.generate(self.session.run_params)

    def _on_worker_status(self, text: str) -> None:
        """Model loading news: in the progress bar while a job runs (a preload finishing
        mid-run must not say "Model ready" over "Generating…"), else in the status line."""
        if self.session.generating:
            if text != "Model ready":
                self.progress.setFormat(text[:40])
            return
        self.status_message.setText(text)

    # -- candidates --------------------------------------------------------------------------------
    def _on_candidates_changed(self) -> None:
        rec = self.session.candidates
        if rec is None:
            if self._compare:
                self.status_message.setText("")  # the "release to see the candidate" hint is stale now
            self._compare = False
            self.canvas.show_candidate(None)
            self.candidates_panel.set_candidates([], [])
        else:
            seeds = rec.seeds if has_seed(rec.params) else [None] * len(rec.seeds)
            self.candidates_panel.set_candidates(rec.candidates, seeds, rec.regions)
            self.candidates_dock.show()
            self.candidates_dock.raise_()
            self.candidates_panel.select(0)
        self._update_actions()

    def show_record_candidates(self, record: GenerationRecord) -> None:
        self.session.show_record(record)

    def preview_candidate(self, index: int) -> None:
        rec = self.session.candidates
        if rec is None or not 0 <= index < len(rec.candidates):
            self.canvas.show_candidate(None)
            return
        if not self._compare:
            self.canvas.show_candidate(rec.candidates[index])
        self.seed_label.setText(f"Seed {rec.seeds[index]}" if has_seed(rec.params) else "")

    def set_compare(self, on: bool) -> None:
        """Before/after: while on, the canvas shows the image as it is (before the candidate)."""
        self._compare = on
        self.preview_candidate(-1 if on else self.candidates_panel.current())
        if on and self.session.candidates is not None:
            self.status_message.setText("Showing the image before this generation (release to see the candidate).")

    def apply_current_candidate(self) -> bool:
        return self.apply_candidate(self.candidates_panel.current())

    def apply_candidate(self, index: int) -> bool:
        """Apply a candidate as one undo command; the candidates panel is then cleared."""
        changed = self.session.apply_candidate(index)
        if changed is None:
            return False
        self.status_message.setText("Result applied — Undo (Ctrl+Z) restores the previous pixels." if changed else "The candidate equals the image; nothing changed.")
        return True

    def discard_candidates(self) -> None:
        self.session.discard_candidates()
