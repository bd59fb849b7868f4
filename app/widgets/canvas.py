"""The painting canvas: shows a Document, zooms and pans, and paints the mask.

Speed on 24 MP photos comes from three choices:
- the Document's pixels and mask are wrapped in QImages *without copies* (the mask as an
  Indexed8 image whose colour table is the overlay colour with an alpha ramp), so a stroke only
  changes numpy memory and the overlay needs no conversion at all;
- ``paintEvent`` maps the exposed rectangle back to image pixels and draws only that source
  rectangle, so a stroke redraws a brush-sized patch, not the picture;
- document signals carry dirty rectangles, turned into ``update(rect)`` calls in widget space.

The view transform is ``widget = offset + image * zoom``; image coordinates are continuous
(pixel i spans [i, i+1)). What a left-button drag does is up to the current tool object
(`app.widgets.canvas_tools`); the canvas itself only pans, zooms and draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeySequence, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QApplication, QSizePolicy, QWidget

from app.core.geometry import Bounds
from app.editor.document import Document
from app.editor.opened_image import PreparedImage
from app.editor.qimage import display_rgb8, qimage_from_array
from app.widgets import tools
from app.widgets.canvas_tools import Tool, make_tools
from app.widgets.control_overlay import ControlOverlay
from app.widgets.level_cache import LevelCache, checker_brush, draw_layer, first_paint_levels
from app.widgets.mask_overlay import MaskOverlay
from app.widgets.tools import BRUSH, ERASER, BrushOptions, clamp_size
from app.widgets.zoom_pan import ZOOM_STEP, ZoomPan



class CanvasView(ZoomPan, QWidget):
    """Zoomable, pannable view of a :class:`Document` with mask tools. API: docs/API_EDITOR_CORE.md."""

    zoom_changed = Signal(float)
    cursor_moved = Signal(int, int)  # image pixel under the cursor (may lie outside the image)
    tool_changed = Signal(str)
    brush_changed = Signal(int, float)  # size (diameter, image px), hardness
    context_box_changed = Signal(object)  # Bounds | None
    view_changed = Signal()  # zoom or pan changed

    def __init__(self, document: Document | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._doc: Document | None = None
        self._zoom = 1.0
        self._offset = QPointF(0.0, 0.0)
        self._fit_mode = True
        self.tools: dict[str, Tool] = make_tools()
        self.control_overlay = ControlOverlay(self)  # the document's control layers, drawn over the picture
        self._tool = tools.BRUSH
        self._brush = BrushOptions()
        self.mask_overlay = MaskOverlay(self.update)
        self._image_levels: LevelCache | None = None
        self._candidate_levels: LevelCache | None = None
        self._offered: tuple[LevelCache, LevelCache] | None = None  # see `offer_levels`
        self._preview_img: QImage | None = None
        self._preview_region: Bounds | None = None
        self._live: tuple[QImage, Bounds] | None = None  # the live painting result (`set_live_layer`)
        self._candidate_img: QImage | None = None
        self._background = QColor(48, 48, 48)
        self._checker = checker_brush()
        # interaction state: a pan drag here, every other drag in the current tool object
        self._panning = False
        self._space = False
        self._last_widget_pos: QPointF | None = None
        self._shown_box: Bounds | None = None  # last box announced through context_box_changed
        self._hover: QPointF | None = None  # widget position of the brush outline
        self._update_cursor()
        if document is not None:
            self.set_document(document)

    # -- document ---------------------------------------------------------------------------
    @property
    def document(self) -> Document | None:
        return self._doc

    def set_document(self, document: Document) -> None:
        if self._doc is not None:
            for sig, slot in self._connections():
                sig.disconnect(slot)
        self._doc = document
        for sig, slot in self._connections():
            sig.connect(slot)
        self.control_overlay.set_document(document)
        self._on_reset()

    def _connections(self):
        d = self._doc
        return [(d.image_changed, self._on_image_changed), (d.mask_changed, self._on_mask_changed), (d.reset, self._on_reset),
                (d.context_box_changed, self._on_context_box)]

    def prepare_levels(self) -> Callable[[PreparedImage], tuple[LevelCache, LevelCache]]:
        """A function, safe on a pool thread, that builds the level caches the first paint of a
        prepared image will draw at this canvas's current fit; give its result to `offer_levels`."""
        return first_paint_levels((self.width(), self.height()))

    def offer_levels(self, levels: tuple[LevelCache, LevelCache] | None) -> None:
        """Level caches built off the GUI thread for the image about to be opened: the next
        ``reset`` adopts them if they belong to the document's new arrays."""
        self._offered = levels

    def _on_reset(self) -> None:
        self._cancel_drag()
        self._preview_img, self._preview_region = None, None
        self._live = None
        self._candidate_img = self._candidate_levels = None
        offered, self._offered = self._offered or (None, None), None
        display = self._doc.display_array() if self._has_image() else None
        self._image_levels = None if display is None else offered[0] if getattr(offered[0], "base", None) is display else LevelCache(display, "image")
        self._on_context_box(self._doc.context_box)
        self.mask_overlay.show_document_mask(self._doc.mask, offered[1])
        self._fit_mode = True
        self._apply_fit()
        self.update()

    def _on_image_changed(self, rect: QRect) -> None:
        if self._image_levels is not None:
            self._image_levels.invalidate_rect(rect)
        if self._candidate_img is None:
            self._update_image_rect(rect)

    def _on_mask_changed(self, rect: QRect) -> None:
        if not self.mask_overlay.preview_active:
            if self.mask_overlay.levels is not None:
                self.mask_overlay.levels.invalidate_rect(rect)
            if self.mask_overlay.visible and self._candidate_img is None:
                self._update_image_rect(rect)

    def _has_image(self) -> bool:
        return self._doc is not None and not self._doc.is_empty

    # -- tools --------------------------------------------------------------------------------
    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        if tool not in self.tools:
            raise ValueError(f"unknown tool {tool!r}; expected one of {tuple(self.tools)}")
        if tool != self._tool:
            self._cancel_drag()
            self._tool = tool
            self._update_cursor()
            self.update()
            self.tool_changed.emit(tool)

    def swap_brush_eraser(self) -> None:
        """X: the eraser from any tool, the brush from the eraser."""
        self.set_tool(BRUSH if self._tool == ERASER else ERASER)

    @property
    def current_tool(self) -> Tool:
        return self.tools[self._tool]

    @property
    def brush(self) -> BrushOptions:
        return self._brush

    @property
    def brush_size(self) -> int:
        return self._brush.size

    def set_brush_size(self, size: float) -> None:
        size = clamp_size(size)
        if size != self._brush.size:
            self._update_outline()
            self._brush.size = size
            self._update_outline()
            self.brush_changed.emit(size, self._brush.hardness)

    @property
    def hardness(self) -> float:
        return self._brush.hardness

    def set_hardness(self, hardness: float) -> None:
        hardness = float(min(1.0, max(0.0, hardness)))
        if hardness != self._brush.hardness:
            self._brush.hardness = hardness
            self.brush_changed.emit(self._brush.size, hardness)

    # -- result layers --------------------------------------------------------------------------
    def set_preview(self, rgb8: np.ndarray | None, region: Bounds | None = None) -> None:
        """Draw a live generation preview (any size, scaled) into ``region`` (default: whole image)."""
        old = self._preview_region
        if rgb8 is None:
            self._preview_img, self._preview_region = None, None
        else:
            self._preview_img = _own_qimage(rgb8)
            self._preview_region = region or (self._doc.bounds if self._doc else
                                              Bounds(0, 0, self._preview_img.width(), self._preview_img.height()))
        self._update_image_regions(old, self._preview_region)

    def set_live_layer(self, rgb8: np.ndarray | None, region: Bounds | None = None) -> None:
        """Show the live painting result ``rgb8`` (the size of ``region``) over the image and the
        mask overlay, except while a stroke is painted (the stroke shows on top); None hides it.
        Not a document change: the history and the pixels are untouched."""
        old = self._live[1] if self._live is not None else None
        self._live = None if rgb8 is None or region is None else (_own_qimage(rgb8), region)
        self._update_image_regions(old, region)

    @property
    def live_layer_shown(self) -> bool:
        return self._live is not None

    @property
    def preview_region(self) -> Bounds | None:
        return self._preview_region

    def show_candidate(self, pixels: np.ndarray | None) -> None:
        """Show a full candidate image instead of the document (before/after); None shows the document.

        The mask overlay is hidden while a candidate is shown, so the result is seen as it is.
        """
        if pixels is None:
            self._candidate_img = self._candidate_levels = None
        else:
            pixels = np.asarray(pixels)
            if self._doc is None or pixels.shape[:2] != self._doc.pixels.shape[:2]:
                raise ValueError(f"candidate {pixels.shape} does not match the image")
            arr = np.ascontiguousarray(display_rgb8(pixels))  # shared: candidates are never edited
            self._candidate_img = qimage_from_array(arr)
            self._candidate_levels = LevelCache(arr, "image")
        self.update()

    @property
    def candidate_shown(self) -> bool:
        return self._candidate_img is not None

    @property
    def context_box(self) -> Bounds | None:
        """The Document's context box (drawn as a dashed frame)."""
        return self._doc.context_box if self._doc is not None else None

    def set_context_box(self, box: Bounds | None) -> None:
        """Set the Document's box (clamped, undoable); ignored while no image is open."""
        if self._has_image():
            self._doc.set_context_box(box)

    def _on_context_box(self, box: Bounds | None) -> None:
        if box != self._shown_box:
            self._shown_box = box
            self.update()
            self.context_box_changed.emit(box)

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        exposed = event.rect()
        p.fillRect(exposed, self._background)
        if not self._has_image():
            p.setPen(QColor(170, 170, 170))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Open an image (Ctrl+O) or drop one here")
            p.end()
            return
        src = self.image_source_rect(exposed, self._doc.width, self._doc.height)
        if not src.isEmpty():
            target = self.image_rect_to_widget(src)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._zoom < 1.0)
            if self._doc.has_alpha:
                p.fillRect(target, self._checker)
            if self._candidate_img is not None:
                draw_layer(p, self, src, self._candidate_img, self._candidate_levels)
            else:
                draw_layer(p, self, src, self._doc.display_qimage(), self._image_levels)
                self.control_overlay.paint(p, src)
                stroking = self._doc.in_stroke  # the stroke being painted shows over the live result
                if self._live is not None and stroking:
                    self._draw_live(p)
                if self.mask_overlay.shown:
                    draw_layer(p, self, src, self.mask_overlay.image, self.mask_overlay.levels)
                if self._live is not None and not stroking:
                    self._draw_live(p)
        if self._preview_img is not None and self._preview_region is not None:
            r = self._preview_region
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(self.image_rect_to_widget(QRect(r.x, r.y, r.width, r.height)), self._preview_img)
        self._paint_tool_overlays(p)
        p.end()

    def _draw_live(self, p: QPainter) -> None:
        live, r = self._live
        p.drawImage(self.image_rect_to_widget(QRect(r.x, r.y, r.width, r.height)), live)

    def _paint_tool_overlays(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        b = self.context_box
        if b is not None:
            r = self.image_rect_to_widget(QRect(b.x, b.y, b.width, b.height))
            p.setPen(QPen(QColor(0, 0, 0, 200), 2.0))
            p.drawRect(r)
            p.setPen(QPen(QColor(80, 200, 255), 1.5, Qt.PenStyle.DashLine))
            p.drawRect(r)
        self.current_tool.paint(self, p)
        if self._hover is not None and self.current_tool.shows_brush and not self._panning:
            radius = self._brush.size / 2 * self._zoom
            path = QPainterPath()
            path.addEllipse(self._hover, radius, radius)
            p.setPen(QPen(QColor(0, 0, 0, 200), 1.0))
            p.drawPath(path)
            p.setPen(QPen(QColor(255, 255, 255, 230), 1.0, Qt.PenStyle.DotLine))
            p.drawPath(path)

    def _outline_rect(self, pos: QPointF | None = None) -> QRect:
        pos = pos if pos is not None else self._hover
        if pos is None:
            return QRect()
        r = self._brush.size / 2 * self._zoom + 3
        return QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r).toAlignedRect()

    def _update_outline(self) -> None:
        if self._hover is not None:
            self.update(self._outline_rect())

    # -- input --------------------------------------------------------------------------------
    def _update_cursor(self) -> None:
        if self._panning:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._space:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.setCursor(Qt.CursorShape.CrossCursor)

    @property
    def _dragging(self) -> bool:
        return self._panning or self.current_tool.active

    def mousePressEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        pos, button = e.position(), e.button()
        if self._dragging:
            return
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space):
            self._panning = True
            self._last_widget_pos = pos
            self._update_cursor()
        elif button == Qt.MouseButton.LeftButton and self._has_image():
            self.current_tool.press(self, self.map_to_image(pos), bool(e.modifiers() & Qt.KeyboardModifier.AltModifier))

    def mouseMoveEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        pos = e.position()
        img = self.map_to_image(pos)
        self.cursor_moved.emit(math.floor(img.x()), math.floor(img.y()))
        old_outline = self._outline_rect()
        self._hover = pos
        if self._panning:
            last = self._last_widget_pos or pos
            self._last_widget_pos = pos
            self.pan_by(pos.x() - last.x(), pos.y() - last.y())
            return
        tool = self.current_tool
        if tool.active:
            tool.move(self, img)
        if tool.shows_brush:
            self.update(old_outline)
            self.update(self._outline_rect())

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        if self._panning:
            if e.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
                self._panning = False
                self._update_cursor()
            return
        tool = self.current_tool
        if e.button() == Qt.MouseButton.LeftButton and tool.active:
            tool.release(self, self.map_to_image(e.position()))
            self.update()

    def _cancel_drag(self) -> None:
        self._panning = False
        for tool in self.tools.values():
            if tool.active:
                tool.cancel(self)

    def wheelEvent(self, e) -> None:  # noqa: N802
        delta = e.angleDelta().y()
        if delta == 0 or not self._has_image() or QApplication.activeModalWidget() is not None:
            return  # a wheel over the canvas behind an open dialog must not zoom it
        if e.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.pan_by(0, delta / 2)  # shift+wheel pans vertically, like most editors
            return
        self.set_zoom(self._zoom * ZOOM_STEP ** (delta / 120.0), e.position())
        e.accept()

    def leaveEvent(self, e) -> None:  # noqa: N802
        self._update_outline()
        self._hover = None
        super().leaveEvent(e)

    def keyPressEvent(self, e) -> None:  # noqa: N802
        key = e.key()
        if key == Qt.Key.Key_Space:
            if not e.isAutoRepeat():
                self._space = True
                self._update_cursor()
            return
        if key == Qt.Key.Key_BracketRight:
            self.set_brush_size(self._brush.resized(True))
        elif key == Qt.Key.Key_BracketLeft:
            self.set_brush_size(self._brush.resized(False))
        elif key in (Qt.Key.Key_BraceRight, Qt.Key.Key_BraceLeft):  # Shift+] / Shift+[: hardness
            self.set_hardness(round(self._brush.hardness + (0.1 if key == Qt.Key.Key_BraceRight else -0.1), 2))
        elif e.matches(QKeySequence.StandardKey.ZoomIn) or (key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal) and e.modifiers() & Qt.KeyboardModifier.ControlModifier):
            self.zoom_in()
        elif e.matches(QKeySequence.StandardKey.ZoomOut):
            self.zoom_out()
        elif key == Qt.Key.Key_0 and e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_fit()
        elif key == Qt.Key.Key_1 and e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_actual()
        elif key == Qt.Key.Key_Escape and self.current_tool.active and not self.current_tool.shows_brush:
            self._cancel_drag()
            self.update()
        elif not e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier and self._tool_for_key(e.text()):
            self.set_tool(self._tool_for_key(e.text()))
        else:
            super().keyPressEvent(e)

    def _tool_for_key(self, text: str) -> str | None:
        return next((t.name for t in self.tools.values() if text and t.key == text.upper()), None)

    def keyReleaseEvent(self, e) -> None:  # noqa: N802
        if e.key() == Qt.Key.Key_Space and not e.isAutoRepeat():
            self._space = False
            self._update_cursor()
            return
        super().keyReleaseEvent(e)

    def focusOutEvent(self, e) -> None:  # noqa: N802
        self._space = False
        self._update_cursor()
        super().focusOutEvent(e)


def _own_qimage(rgb8: np.ndarray) -> QImage:
    """A QImage of its own copy of ``rgb8`` in display form: the caller may reuse its array."""
    return qimage_from_array(np.ascontiguousarray(display_rgb8(np.asarray(rgb8))).copy())
