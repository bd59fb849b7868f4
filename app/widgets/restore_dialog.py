"""The Restore dialog: one operation (upscale, restore faces, denoise, colourise) from choosing the
model to applying the result, without blocking the window.

1. Choose: the model files found for the operation (listed off the GUI thread: detection imports
   torch), ×2/×4 for an upscale, the strength for faces, whole image or the selection.
2. Run: `RestoreRunner` works on a pool thread; a progress bar counts tiles (or faces), Cancel
   stops at the next one and leaves the document untouched.
3. Review, like a generation's candidates: nothing is in the document yet; the before/after view
   (`restore_compare`) at the result's own scale; Apply makes it ONE undo step, Discard drops it.
With no model found, the dialog says where to put one and offers "Get models…".
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.editor.background_task import BackgroundTask
from app.editor.restore_task import (
    FACES,
    LABELS,
    UPSCALE,
    UPSCALE_FACTORS,
    RestoreChoice,
    RestoreFailure,
    RestoreOutcome,
    RestoreRunner,
    list_models,
)
from app.widgets.buttons import push_button
from app.editor.restore_preview import compare_pair
from app.widgets.restore_compare import CompareView

DESCRIPTIONS = {
    UPSCALE: "Enlarge the whole image with an upscaling model (ESRGAN, Real-ESRGAN, SwinIR, HAT…), tile by tile.",
    FACES: "Restore faces with a face model (GFPGAN, RestoreFormer…). With a selection, each painted blob is one face.",
    "denoise": "Remove noise or JPEG artefacts with a restoration model (SCUNet, NAFNet, DRUNet, FBCNN…).",
    "colorize": "Colourise a black-and-white RGB photo (DDColor: its architecture needs the optional package "
                "spandrel-extra-arches, README: Colourise). The photo keeps its own lightness.",
}
KINDS = {UPSCALE: "upscaling", FACES: "face restoration", "denoise": "denoising", "colorize": "colourisation"}
NO_MODEL = ("No {what} model found. Put one (.safetensors or a weights-only .pth) in a sub-folder of your models "
            "folder (ESRGAN/, GFPGAN/, denoise/, …) or of an A1111 install's models/, or get one:")


class RestoreDialog(QDialog):
    """``applied(label)`` after Apply; ``get_models_requested`` for the download dialog."""

    applied = Signal(str)
    get_models_requested = Signal()

    def __init__(self, runner: RestoreRunner, operation: str, factor: int = 2, parent: QWidget | None = None,
                 *, models=list_models) -> None:
        super().__init__(parent)
        self.runner = runner
        self.operation = operation
        self.outcome: RestoreOutcome | None = None
        self._list_models = models
        self.setWindowTitle(LABELS[operation])
        self.setMinimumWidth(480)

        intro = QLabel(DESCRIPTIONS.get(operation, ""))
        intro.setWordWrap(True)
        form = self._build_choices(factor)
        self._build_feedback()
        buttons = self._build_buttons()
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(self.progress)
        layout.addWidget(self.compare, 1)
        layout.addLayout(buttons)

        runner.progress.connect(self._on_progress)
        runner.finished.connect(self._on_finished)
        runner.cancelled.connect(self._on_cancelled)
        self._start_listing_models()

    # -- building -----------------------------------------------------------------------------
    def _build_choices(self, factor: int) -> QFormLayout:
        """The model and the operation's settings: all are made (`choice` reads them), the relevant ones shown."""
        self.model = QComboBox()
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model.addItem("Searching for models…", None)
        self.model.setEnabled(False)
        self.factor = QComboBox()
        for f in UPSCALE_FACTORS:
            self.factor.addItem(f"×{f}", f)
        self.factor.setCurrentIndex(max(0, self.factor.findData(factor)))
        self.factor.setToolTip("The size wanted; a model of another scale is run and its result resized")
        self._build_strength()
        self._build_selection_check()
        form = QFormLayout()
        form.addRow("Model", self.model)
        if self.operation == UPSCALE:
            form.addRow("Scale", self.factor)
        if self.operation == FACES:
            row = QHBoxLayout()
            row.addWidget(self.strength, 1)
            row.addWidget(self.strength_label)
            form.addRow("Strength", row)
        form.addRow("", self.in_selection)
        return form

    def _build_strength(self) -> None:
        """The faces' blend, with its value beside it (a slider alone does not say it)."""
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setValue(100)
        self.strength_label = QLabel("1.00")
        self.strength.valueChanged.connect(lambda v: self.strength_label.setText(f"{v / 100:.2f}"))
        self.strength.setToolTip("How much of the restored face replaces the original (blended with a feathered edge)")

    def _build_selection_check(self) -> None:
        """Offered, and on by default, only with a painted mask; an upscale always works on the whole image."""
        self.in_selection = QCheckBox("Only the selection (painted mask)")
        document = self.runner.document
        usable = not document.is_empty and bool(document.mask.any()) and self.operation != UPSCALE
        self.in_selection.setChecked(usable)
        self.in_selection.setEnabled(usable)
        self.in_selection.setToolTip("An upscale changes the whole image's size" if self.operation == UPSCALE
                                     else "Pixels outside the selection stay exactly as they are")

    def _build_feedback(self) -> None:
        """What the dialog tells as it goes, hidden until needed: a note, Get models…, progress, the compare."""
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.hide()
        self.get_models_button = push_button("Get models…", "Download a known-good restoration model",
                                             self.get_models_requested.emit)
        self.get_models_button.hide()
        self.progress = QProgressBar()
        self.progress.hide()
        self.compare = CompareView()
        self.compare.hide()

    def _build_buttons(self) -> QHBoxLayout:
        """The bottom row; which buttons show follows the stage (choose, run, review)."""
        self.detail = QCheckBox("Detail (1:1)")
        self.detail.setToolTip("Compare at the result's own pixels instead of fitted to the view")
        self.detail.toggled.connect(self._show_compare)
        self.run_button = push_button("Run", "Run it on a copy: the image changes only when you Apply", self.run)
        self.run_button.setDefault(True)
        self.run_button.setEnabled(False)  # until a model is found
        self.cancel_button = push_button("Cancel", "Stop the run; the image stays as it is", self.runner.cancel)
        self.cancel_button.hide()
        self.apply_button = push_button("Apply", "Put the result into the image (one undo step)", self.apply)
        self.apply_button.hide()
        self.discard_button = push_button("Discard", "Drop the result; the image stays as it is", self.discard)
        self.discard_button.hide()
        self.close_button = push_button("Close", "Close without changing the image", self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.detail)
        self.detail.hide()
        buttons.addStretch(1)
        for b in (self.get_models_button, self.cancel_button, self.discard_button, self.apply_button, self.run_button,
                  self.close_button):
            buttons.addWidget(b)
        return buttons

    def _start_listing_models(self) -> None:
        """Find the models on a pool thread: detection imports torch, which would freeze the window for seconds."""
        self._lister = BackgroundTask(lambda _p: self._list_models(self.operation), "Searching for models", self)
        self._lister.finished.connect(self._on_models)
        self._lister.failed.connect(lambda text: self._on_models([], text))
        self._lister.start()

    # -- choosing -----------------------------------------------------------------------------
    def _on_models(self, found, error: str = "") -> None:
        self.model.clear()
        for m in found:
            self.model.addItem(m.label, str(m.path))
            self.model.setItemData(self.model.count() - 1, str(m.path), Qt.ItemDataRole.ToolTipRole)
        self.model.setEnabled(bool(found))
        self.run_button.setEnabled(bool(found))
        if not found:
            self.model.addItem("(none found)", None)
            self._say(error or NO_MODEL.format(what=KINDS.get(self.operation, "restoration")), missing=True)

    def choice(self) -> RestoreChoice:
        return RestoreChoice(self.operation, self.model.currentData(), int(self.factor.currentData()),
                             self.strength.value() / 100, self.in_selection.isChecked() and self.in_selection.isEnabled())

    def _say(self, text: str, *, missing: bool = False) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))
        self.get_models_button.setVisible(missing)
        self._fit()

    def _fit(self) -> None:
        """Grow (never shrink) to what is shown now: a note or the compare view appeared."""
        self.layout().activate()
        hint = self.sizeHint()
        self.resize(max(self.width(), hint.width()), max(self.height(), hint.height()))

    # -- running ------------------------------------------------------------------------------
    def run(self) -> bool:
        """Start the run; False (with the reason shown) if it cannot start."""
        self.discard()
        problem = self.runner.start(self.choice())
        if problem:
            self._say(problem)
            return False
        self._say("")
        self.progress.setRange(0, 0)
        self.progress.setFormat("Loading the model…")
        self.progress.show()
        self._set_running(True)
        return True

    def _set_running(self, on: bool) -> None:
        self.cancel_button.setVisible(on)
        self.run_button.setEnabled(not on)
        for w in (self.model, self.factor, self.strength, self.close_button):
            w.setEnabled(not on)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done}/{total} " + ("faces" if self.operation == FACES else "tiles"))

    def _on_cancelled(self) -> None:
        self._set_running(False)
        self.progress.hide()
        self._say("Cancelled: the image is unchanged.")

    def _on_finished(self, outcome) -> None:
        self._set_running(False)
        self.progress.hide()
        if isinstance(outcome, RestoreFailure):
            self._say(f"{outcome.title}: {outcome.message}", missing=outcome.missing_model)
            return
        self.outcome = outcome
        self._show_compare()
        for b in (self.compare, self.detail, self.apply_button, self.discard_button):
            b.show()
        self.apply_button.setDefault(True)
        h, w = outcome.pixels.shape[:2]
        self._say(f"{outcome.label} · {w}×{h} · {outcome.elapsed_s:.1f} s. Compare, then Apply (one undo step) or Discard.")

    def _show_compare(self) -> None:
        o = self.outcome
        if o is None:
            return
        detail = self.detail.isChecked()  # a 1:1 crop is quick; the fitted pair was made on the pool thread
        self.compare.set_images(*(compare_pair(o.before, o.pixels, o.focus, True) if detail else o.preview))

    # -- review -------------------------------------------------------------------------------
    def apply(self) -> bool:
        if self.outcome is None:
            return False
        problem = self.runner.apply(self.outcome)
        if problem:
            self._say(problem)
            self.discard()
            return False
        label = self.outcome.label
        self.outcome = None
        self.applied.emit(label)
        self.accept()
        return True

    def discard(self) -> None:
        self.outcome = None
        self.compare.set_images(None, None)
        for b in (self.compare, self.detail, self.apply_button, self.discard_button):
            b.hide()
        self.run_button.setDefault(True)

    def reject(self) -> None:
        """Closing while it runs cancels the run (the document is untouched)."""
        if self.runner.running:
            self.runner.cancel()
        super().reject()
