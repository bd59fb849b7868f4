"""Canvas tools as objects in one table: each knows its label, key, and what a left-button drag does.

The canvas owns view state (zoom, pan, hover) and hands a drag in image coordinates to the current
tool; tools change the Document only through its undoable methods. Adding a tool is one class and
one row in `TOOLS`, not another branch in the canvas's mouse handlers. Alt inverts paint/erase.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF

from app.core import selection
from app.core.geometry import Bounds
from app.widgets.tools import BRUSH, CONTEXT, ERASER, GRABCUT, LASSO, RECT, SAM, WAND

if TYPE_CHECKING:
    from app.widgets.canvas import CanvasView

_DARK = QPen(QColor(0, 0, 0, 200), 1.0)
_LIGHT = QPen(QColor(255, 255, 255, 220), 1.0, Qt.PenStyle.DashLine)


def pixel_box(a: QPointF, b: QPointF, width: int, height: int) -> Bounds:
    """Pixels whose centres lie inside the dragged rectangle, clamped to the image."""
    x0, x1 = sorted((a.x(), b.x()))
    y0, y1 = sorted((a.y(), b.y()))
    ix0, iy0 = math.ceil(x0 - 0.5), math.ceil(y0 - 0.5)
    ix1, iy1 = math.floor(x1 - 0.5) + 1, math.floor(y1 - 0.5) + 1
    return Bounds(ix0, iy0, ix1 - ix0, iy1 - iy0).clamp(width, height)


def _outlined(p: QPainter, draw) -> None:
    for pen in (_DARK, _LIGHT):
        p.setPen(pen)
        draw()


class Tool:
    """A drag on the canvas: ``press`` → ``move``… → ``release``; ``cancel`` ends it early.

    ``active`` says whether a drag is in progress; ``shows_brush`` whether the canvas draws the
    round brush outline under the cursor.
    """

    name = ""
    label = ""
    key = ""
    hint = ""
    shows_brush = False

    def __init__(self) -> None:
        self.active = False
        self.erase = False

    def press(self, canvas: CanvasView, img: QPointF, alt: bool) -> None:
        self.active = True

    def move(self, canvas: CanvasView, img: QPointF) -> None:
        """A mouse move during the drag."""

    def release(self, canvas: CanvasView, img: QPointF) -> None:
        self.active = False

    def cancel(self, canvas: CanvasView) -> None:
        self.active = False

    def paint(self, canvas: CanvasView, p: QPainter) -> None:
        """Draw the drag's rubber band (if any) over the image."""

    @property
    def tooltip(self) -> str:
        return f"{self.label} ({self.key}) — {self.hint}"


def stroke_target(canvas: CanvasView):
    """What the brush paints: the active control layer while the Control layers panel's "Paint on
    layer" is on (`app.editor.control_layer.ControlLayers`, the same stroke methods), else the mask."""
    controls = getattr(canvas.document, "controls", None)
    return controls if controls is not None and controls.painting and controls.active is not None else canvas.document


class BrushTool(Tool):
    """Round brush strokes; one stroke is one undo command. ``erases`` picks the default mode."""

    shows_brush = True
    hint = "Alt erases"

    def __init__(self, name: str, label: str, key: str, erases: bool) -> None:
        super().__init__()
        self.name, self.label, self.key, self.erases = name, label, key, erases
        self._last: QPointF | None = None
        self._target = None  # the document (mask) or its control layers, fixed for the stroke

    def press(self, canvas: CanvasView, img: QPointF, alt: bool) -> None:
        super().press(canvas, img, alt)
        self._target = stroke_target(canvas)
        self._target.begin_stroke("erase" if self.erases != alt else "paint")
        self._last = img
        self._segment(canvas, img, img)

    def _segment(self, canvas: CanvasView, a: QPointF, b: QPointF) -> None:
        brush = canvas.brush
        self._target.stroke_segment((a.x(), a.y()), (b.x(), b.y()), brush.size / 2, brush.hardness)

    def move(self, canvas: CanvasView, img: QPointF) -> None:
        if self._target is None or not self._target.in_stroke:
            self.active = False  # the stroke was cancelled under us (undo pressed mid-stroke)
            return
        self._segment(canvas, self._last or img, img)
        self._last = img

    def release(self, canvas: CanvasView, img: QPointF) -> None:
        super().release(canvas, img)
        target = self._target
        if target is not None and target.in_stroke:
            last = self._last or img
            if (last.x(), last.y()) != (img.x(), img.y()):
                self._segment(canvas, last, img)
            target.end_stroke()
        self._last = self._target = None

    def cancel(self, canvas: CanvasView) -> None:
        super().cancel(canvas)
        if self._target is not None and self._target.in_stroke:
            self._target.end_stroke()  # keep what was painted: it is undoable
        self._last = self._target = None


class BoxTool(Tool):
    """Drag a rectangle, then `commit` the pixel box it covers."""

    def __init__(self) -> None:
        super().__init__()
        self.start: QPointF | None = None
        self.end: QPointF | None = None

    def press(self, canvas: CanvasView, img: QPointF, alt: bool) -> None:
        super().press(canvas, img, alt)
        self.start, self.end, self.erase = img, img, alt

    def _band(self, canvas: CanvasView, corner: QPointF | None) -> None:
        if corner is not None and self.start is not None:
            canvas.update(canvas.image_rect_to_widget(QRectF(self.start, corner).normalized()).adjusted(-3, -3, 3, 3).toAlignedRect())

    def move(self, canvas: CanvasView, img: QPointF) -> None:
        self._band(canvas, self.end)
        self._band(canvas, img)
        self.end = img

    def release(self, canvas: CanvasView, img: QPointF) -> None:
        super().release(canvas, img)
        self._band(canvas, self.end)
        doc = canvas.document
        self.commit(canvas, pixel_box(self.start or img, img, doc.width, doc.height))
        self.start = self.end = None

    def cancel(self, canvas: CanvasView) -> None:
        super().cancel(canvas)
        self._band(canvas, self.end)
        self.start = self.end = None

    def commit(self, canvas: CanvasView, box: Bounds) -> None:
        raise NotImplementedError

    def paint(self, canvas: CanvasView, p: QPainter) -> None:
        if self.active and self.start is not None and self.end is not None:
            r = canvas.image_rect_to_widget(QRectF(self.start, self.end).normalized())
            _outlined(p, lambda: p.drawRect(r))


class RectFillTool(BoxTool):
    name, label, key, hint = RECT, "Rectangle fill", "R", "Alt erases"

    def commit(self, canvas: CanvasView, box: Bounds) -> None:
        if not box.is_empty:
            canvas.document.fill_rect(box, erase=self.erase)


class ContextBoxTool(BoxTool):
    """The box is the Document's (undoable, saved in projects); a click without a drag clears it."""

    name, label, key, hint = CONTEXT, "Context box", "C", "what the model sees"

    def commit(self, canvas: CanvasView, box: Bounds) -> None:
        canvas.set_context_box(None if box.is_empty else box)


class LassoTool(Tool):
    name, label, key, hint = LASSO, "Lasso fill", "L", "Alt erases"

    def __init__(self) -> None:
        super().__init__()
        self.points: list[QPointF] = []

    def press(self, canvas: CanvasView, img: QPointF, alt: bool) -> None:
        super().press(canvas, img, alt)
        self.points, self.erase = [img], alt

    def _dirty(self, canvas: CanvasView) -> None:
        if self.points:
            poly = QPolygonF([canvas.map_from_image(pt) for pt in self.points])
            canvas.update(poly.boundingRect().adjusted(-3, -3, 3, 3).toAlignedRect())

    def move(self, canvas: CanvasView, img: QPointF) -> None:
        if not self.points or (canvas.map_from_image(self.points[-1]) - canvas.map_from_image(img)).manhattanLength() >= 2:
            self.points.append(img)
            self._dirty(canvas)

    def release(self, canvas: CanvasView, img: QPointF) -> None:
        super().release(canvas, img)
        self.points.append(img)
        self._dirty(canvas)
        points, self.points = [(pt.x(), pt.y()) for pt in self.points], []
        canvas.document.fill_polygon(points, erase=self.erase)

    def cancel(self, canvas: CanvasView) -> None:
        super().cancel(canvas)
        self._dirty(canvas)
        self.points = []

    def paint(self, canvas: CanvasView, p: QPainter) -> None:
        if self.active and len(self.points) > 1:
            poly = QPolygonF([canvas.map_from_image(pt) for pt in self.points])
            _outlined(p, lambda: p.drawPolygon(poly))


class SelectionMode:
    """What a selection does to the mask: the tool's ``mode`` (add / subtract / replace); Alt
    turns add into subtract and subtract into add for one click."""

    mode = "add"

    def effective_mode(self, alt: bool) -> str:
        if alt and self.mode != "replace":
            return "subtract" if self.mode == "add" else "add"
        return self.mode


def _inside(canvas: CanvasView, img: QPointF) -> tuple[int, int] | None:
    x, y = math.floor(img.x()), math.floor(img.y())
    doc = canvas.document
    return (x, y) if 0 <= x < doc.width and 0 <= y < doc.height else None


class ClickSelectTool(SelectionMode, Tool):
    """A selection made by one click on the image: `click` gets the pixel released on."""

    def press(self, canvas: CanvasView, img: QPointF, alt: bool) -> None:
        super().press(canvas, img, alt)
        self.erase = alt

    def release(self, canvas: CanvasView, img: QPointF) -> None:
        super().release(canvas, img)
        point = _inside(canvas, img)
        if point is not None:
            self.click(canvas, *point, self.effective_mode(self.erase))

    def click(self, canvas: CanvasView, x: int, y: int, mode: str) -> None:
        raise NotImplementedError


class MagicWandTool(ClickSelectTool):
    """Click: select similar colours of the visible image (``tolerance`` 0–255, ``contiguous``)."""

    name, label, key, hint = WAND, "Magic wand", "W", "click a colour; Alt subtracts"

    def __init__(self) -> None:
        super().__init__()
        self.tolerance = 32
        self.contiguous = True

    def click(self, canvas: CanvasView, x: int, y: int, mode: str) -> None:
        doc = canvas.document
        doc.apply_selection(selection.magic_wand(doc.display_array(), x, y, self.tolerance, self.contiguous), mode, "Magic wand")


class BackgroundSelect:
    """Selections computed off the GUI thread by ``bridge`` (an
    `app.editor.click_segmentation.ClickSegmentation`, made on first use; the window shows its
    messages). A result is applied only if the canvas was not resized meanwhile."""

    selection_label = "Selection"
    _bridge = None

    @property
    def bridge(self):
        if self._bridge is None:
            from app.editor.click_segmentation import ClickSegmentation

            self._bridge = ClickSegmentation()
            self._bridge.mask_ready.connect(self._on_mask)
        return self._bridge

    def _token(self, doc, mode: str) -> tuple:
        return doc, doc.mask.shape, mode, self.selection_label

    @staticmethod
    def _on_mask(mask, token) -> None:
        doc, shape, mode, label = token
        if not doc.is_empty and doc.mask.shape == shape == mask.shape:
            doc.apply_selection(mask, mode, label)


class GrabCutTool(BackgroundSelect, SelectionMode, BoxTool):
    """Drag a rectangle around an object: OpenCV GrabCut selects it (on the worker thread)."""

    name, label, key, hint = GRABCUT, "GrabCut rectangle", "G", "drag around an object; Alt subtracts"
    selection_label = "GrabCut"

    def commit(self, canvas: CanvasView, box: Bounds) -> None:
        if box.width >= 3 and box.height >= 3:  # a click without a drag selects nothing
            doc = canvas.document
            image = doc.display_array().copy()
            self.bridge.run(lambda: selection.grabcut(image, box), self._token(doc, self.effective_mode(self.erase)))


class SamClickTool(BackgroundSelect, ClickSelectTool):
    """Click an object: Segment Anything selects it (see `app.inference.segment`)."""

    name, label, key, hint = SAM, "Select by click (SAM)", "S", "click an object; Alt subtracts"
    selection_label = "Select by click"

    @staticmethod
    def image_key(doc) -> str:
        """The embedding cache key: this document's pixels at this version (no hashing)."""
        return f"{id(doc)}:{doc.image_version}"

    def prepare(self, doc) -> None:
        if not doc.is_empty:
            self.bridge.prepare(doc.display_array(), self.image_key(doc))

    def click(self, canvas: CanvasView, x: int, y: int, mode: str) -> None:
        doc = canvas.document
        self.bridge.click(doc.display_array(), [(x + 0.5, y + 0.5, 1)], self._token(doc, mode), self.image_key(doc))


def make_tools() -> dict[str, Tool]:
    """A fresh table (tools hold drag state, so each canvas gets its own), in toolbar order."""
    table = [
        BrushTool(BRUSH, "Brush", "B", erases=False),
        BrushTool(ERASER, "Eraser", "E", erases=True),
        RectFillTool(),
        LassoTool(),
        ContextBoxTool(),
        MagicWandTool(),
        GrabCutTool(),
        SamClickTool(),
    ]
    return {t.name: t for t in table}
