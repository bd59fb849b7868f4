"""The window's side of live painting (`app.editor.live`): the Live toggle, Apply Live Result,
the live layer on the canvas, and the few-step recommendations.

While Live is on, every finished edit (the session's live painter listens to the undo stack)
and every change of the parameters (prompt, strength, seed…) asks for an update; the canvas
shows the newest result over the mask overlay (under the stroke being painted). Choosing an LCM, TCD or Hyper-SD LoRA (its
``<lora:…>`` tag in the prompt) or a model named so sets that family's recommended scheduler,
steps and guidance once, when it first appears (`app.core.few_step`); the user may change them
afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.core.few_step import few_step_kind, recommended
from app.core.records import GenerationRecord

if TYPE_CHECKING:
    from app.widgets.main_window import MainWindow


class LiveControls(QObject):
    """Built once by the window (``window.live``); adds ``live_action`` and ``apply_live_action``."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        from app.widgets.window_layout import action

        self.window = window
        self.painter = window.session.live
        self._kind = None  # the few-step family last seen in the parameters
        self.live_action = action(window, "&Live Painting", None, "Ctrl+L", "Live: each stroke regenerates the masked "
                                  "region at once (few steps, fixed seed); Apply keeps the result (Ctrl+L)",
                                  checkable=True)
        self.live_action.setIconText("Live")
        self.live_action.toggled.connect(self.set_live)
        self.apply_live_action = action(window, "Apply &Live Result", self.apply, "Ctrl+Shift+Return",
                                        "Make the live result a normal history entry (undoable)")
        self.apply_live_action.setIconText("Apply Live")
        self.apply_live_action.setEnabled(False)
        self.painter.updated.connect(self._show)
        self.painter.failed.connect(lambda title, text: window.status_message.setText(f"Live: {title}. {text}"))
        window.params_panel.changed.connect(self._on_params_changed)
        window.model_picker.model_changed.connect(lambda _ref: self._on_params_changed())

    def set_live(self, on: bool) -> None:
        if on == self.painter.enabled:
            return
        if on:
            if self.window.session.generating:  # one thing at a time: the normal run finishes first
                self.live_action.setChecked(False)
                self.window.show_message("info", "Busy", "A generation is running; cancel it (Esc) or wait, then turn Live on.")
                return
            self.painter.start(lambda: (self.window.current_params(), self.window.run_options()))
            self.window.status_message.setText(f"Live on (seed {self.painter.seed}): paint, and the result follows.")
        else:
            self.painter.stop()
            self.window.status_message.setText("Live off. The image is unchanged unless you applied a live result.")
        self.window._update_actions()

    def _on_params_changed(self) -> None:
        params = self.window.current_params()
        kind = few_step_kind(params)
        if kind is not None and kind != self._kind and (better := recommended(params)) is not None:
            self._kind = kind
            self.window.params_panel.set_params(better)  # emits changed again: that one requests the update
            self.window.status_message.setText(f"{kind.kind}: {kind.scheduler}, {kind.steps} steps, guidance "
                                               f"{kind.guidance:g} (recommended; change them if you like).")
            return
        self._kind = kind
        self.painter.request()

    def _show(self, record: GenerationRecord | None) -> None:
        canvas = self.window.canvas
        if record is None or record.candidates[0].shape != self.window.document.pixels.shape:
            canvas.set_live_layer(None)
        else:
            region = None
            for r in record.regions:
                region = r if region is None else region.union(r)
            region = region or self.window.document.bounds
            canvas.set_live_layer(record.candidates[0][region.slices], region)
            self.window.status_message.setText(f"Live result {self.painter.finished} (seed {record.params.seed}, "
                                               f"{record.elapsed_s:.2f} s) — Apply Live keeps it.")
        self.apply_live_action.setEnabled(record is not None)

    def apply(self) -> bool:
        changed = self.painter.apply()
        if changed is None:
            return False
        self.window.status_message.setText("Live result applied — Undo (Ctrl+Z) restores the previous pixels."
                                           if changed else "The live result equals the image; nothing changed.")
        return True
