"""The Control layers panel and overlay in a real window, offscreen: paint a control layer with the
canvas brush, undo/redo it from the window, make one from the image, save and reopen a project,
and Generate sends the layers to the worker."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from doubles import SeedBackend, shown_window
from app.core import imageio
from app.core.control_preprocess import preprocess
from app.core.params import GenerationParams
from app.editor.worker import GenerationWorker
from app.widgets import tools


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))
    w = shown_window(qtbot, tmp_path / "s.ini", worker=GenerationWorker(lambda *a: SeedBackend()))
    image = np.full((120, 160, 3), 40, np.uint8)
    image[30:90, 40:110] = (230, 200, 20)  # a bright block: edges for the preprocessors
    w.files.open_image_array(image)
    yield w
    w.force_close()


def point(canvas, x: float, y: float) -> QPoint:
    p = canvas.map_from_image(QPointF(x, y))
    return QPoint(round(p.x()), round(p.y()))


def stroke(qtbot, canvas, points) -> None:
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point(canvas, *points[0]))
    for p in points[1:]:
        qtbot.mouseMove(canvas, point(canvas, *p))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point(canvas, *points[-1]))


def test_the_brush_paints_the_control_layer_while_paint_on_layer_is_on(qtbot, window):
    panel, doc, canvas = window.control_panel, window.document, window.canvas
    assert window.control_dock.isVisible() and panel.add_button.isEnabled() and not panel.paint_check.isEnabled()
    panels = next(a.menu() for a in window.view_menu.actions() if a.menu() is not None and a.text() == "&Panels")
    assert "Control layers" in [a.text() for a in panels.actions()]
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    layer = doc.controls.active
    assert layer is not None and panel.layers.count() == 1 and panel.paint_check.isEnabled()
    panel.visible_check.setChecked(False)
    panel.paint_check.setChecked(True)
    assert layer.visible and panel.visible_check.isChecked()  # painting shows the layer
    canvas.set_tool(tools.BRUSH)
    canvas.set_brush_size(8)
    stroke(qtbot, canvas, [(20, 20), (60, 20), (100, 20)])
    assert layer.image[20, 60].tolist() == [255, 255, 255] and not doc.mask.any()
    painted = layer.image.copy()
    canvas.set_tool(tools.ERASER)
    stroke(qtbot, canvas, [(60, 20), (61, 20)])
    assert layer.image[20, 60].tolist() == [0, 0, 0]
    window.menu_actions.undo.trigger()
    assert np.array_equal(layer.image, painted)
    window.menu_actions.undo.trigger()
    assert not layer.image.any()
    window.menu_actions.redo.trigger()
    assert np.array_equal(layer.image, painted)
    panel.paint_check.setChecked(False)  # the brush paints the mask again
    canvas.set_tool(tools.BRUSH)
    stroke(qtbot, canvas, [(60, 100), (62, 100)])
    assert doc.mask[100, 60] == 255 and np.array_equal(layer.image, painted)


def test_from_image_and_settings_edit_the_active_layer(qtbot, window):
    panel, doc = window.control_panel, window.document
    panel.add_layer()
    layer = doc.controls.active
    panel.module_box.setCurrentText("canny")
    assert layer.module == "canny"
    assert panel.make_from_image()
    assert np.array_equal(layer.image, preprocess("canny", doc.pixels))
    panel.module_box.setCurrentText("depth")
    assert not panel.make_from_image()  # needs a model: said in the message bar, nothing changed
    assert window.message_bar.isVisible() and "dpt_hybrid" in window.message_bar.text
    panel.model_box.setEditText("control_v11p_sd15_canny")
    panel.weight.setValue(0.6)
    panel.end.setValue(0.8)
    panel.opacity.setValue(30)
    assert (layer.model, layer.weight, layer.end, layer.opacity) == ("control_v11p_sd15_canny", 0.6, 0.8, 0.3)
    panel.start.setValue(0.9)  # past the end: the end moves along
    assert layer.start == pytest.approx(0.9) and layer.end == pytest.approx(0.95)
    panel.layers.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert not layer.enabled and doc.controls.units() == ()


def test_selection_only_preprocesses_inside_the_masks_box(qtbot, window):
    panel, doc = window.control_panel, window.document
    panel.add_layer()
    panel.selection_check.setChecked(True)
    panel.module_box.setCurrentText("canny")
    assert not panel.make_from_image()  # no mask yet
    doc.fill_rect((20, 20, 40, 40))
    assert panel.make_from_image()
    layer = doc.controls.active
    inside = layer.image[20:60, 20:60]
    assert inside.any() and not layer.image[70:, :].any() and not layer.image[:, 70:].any()


def test_import_a_file_fits_it_to_the_picture(qtbot, window, tmp_path):
    panel, doc = window.control_panel, window.document
    panel.add_layer()
    scribble = np.zeros((60, 80), np.uint8)
    scribble[30, :] = 255
    path = tmp_path / "scribble.png"
    imageio.save_image(path, scribble)
    assert panel.import_file(str(path))
    layer = doc.controls.active
    assert layer.image.shape == (120, 160, 3) and layer.image[60:62, 80].max() > 100 and not layer.image[10, 10].any()


def test_project_round_trip_through_the_window(qtbot, window, tmp_path):
    panel, doc = window.control_panel, window.document
    panel.add_layer()
    panel.module_box.setCurrentText("scribble")
    panel.make_from_image()
    panel.model_box.setEditText("scribble-model")
    layer = doc.controls.active
    path = tmp_path / "work.inpaint"
    with qtbot.waitSignal(window.session.saver.saved, timeout=20000):
        assert window.session.save_project(path, GenerationParams(prompt="p"))
    image = layer.image.copy()
    window.files.open_image_array(np.zeros((10, 10, 3), np.uint8))
    assert len(doc.controls) == 0 and panel.layers.count() == 0
    window.session.open_project(path)
    assert panel.layers.count() == 1 and "scribble-model" in panel.layers.item(0).text()
    assert np.array_equal(doc.controls.active.image, image) and doc.controls.active.model == "scribble-model"


def test_generate_from_the_window_sends_the_units_and_images(qtbot, window):
    panel, doc = window.control_panel, window.document
    panel.add_layer()
    panel.module_box.setCurrentText("softedge")
    panel.make_from_image()
    panel.model_box.setEditText("control_v11p_sd15_softedge")
    doc.fill_rect((50, 50, 20, 20))
    submitted: list = []
    real_submit = window.session.worker.submit
    window.session.worker.submit = lambda request: (submitted.append(request), real_submit(request))[1]
    assert window.generation.generate(GenerationParams(prompt="a wall", model="test:seed"))
    # No such ControlNet is installed here: the service refuses the run once it has the request.
    qtbot.waitUntil(lambda: submitted and not window.session.generating, timeout=20000)
    (request,) = submitted
    assert [u.module for u in request.params.controls] == ["softedge"]
    assert request.params.controls[0].model == "control_v11p_sd15_softedge"
    assert np.array_equal(request.control_images[0], doc.controls.active.image)


def test_the_overlay_shows_a_visible_layer_and_hides_a_hidden_one(qtbot, window):
    panel, doc, canvas = window.control_panel, window.document, window.canvas
    window.menu_actions.show_mask.setChecked(False)
    before = canvas.grab().toImage()
    panel.add_layer()
    doc.controls.set_image(doc.controls.active, np.full((120, 160, 3), 255, np.uint8))
    panel.opacity.setValue(100)
    centre = point(canvas, 10, 10)
    qtbot.waitUntil(lambda: canvas.grab().toImage().pixelColor(centre).red() > 200, timeout=20000)  # screen with white = white
    assert before.pixelColor(centre).red() == 40
    panel.visible_check.setChecked(False)
    qtbot.waitUntil(lambda: canvas.grab().toImage().pixelColor(centre).red() == 40, timeout=20000)


def test_a_big_image_is_preprocessed_on_a_pool_thread(qtbot, window):
    from app.widgets.control_panel import BACKGROUND_PIXELS

    panel, doc = window.control_panel, window.document
    big = np.zeros((1000, 1200, 3), np.uint8)
    big[200:800, 300:900] = 255
    assert big.shape[0] * big.shape[1] >= BACKGROUND_PIXELS
    window.files.open_image_array(big)
    panel.add_layer()
    panel.module_box.setCurrentText("canny")
    assert panel.make_from_image()
    layer = doc.controls.active
    assert panel.task is not None and not panel.from_image_button.isEnabled()
    qtbot.waitUntil(lambda: panel.task is None, timeout=20000)
    assert np.array_equal(layer.image, preprocess("canny", big)) and panel.from_image_button.isEnabled()
    assert doc.undo_stack.undoText() == "Control layer from image (canny)"
