"""Issue 25's rough edges, each seen in a real window and checked here the way a user meets it:
focus after panel buttons, the wheel over unfocused fields, an undone Apply, the classical
method's record and seed controls, Save Project with no image, Esc in the shortcuts list, the
in-app user guide, a brush sized from the image, the Expand dialog's greyed amounts and stale
status texts."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QIcon, QWheelEvent
from PySide6.QtWidgets import QApplication

from app.core import imageio
from app.widgets import tools
from app.widgets.expand_dialog import ExpandCanvasDialog
from app.widgets import window_dialogs
from test_editor_reliability import data_dir  # noqa: F401
from test_main_window import generate_and_wait, photo, settings, widget_point  # noqa: F401
from test_window_work_never_lost import CLASSICAL, window  # noqa: F401  (the window with recovery installed)


def opened_with_candidates(qtbot, window, photo):  # noqa: F811
    window.files.open_path(photo)
    window.document.fill_rect((200, 200, 60, 60))
    return generate_and_wait(qtbot, window, CLASSICAL)


def wheel(widget, up: bool = True) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, widget.mapToGlobal(centre), QPoint(), QPoint(0, 120 if up else -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_after_apply_keys_go_to_the_canvas_and_space_drag_pans(qtbot, window, photo):
    opened_with_candidates(qtbot, window, photo)
    window.brush_size.setFocus()
    qtbot.waitUntil(window.brush_size.hasFocus, timeout=5000)
    qtbot.mouseClick(window.candidates_panel.apply_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(window.canvas.hasFocus, timeout=5000)
    mask, offset = window.document.mask.copy(), window.canvas.offset
    qtbot.keyPress(window.canvas, Qt.Key.Key_Space)
    start, end = widget_point(window.canvas, 100, 100), widget_point(window.canvas, 160, 130)
    qtbot.mousePress(window.canvas, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(window.canvas, end)
    qtbot.mouseRelease(window.canvas, Qt.MouseButton.LeftButton, pos=end)
    qtbot.keyRelease(window.canvas, Qt.Key.Key_Space)
    assert np.array_equal(window.document.mask, mask)  # no stroke
    assert window.canvas.offset != offset  # panned


def test_the_wheel_changes_a_field_only_when_it_has_focus(qtbot, window):
    blur = window.params_panel.mask_blur
    blur.setValue(4)
    window.canvas.setFocus()
    wheel(blur, up=False)
    assert blur.value() == 4  # scrolling the panel over it changed nothing
    blur.setFocus()
    qtbot.waitUntil(blur.hasFocus, timeout=5000)
    wheel(blur, up=True)
    assert blur.value() == 5
    combo = window.params_panel.scheduler
    index = combo.currentIndex()
    window.canvas.setFocus()
    wheel(combo, up=False)
    assert combo.currentIndex() == index


def test_an_undone_apply_is_unmarked_everywhere(qtbot, window, photo, tmp_path):
    record = opened_with_candidates(qtbot, window, photo)
    window.candidates_panel.apply_button.click()
    assert "✓ applied" in window.history_panel.list.item(0).text()
    window.menu_actions.undo.trigger()
    assert record.applied is None and "✓ applied" not in window.history_panel.list.item(0).text()
    assert window.status.message.text().startswith("Undone: Apply result")
    assert "seed" not in window.menu_actions.redo.text()  # "Redo Apply result (Classical — Telea …)"
    window.menu_actions.redo.trigger()
    assert record.applied == 0 and window.status.message.text().startswith("Redone: Apply result")


def test_the_classical_method_records_no_sampling_and_offers_no_new_seed(qtbot, window, photo, tmp_path):
    opened_with_candidates(qtbot, window, photo)
    window.candidates_panel.apply_button.click()
    with qtbot.waitSignal(window.session.saver.saved, timeout=20000):
        window.files.save_result(tmp_path / "out.png")
    text = Image.open(tmp_path / "out.png").text["parameters"]
    for field in ("Schedule type", "Sampler", "Steps", "Seed", "CFG scale"):
        assert field not in text
    panel = window.params_panel
    window.model_picker.model_changed.emit("builtin:telea")
    assert not panel.seed.isEnabled() and not panel.random_seed.isEnabled() and not panel.reuse_seed.isEnabled()
    window.history_panel.list.setCurrentRow(0)
    assert not window.history_panel.new_seed_button.isEnabled() and window.history_panel.rerun_button.isEnabled()


def test_save_project_needs_an_image_and_esc_is_in_the_shortcuts(qtbot, window, photo):
    save_project = next(a for a in window.file_menu.actions() if a.text().replace("&", "") == "Save Project")
    assert not save_project.isEnabled()
    window.files.open_path(photo)
    assert save_project.isEnabled()
    dialog = window_dialogs.show_shortcuts(window)
    assert ("Esc", "Cancel") in dialog.rows
    dialog.close()


def test_help_documentation_shows_the_guide_in_the_app(qtbot, window):
    dialog = window_dialogs.open_docs(window, window.message_bar)
    assert dialog is not None and dialog.isVisible()
    assert "Inpaint Studio" in dialog.browser.toPlainText() and len(dialog.browser.toPlainText()) > 2000
    dialog.close()


def test_the_brush_is_sized_from_the_image_and_remembered_per_size_class(qtbot, window, tmp_path):
    big = tmp_path / "big.png"
    imageio.save_image(big, np.zeros((2000, 3000, 3), np.uint8))
    small = tmp_path / "small.png"
    imageio.save_image(small, np.zeros((300, 400, 3), np.uint8))
    assert window.files.open_path(big)
    qtbot.waitUntil(lambda: window.document.width == 3000, timeout=20000)  # 6 MP loads on a pool thread
    assert window.canvas.brush_size == tools.default_brush_size(3000, 2000) == 250
    window.brush_size.setValue(120)  # the user's choice for photos of this size
    window.files.open_path(small)
    assert window.canvas.brush_size == 33 and window.brush_size.value() == 33
    assert window.files.open_image_array(np.zeros((2400, 3200, 3), np.uint8))  # another photo of the big class
    assert window.canvas.brush_size == 120


def test_expand_dialog_shows_what_an_aspect_adds_in_the_greyed_fields(qtbot):
    dialog = ExpandCanvasDialog(1024, 1024)
    qtbot.addWidget(dialog)
    assert dialog.sides["right"].value() == 256
    dialog.aspect.setCurrentText("16:9")
    exp = dialog.expansion()
    assert not dialog.sides["left"].isEnabled()
    assert [dialog.sides[s].value() for s in ("left", "top", "right", "bottom")] == [exp.left, exp.top, exp.right, exp.bottom]
    assert exp.top == exp.bottom == 0 and abs(exp.left - exp.right) <= 1 and exp.left + exp.right >= 1820 - 1024


def test_status_texts_are_never_stale(qtbot, window, photo, tmp_path):
    window.files.open_path(photo)
    missing = tmp_path / "no-such-folder" / "out.inpaint"
    window.files.save_project_to(missing)
    qtbot.waitUntil(lambda: not window.session.saver.busy, timeout=20000)
    assert "Saving" not in window.status.message.text() and "nothing was written" in window.status.message.text()


def test_the_restore_preview_shows_the_mask(tmp_path):
    """The recovery dialog shows the file's thumbnail: painted work (often all there is) is tinted red in it."""
    import cv2

    from app.storage.project import ProjectState, project_info, save_project

    mask = np.zeros((64, 128), np.uint8)
    mask[:, :64] = 255
    path = save_project(tmp_path / "r.inpaint", ProjectState(np.full((64, 128, 3), 200, np.uint8), np.full((64, 128, 3), 200, np.uint8), mask))
    thumb = cv2.cvtColor(cv2.imdecode(np.frombuffer(project_info(path).thumbnail_png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    painted, clear = thumb[32, 10].astype(int), thumb[32, 120].astype(int)
    assert clear.tolist() == [200, 200, 200] and painted[0] > painted[1] + 60  # red where the mask is


def test_greyed_seed_buttons_look_greyed(qtbot, window):
    window.model_picker.model_changed.emit("builtin:telea")
    dice = window.params_panel.random_seed
    assert not dice.isEnabled()
    normal = dice.icon().pixmap(32, 32, QIcon.Mode.Normal).toImage()
    disabled = dice.icon().pixmap(32, 32, QIcon.Mode.Disabled).toImage()

    def ink(image) -> int:
        return sum(image.pixelColor(x, y).alpha() for x in range(image.width()) for y in range(image.height()))

    assert 0 < ink(disabled) < 0.5 * ink(normal)


def test_a_long_status_line_is_shortened_with_the_whole_text_in_its_tooltip(qtbot, window):
    width = window.width()
    long = "Cannot load the model: " + "unet/diffusion_pytorch_model.safetensors is truncated " * 8
    window.status.message.setText(long)
    qtbot.wait(10)
    assert window.width() == width and window.status.message.minimumSizeHint().width() < 100  # never widens the window
    assert window.status.message.text() == long and window.status.message.toolTip() == long
    assert window.status.message.shown_text().endswith("…")
    window.status.message.setText("Saved out.png")
    assert window.status.message.toolTip() == ""


def test_a_broken_download_is_listed_as_incomplete_not_unsupported(qtbot, settings, tmp_path):  # noqa: F811
    import json

    from app.inference.diffusers.catalog import discover_models
    from app.widgets.main_window import MainWindow

    folder = tmp_path / "half-downloaded"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}))
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": 9, "cross_attention_dim": 768}))
    infos = [i for i in discover_models([folder]) if i.path == folder]
    assert infos and infos[0].note.startswith("incomplete")
    w = MainWindow(settings, discover=lambda: infos)
    qtbot.addWidget(w)
    w.show()
    combo = w.model_picker.combo
    qtbot.waitUntil(lambda: combo.findData(infos[0].ref) >= 0, timeout=20000)
    assert combo.itemText(combo.findData(infos[0].ref)) == "half-downloaded (incomplete)"
    w.force_close()
