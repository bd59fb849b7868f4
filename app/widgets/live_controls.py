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

from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMainWindow

from app.core.few_step import few_step_kind, recommended
from app.core.params import GenerationParams
from app.core.records import GenerationRecord
from app.editor.session import EditorSession
from app.service import LoadOptions
from app.widgets.canvas import CanvasView
from app.widgets.messages import MessageBar
from app.widgets.model_picker import ModelPicker
from app.widgets.params_panel import ParamsPanel
from app.widgets.window_status import WindowStatus


class LiveControls(QObject):
    """Built once by the window (``window.live``); adds ``live_action`` and ``apply_live_action``
    to ``window``. ``current_params`` / ``run_options``: what each live run uses;
    ``update_actions``: re-enable the window's actions when Live turns on or off."""

    def __init__(self, window: QMainWindow, session: EditorSession, *, params_panel: ParamsPanel,
                 model_picker: ModelPicker, canvas: CanvasView, status: WindowStatus, messages: MessageBar,
                 current_params: Callable[[], GenerationParams], run_options: Callable[[], LoadOptions],
                 update_actions: Callable[[], None]) -> None:
        super().__init__(window)
        from app.widgets.window_layout import action

        self.session, self.params_panel, self.canvas, self.status, self.messages = (
            session, params_panel, canvas, status, messages)
        self.current_params, self.run_options, self.update_actions = current_params, run_options, update_actions
        self.painter = session.live
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
        self.painter.failed.connect(lambda title, text: status.message.setText(f"Live: {title}. {text}"))
        params_panel.changed.connect(self._on_params_changed)
        model_picker.model_changed.connect(lambda _ref: self._on_params_changed())

    def set_live(self, on: bool) -> None:
        if on == self.painter.enabled:
            return
        if on:
            if self.session.generating:  # one thing at a time: the normal run finishes first
                self.live_action.setChecked(False)
                self.messages.show_message("info", "Busy", "A generation is running; cancel it (Esc) or wait, then turn Live on.")
                return
            self.painter.start(lambda: (self.current_params(), self.run_options()))
            self.status.message.setText(f"Live on (seed {self.painter.seed}): paint, and the result follows.")
        else:
            self.painter.stop()
            self.status.message.setText("Live off. The image is unchanged unless you applied a live result.")
        self.update_actions()

    def _on_params_changed(self) -> None:
        params = self.current_params()
        kind = few_step_kind(params)
        if kind is not None and kind != self._kind and (better := recommended(params)) is not None:
            self._kind = kind
            self.params_panel.set_params(better)  # emits changed again: that one requests the update
            self.status.message.setText(f"{kind.kind}: {kind.scheduler}, {kind.steps} steps, guidance "
                                               f"{kind.guidance:g} (recommended; change them if you like).")
            return
        self._kind = kind
        self.painter.request()

    def _show(self, record: GenerationRecord | None) -> None:
        canvas = self.canvas
        if record is None or record.candidates[0].shape != self.session.document.pixels.shape:
            canvas.set_live_layer(None)
        else:
            region = None
            for r in record.regions:
                region = r if region is None else region.union(r)
            region = region or self.session.document.bounds
            canvas.set_live_layer(record.candidates[0][region.slices], region)
            self.status.message.setText(f"Live result {self.painter.finished} (seed {record.params.seed}, "
                                               f"{record.elapsed_s:.2f} s) — Apply Live keeps it.")
        self.apply_live_action.setEnabled(record is not None)

    def apply(self) -> bool:
        changed = self.painter.apply()
        if changed is None:
            return False
        self.status.message.setText("Live result applied — Undo (Ctrl+Z) restores the previous pixels."
                                           if changed else "The live result equals the image; nothing changed.")
        return True
