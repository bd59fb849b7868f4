"""CanvasView driven with real mouse and key events (offscreen): tools land on the right pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication

from app.editor.document import Document
from app.core.geometry import Bounds
from app.widgets import tools
from app.widgets.canvas import CanvasView

ZOOM, OX, OY = 2.0, 10.0, 20.0  # image (x, y) is at widget (OX + ZOOM x, OY + ZOOM y)


def w(x: float, y: float) -> QPoint:
    return QPoint(round(OX + ZOOM * x), round(OY + ZOOM * y))


@pytest.fixture
def view(qtbot):
    doc = Document()
    doc.set_image(np.full((200, 300, 3), 100, np.uint8))
    canvas = CanvasView(doc)
    qtbot.addWidget(canvas)
    canvas.resize(700, 500)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.set_view(ZOOM, QPointF(OX, OY))
    canvas.set_brush_size(10)
    canvas.set_hardness(1.0)
    return canvas, doc


def drag(qtbot, canvas, points, button=Qt.MouseButton.LeftButton, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.mousePress(canvas, button, modifier, points[0])
    for p in points[1:]:
        qtbot.mouseMove(canvas, p)
    qtbot.mouseRelease(canvas, button, modifier, points[-1])


def test_brush_stroke_paints_at_image_coordinates_under_zoom_and_pan(qtbot, view):
    canvas, doc = view
    drag(qtbot, canvas, [w(20, 30), w(60, 30), w(100, 30), w(100, 90)])  # an L: the moves matter
    assert (doc.mask[30, 20:101] == 255).all() and (doc.mask[30:91, 100] == 255).all()
    assert doc.mask[60, 60] == 0  # not the straight line from press to release
    assert doc.mask[30, 14] == 0 and doc.mask[30, 107] == 0  # radius 5 around the ends
    assert doc.mask[37, 60] == 0 and doc.mask[23, 60] == 0
    assert doc.mask[100:, :].sum() == 0
    assert doc.undo_stack.count() == 1 and doc.undo_stack.text(0) == "Brush stroke"
    doc.undo_stack.undo()
    assert not doc.mask.any()
    doc.undo_stack.redo()
    assert doc.mask[30, 60] == 255


def test_fast_mouse_move_leaves_no_gap(qtbot, view):
    canvas, doc = view
    drag(qtbot, canvas, [w(10, 10), w(250, 180)])  # one event across the whole image
    for t in np.linspace(0.0, 1.0, 50):
        x, y = 10 + t * 240, 10 + t * 170
        assert doc.mask[int(y), int(x)] == 255, (x, y)


def test_eraser_tool_and_alt_erase(qtbot, view):
    canvas, doc = view
    doc.fill_mask()
    canvas.set_tool(tools.ERASER)
    drag(qtbot, canvas, [w(50, 50), w(150, 50)])
    assert (doc.mask[50, 50:151] == 0).all() and doc.mask[80, 100] == 255
    canvas.set_tool(tools.BRUSH)
    drag(qtbot, canvas, [w(50, 100), w(150, 100)], modifier=Qt.KeyboardModifier.AltModifier)
    assert (doc.mask[100, 50:151] == 0).all()
    assert [doc.undo_stack.text(i) for i in range(3)] == ["Fill mask", "Erase stroke", "Erase stroke"]


def test_rectangle_fill_and_alt_erase(qtbot, view):
    canvas, doc = view
    canvas.set_tool(tools.RECT)
    drag(qtbot, canvas, [w(40, 50), w(70, 60), w(120, 90)])
    assert doc.mask[50:90, 40:120].all()
    assert not doc.mask[49, 40:120].any() and not doc.mask[90, 40:120].any()
    assert not doc.mask[50:90, 39].any() and not doc.mask[50:90, 120].any()
    drag(qtbot, canvas, [w(60, 60), w(80, 70)], modifier=Qt.KeyboardModifier.AltModifier)
    assert not doc.mask[60:70, 60:80].any() and doc.mask[55, 55] == 255
    assert doc.undo_stack.count() == 2


def test_lasso_fill(qtbot, view):
    canvas, doc = view
    canvas.set_tool(tools.LASSO)
    drag(qtbot, canvas, [w(100, 20), w(160, 20), w(160, 80), w(100, 80)])
    assert doc.mask[50, 130] == 255 and doc.mask[25, 105] == 255
    assert doc.mask[10, 130] == 0 and doc.mask[50, 170] == 0
    assert doc.undo_stack.count() == 1 and doc.undo_stack.text(0) == "Fill lasso"


def test_context_box_tool(qtbot, view):
    canvas, doc = view
    canvas.set_tool(tools.CONTEXT)
    with qtbot.waitSignal(canvas.context_box_changed) as blocker:
        drag(qtbot, canvas, [w(10, 10), w(90, 60)])
    assert blocker.args == [Bounds(10, 10, 80, 50)] and canvas.context_box == Bounds(10, 10, 80, 50)
    # The box is the document's: no mask change, one undo step, and undo takes it away again.
    assert not doc.mask.any() and doc.undo_stack.count() == 1 and doc.context_box == Bounds(10, 10, 80, 50)
    with qtbot.waitSignal(canvas.context_box_changed) as blocker:
        doc.undo_stack.undo()
    assert blocker.args == [None] and canvas.context_box is None and not doc.mask.any()
    doc.undo_stack.redo()
    assert canvas.context_box == Bounds(10, 10, 80, 50)
    canvas.set_context_box(Bounds(-10, -10, 1000, 50))
    assert canvas.context_box == Bounds(0, 0, 300, 40) == doc.context_box


def test_wheel_zooms_around_the_cursor(qtbot, view):
    canvas, _ = view
    anchor = QPointF(w(80, 40))
    before = canvas.map_to_image(anchor)
    with qtbot.waitSignal(canvas.zoom_changed) as blocker:
        event = QWheelEvent(
            anchor, canvas.mapToGlobal(anchor), QPoint(), QPoint(0, 120), Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
        )
        QApplication.sendEvent(canvas, event)
    assert blocker.args[0] == pytest.approx(ZOOM * 1.25)
    after = canvas.map_to_image(anchor)
    assert (after.x(), after.y()) == pytest.approx((before.x(), before.y()))


def test_pan_with_middle_button_and_space_drag(qtbot, view):
    canvas, doc = view
    drag(qtbot, canvas, [QPoint(300, 200), QPoint(330, 190)], button=Qt.MouseButton.MiddleButton)
    assert (canvas.offset.x(), canvas.offset.y()) == pytest.approx((OX + 30, OY - 10))
    canvas.setFocus()
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    drag(qtbot, canvas, [QPoint(300, 200), QPoint(280, 230)])
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert (canvas.offset.x(), canvas.offset.y()) == pytest.approx((OX + 10, OY + 20))
    assert not doc.mask.any()  # panning never paints
    # painting after the pan lands on the new position
    canvas.set_view(ZOOM, QPointF(OX, OY))
    drag(qtbot, canvas, [w(5, 5), w(6, 5)])
    assert doc.mask[5, 5] == 255


def test_keys_resize_brush_switch_tools_and_zoom(qtbot, view):
    canvas, _ = view
    canvas.setFocus()
    canvas.set_brush_size(100)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.brush_size == 115
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert canvas.brush_size < 100
    canvas.set_hardness(0.5)
    qtbot.keyClick(canvas, Qt.Key.Key_BraceRight)
    assert canvas.hardness == pytest.approx(0.6)
    with qtbot.waitSignal(canvas.tool_changed) as blocker:
        qtbot.keyClick(canvas, Qt.Key.Key_E)
    assert blocker.args == ["eraser"] and canvas.tool == tools.ERASER
    qtbot.keyClick(canvas, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == pytest.approx(ZOOM * 1.25)
    qtbot.keyClick(canvas, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == 1.0
    qtbot.keyClick(canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == pytest.approx(min(700 / 300, 500 / 200))
    canvas.resize(350, 500)  # fit mode follows the widget size
    assert canvas.zoom == pytest.approx(350 / 300)


def test_cursor_moved_reports_image_pixels(qtbot, view):
    canvas, _ = view
    with qtbot.waitSignal(canvas.cursor_moved) as blocker:
        qtbot.mouseMove(canvas, w(123.25, 45.25))
    assert blocker.args == [123, 45]


def rgb(image, point: QPoint):
    c = QColor(image.pixel(point))
    return c.red(), c.green(), c.blue()


def test_overlays_render_mask_preview_candidate_and_generation_preview(qtbot, view):
    canvas, doc = view
    canvas.mask_overlay.set_color(QColor(255, 0, 0))
    canvas.mask_overlay.set_opacity(1.0)
    doc.fill_rect(Bounds(0, 0, 50, 50))
    shot = canvas.grab().toImage()
    assert rgb(shot, w(25, 25)) == (255, 0, 0) and rgb(shot, w(100, 100)) == (100, 100, 100)
    canvas.mask_overlay.set_visible(False)
    assert rgb(canvas.grab().toImage(), w(25, 25)) == (100, 100, 100)
    canvas.mask_overlay.set_visible(True)
    # live preview of a grown mask, without changing the document
    canvas.mask_overlay.set_preview(doc.grown_mask(20))
    assert rgb(canvas.grab().toImage(), w(60, 25)) == (255, 0, 0) and doc.mask[25, 60] == 0
    canvas.mask_overlay.set_preview(None)
    assert rgb(canvas.grab().toImage(), w(60, 25)) == (100, 100, 100)
    # a candidate replaces the document pixels and hides the overlay
    candidate = np.zeros_like(doc.pixels)
    candidate[..., 1] = 200
    canvas.show_candidate(candidate)
    assert canvas.candidate_shown and rgb(canvas.grab().toImage(), w(25, 25)) == (0, 200, 0)
    canvas.show_candidate(None)
    assert rgb(canvas.grab().toImage(), w(100, 100)) == (100, 100, 100)
    # a small generation preview is scaled into its region
    canvas.set_preview(np.full((8, 8, 3), (0, 0, 250), np.uint8), Bounds(200, 100, 80, 80))
    shot = canvas.grab().toImage()
    assert rgb(shot, w(240, 140)) == (0, 0, 250) and rgb(shot, w(190, 140)) == (100, 100, 100)
    canvas.set_preview(None)
    assert rgb(canvas.grab().toImage(), w(240, 140)) == (100, 100, 100)


class PaintSpy(QObject):
    def __init__(self):
        super().__init__()
        self.rects = []

    def eventFilter(self, obj, event):  # noqa: N802
        if event.type() == QEvent.Type.Paint:
            self.rects.append(event.rect())
        return False


def test_a_stroke_repaints_only_its_dirty_rectangle(qtbot, view):
    canvas, doc = view
    spy = PaintSpy()
    canvas.installEventFilter(spy)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=w(100, 100))
    qtbot.mouseMove(canvas, w(104, 100))
    qtbot.wait(30)  # let the event loop deliver the paint events
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=w(104, 100))
    canvas.removeEventFilter(spy)
    assert spy.rects, "the stroke caused no repaint"
    widget_area = canvas.width() * canvas.height()
    assert all(r.width() * r.height() < widget_area / 20 for r in spy.rects), spy.rects
    assert doc.mask[100, 102] == 255


def test_zoomed_out_levels_follow_dirty_rectangles_exactly(qtbot, view):
    """Levels updated by dirty rect must equal levels rebuilt from scratch (no stale pixels)."""
    from app.widgets.canvas import LevelCache

    canvas, doc = view
    canvas.set_zoom(0.2)
    canvas.grab()  # builds the mask levels lazily
    drag(qtbot, canvas, [QPoint(100, 100), QPoint(160, 130)])
    doc.fill_rect(Bounds(3, 5, 17, 9))
    built = canvas.mask_overlay.levels
    fresh = LevelCache(doc.mask, "mask")
    level = built.level_for(canvas.zoom)
    assert level >= 2
    for k in range(1, level + 1):
        fresh.image(k)
        assert np.array_equal(built._arrays[k], fresh._arrays[k]), k
    assert built._arrays[1].any()


def test_reset_clears_candidate_preview_and_context_box(qtbot, view):
    canvas, doc = view
    canvas.show_candidate(np.zeros_like(doc.pixels))
    canvas.set_preview(np.zeros((4, 4, 3), np.uint8), Bounds(0, 0, 10, 10))
    canvas.set_context_box(Bounds(0, 0, 50, 50))
    canvas.mask_overlay.set_preview(np.full(doc.mask.shape, 255, np.uint8))
    with qtbot.waitSignal(canvas.context_box_changed):
        doc.set_image(np.full((40, 30), 30000, np.uint16))  # 16-bit grey: drawn through the 8-bit cache
    assert not canvas.candidate_shown and canvas.preview_region is None and canvas.context_box is None
    assert not canvas.mask_overlay.preview_active
    assert canvas.zoom == pytest.approx(min(700 / 30, 500 / 40))  # a new image is fitted
    shot = canvas.grab().toImage()
    centre = canvas.map_from_image(QPointF(15, 20)).toPoint()
    assert rgb(shot, centre) == (117, 117, 117)  # (30000 + 128) // 257


def test_undo_pressed_mid_stroke_ends_the_drag_cleanly(qtbot, view):
    canvas, doc = view
    doc.fill_rect(Bounds(0, 0, 20, 20))
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=w(100, 100))
    qtbot.mouseMove(canvas, w(120, 100))
    doc.undo_stack.undo()
    qtbot.mouseMove(canvas, w(140, 100))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=w(140, 100))
    assert not doc.mask.any() and doc.undo_stack.index() == 0 and not doc.in_stroke
    drag(qtbot, canvas, [w(50, 50), w(60, 50)])  # the next stroke works normally
    assert doc.mask[50, 55] == 255 and doc.undo_stack.count() == 1
