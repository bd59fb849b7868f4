"""The window's outpaint and selection features, driven offscreen: Expand Canvas dialog → one undo
step; wand / GrabCut / select-by-click tools by key and mouse; Tools menu shows each key."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QDialog

from doubles import shown_window
from app.widgets import tools
from tinysam import build_tiny_sam


@pytest.fixture
def window(qtbot, tmp_path):
    w = shown_window(qtbot, tmp_path / "s.ini")
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :] = (20, 120, 200)
    image[30:90, 40:110] = (230, 200, 20)  # a flat yellow block
    w.files.open_image_array(image)
    yield w
    w.force_close()


def _point(canvas, x, y) -> QPoint:
    p = canvas.map_from_image(QPointF(x, y))
    return QPoint(round(p.x()), round(p.y()))


def test_tools_menu_shows_every_tool_key(window):
    texts = {a.text(): a.shortcut().toString() for a in window.tools_menu.actions()}
    for name in (tools.WAND, tools.GRABCUT, tools.SAM, tools.BRUSH):
        tool = window.canvas.tools[name]
        assert texts[tool.label] == tool.key
    assert window.outpaint_actions.expand_canvas.shortcut().toString() == "Ctrl+Alt+E"


def test_expand_dialog_preview_and_one_undo_step(window, qtbot):
    doc = window.document
    before = doc.pixels.copy()
    dialog = window.outpaint_actions.open_expand_dialog()
    dialog.aspect.setCurrentText("16:9")
    assert dialog.size_label.text() == "160×120 → 214×120"
    assert not dialog.preview.pixmap().isNull()
    dialog.aspect.setCurrentText("Custom…")
    dialog.custom.setText("nonsense")
    assert "W:H" in dialog.error_label.text() and not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()
    dialog.aspect.setCurrentText("Pixels per side")
    for side, value in zip(("left", "top", "right", "bottom"), (37, 0, 64, 5)):
        dialog.sides[side].setValue(value)
    dialog.fill_box.setCurrentIndex(dialog.fill_box.findData("inpaint"))
    dialog.done(QDialog.DialogCode.Accepted)
    assert doc.size == (261, 125) and np.array_equal(doc.pixels[0:120, 37:197], before)
    assert doc.undo_stack.count() == 1 and doc.mask[:, :37].min() == 255
    window.menu_actions.undo.trigger()
    assert np.array_equal(doc.pixels, before) and not doc.mask.any()


def test_wand_and_grabcut_by_key_and_mouse(window, qtbot):
    canvas, doc = window.canvas, window.document
    canvas.setFocus()
    qtbot.keyClick(canvas, "w")
    assert canvas.tool == tools.WAND
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(canvas, 70, 60))
    block = np.zeros((120, 160), bool)
    block[30:90, 40:110] = True
    assert np.array_equal(doc.mask > 0, block) and doc.undo_stack.undoText() == "Magic wand (add)"
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.AltModifier, _point(canvas, 70, 60))
    assert not doc.mask.any() and doc.undo_stack.undoText() == "Magic wand (subtract)"

    qtbot.keyClick(canvas, "g")
    assert canvas.tool == tools.GRABCUT
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(canvas, 30, 20))
    qtbot.mouseMove(canvas, _point(canvas, 80, 60))
    with qtbot.waitSignal(canvas.tools[tools.GRABCUT].bridge.mask_ready, timeout=20000):  # off the GUI thread
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(canvas, 120, 100))
    qtbot.waitUntil(lambda: doc.mask.any(), timeout=5000)
    sel = doc.mask > 0
    assert (sel & block).sum() / (sel | block).sum() >= 0.9 and doc.undo_stack.undoText() == "GrabCut (add)"
    window.outpaint_actions.set_selection_mode("replace")
    assert window.canvas.tools[tools.SAM].mode == "replace"


def test_select_by_click_without_a_model_says_so(window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path / "empty"))
    sam = window.canvas.tools[tools.SAM]
    with qtbot.waitSignal(sam.bridge.failed, timeout=20000) as blocker:
        window.canvas.set_tool(tools.SAM)
    assert "needs a Segment Anything model" in blocker.args[0]


def test_select_by_click_with_the_tiny_model(window, qtbot, tmp_path, monkeypatch):
    build_tiny_sam(tmp_path / "models" / "sam" / "tiny")
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path / "models"))
    canvas, doc = window.canvas, window.document
    sam = canvas.tools[tools.SAM]
    with qtbot.waitSignal(sam.bridge.status, timeout=30000, check_params_cb=lambda t: "ready" in t):
        canvas.set_tool(tools.SAM)
    with qtbot.waitSignal(sam.bridge.mask_ready, timeout=30000) as blocker:
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(canvas, 70, 60))
    mask = blocker.args[0]
    qtbot.waitUntil(lambda: doc.undo_stack.count() == 1 or not mask.any(), timeout=5000)
    assert mask.shape == (120, 160)
    assert np.array_equal(doc.mask > 0, mask)
    assert sam.bridge._segmenter.embeddings_computed == 1
    sam.bridge.shutdown()
