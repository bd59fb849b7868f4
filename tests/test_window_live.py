"""The window's Live toggle (issue 31): strokes update a live layer over the canvas that stays
out of the history until Apply Live Result; few-step LoRAs set their recommended settings."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from doubles import SeedBackend, shown_window
from app.core.schedulers import split
from app.editor.worker import GenerationWorker


@pytest.fixture
def window(qtbot, tmp_path):
    w = shown_window(qtbot, tmp_path / "s.ini", GenerationWorker(lambda *a: SeedBackend()))
    yield w
    w.force_close()


def stroke(qtbot, canvas, y: float) -> None:
    def at(x):
        p = canvas.map_from_image(QPointF(x, y))
        return QPoint(round(p.x()), round(p.y()))

    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(20))
    qtbot.mouseMove(canvas, at(60))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(60))


def test_live_layer_follows_strokes_and_enters_history_only_on_apply(qtbot, window):
    window.files.open_image_array(np.full((96, 128, 3), 90, np.uint8))
    window.params_panel.prompt.setPlainText("moss")
    doc, live = window.document, window.session.live
    window.live.live_action.trigger()
    assert live.enabled and not window.menu_actions.generate.isEnabled()
    stroke(qtbot, window.canvas, 40)
    qtbot.waitUntil(lambda: window.canvas.live_layer_shown and not live.busy, timeout=20000)
    assert doc.undo_stack.count() == 1 and doc.generations == []  # the stroke only
    assert window.live.apply_live_action.isEnabled()
    shown = live.started
    window.params_panel.prompt.setPlainText("moss, wet")  # a prompt change updates too
    qtbot.waitUntil(lambda: live.started > shown and not live.busy, timeout=20000)
    assert doc.undo_stack.count() == 1
    window.live.apply_live_action.trigger()
    assert doc.undo_stack.count() == 2 and len(doc.generations) == 1 and doc.generations[0].params.prompt == "moss, wet"
    assert (doc.pixels[40, 30:50] == live.seed % 256).all() and not window.canvas.live_layer_shown
    window.live.live_action.trigger()
    assert not live.enabled and window.menu_actions.generate.isEnabled()


def test_choosing_a_few_step_lora_sets_its_recommended_settings(qtbot, window):
    panel = window.params_panel
    panel.prompt.setPlainText("a cat <lora:lcm-lora-sdv1-5:1>")
    params = window.current_params()
    assert (split(params.scheduler)[0], params.steps, params.guidance) == ("LCM", 6, 1.5)
    panel.steps.setValue(4)  # the user's choice afterwards stays
    panel.prompt.setPlainText("a dog <lora:lcm-lora-sdv1-5:1>")
    assert window.current_params().steps == 4
