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
from PySide6.QtGui import QColor, QImage, QKeySequence, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen, qRgba
from PySide6.QtWidgets import QApplication, QSizePolicy, QWidget

from app.core.geometry import Bounds
from app.editor.document import Document
from app.editor.opened_image import PreparedImage
from app.editor.qimage import display_rgb8, qimage_from_array
from app.widgets import tools
from app.widgets.canvas_tools import Tool, make_tools
from app.widgets.control_overlay import ControlOverlay
from app.widgets.level_cache import LevelCache, checker_brush, first_paint_levels
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
        self._mask_color = QColor(255, 40, 40)
        self._mask_opacity = 0.5
        self._mask_visible = True
        self._mask_qimage = QImage()
        self._mask_levels: LevelCache | None = None
        self._image_levels: LevelCache | None = None
        self._candidate_levels: LevelCache | None = None
        self._offered: tuple[LevelCache, LevelCache] | None = None  # see `offer_levels`
        self._mask_preview: np.ndarray | None = None
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
        self._mask_preview = None
        self._preview_img, self._preview_region = None, None
        self._live = None
        self._candidate_img = self._candidate_levels = None
        offered, self._offered = self._offered or (None, None), None
        display = self._doc.display_array() if self._has_image() else None
        self._image_levels = None if display is None else offered[0] if getattr(offered[0], "base", None) is display else LevelCache(display, "image")
        self._on_context_box(self._doc.context_box)
        self._rebuild_mask_qimage(offered[1])
        self._fit_mode = True
        self._apply_fit()
        self.update()

    def _on_image_changed(self, rect: QRect) -> None:
        if self._image_levels is not None:
            self._invalidate(self._image_levels, rect)
        if self._candidate_img is None:
            self._update_image_rect(rect)

    def _on_mask_changed(self, rect: QRect) -> None:
        if self._mask_preview is None:
            if self._mask_levels is not None:
                self._invalidate(self._mask_levels, rect)
            if self._mask_visible and self._candidate_img is None:
                self._update_image_rect(rect)

    def _invalidate(self, cache: LevelCache, rect: QRect) -> None:
        if rect.isEmpty():
            h, w = cache.base.shape[:2]
            cache.invalidate(0, 0, w, h)
        else:
            cache.invalidate(rect.x(), rect.y(), rect.width(), rect.height())

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

    # -- overlays -----------------------------------------------------------------------------
    @property
    def mask_color(self) -> QColor:
        return QColor(self._mask_color)

    def set_mask_color(self, color: QColor | str) -> None:
        self._mask_color = QColor(color)
        self._apply_color_table()

    @property
    def mask_opacity(self) -> float:
        return self._mask_opacity

    def set_mask_opacity(self, opacity: float) -> None:
        self._mask_opacity = float(min(1.0, max(0.0, opacity)))
        self._apply_color_table()

    @property
    def mask_visible(self) -> bool:
        return self._mask_visible

    def set_mask_visible(self, visible: bool) -> None:
        self._mask_visible = bool(visible)
        self.update()

    def _rebuild_mask_qimage(self, levels: LevelCache | None = None) -> None:
        """Wrap the shown mask (``levels``: prebuilt for it by `prepare_levels`, else built here)."""
        src = self._mask_preview if self._mask_preview is not None else (self._doc.mask if self._doc else None)
        if src is None or src.size == 0:
            self._mask_qimage, self._mask_levels = QImage(), None
            return
        h, w = src.shape
        img = QImage(src.data, w, h, src.strides[0], QImage.Format.Format_Indexed8)
        img._keep = src  # type: ignore[attr-defined]
        self._mask_qimage = img
        self._mask_levels = levels if levels is not None and levels.base is src else LevelCache(src, "mask")
        self._apply_color_table()

    def _apply_color_table(self) -> None:
        if self._mask_qimage.isNull():
            return
        c, a = self._mask_color, self._mask_opacity
        table = [qRgba(c.red(), c.green(), c.blue(), round(a * i)) for i in range(256)]
        self._mask_qimage.setColorTable(table)
        if self._mask_levels is not None:
            self._mask_levels.set_color_table(table)
        self.update()

    def set_mask_preview(self, mask: np.ndarray | None) -> None:
        """Show ``mask`` (H×W uint8, e.g. a grown or feathered mask) instead of the document's."""
        if mask is not None:
            mask = np.ascontiguousarray(mask, dtype=np.uint8)
            if self._doc is None or mask.shape != self._doc.mask.shape:
                raise ValueError(f"preview mask {mask.shape} does not match the image")
        self._mask_preview = mask
        self._rebuild_mask_qimage()
        self.update()

    @property
    def mask_preview_active(self) -> bool:
        return self._mask_preview is not None

    def set_preview(self, rgb8: np.ndarray | None, region: Bounds | None = None) -> None:
        """Draw a live generation preview (any size, scaled) into ``region`` (default: whole image)."""
        old = self._preview_region
        if rgb8 is None:
            self._preview_img, self._preview_region = None, None
        else:
            arr = np.ascontiguousarray(display_rgb8(np.asarray(rgb8)))
            self._preview_img = qimage_from_array(arr.copy())
            self._preview_region = region or (self._doc.bounds if self._doc else Bounds(0, 0, arr.shape[1], arr.shape[0]))
        for r in (old, self._preview_region):
            if r is not None:
                self._update_image_rect(QRect(r.x, r.y, r.width, r.height))

    def set_live_layer(self, rgb8: np.ndarray | None, region: Bounds | None = None) -> None:
        """Show the live painting result ``rgb8`` (the size of ``region``) over the image and the
        mask overlay, except while a stroke is painted (the stroke shows on top); None hides it.
        Not a document change: the history and the pixels are untouched."""
        old = self._live[1] if self._live is not None else None
        if rgb8 is None or region is None:
            self._live = None
        else:
            arr = np.ascontiguousarray(display_rgb8(np.asarray(rgb8)))
            self._live = (qimage_from_array(arr.copy()), region)
        for r in (old, region):
            if r is not None:
                self._update_image_rect(QRect(r.x, r.y, r.width, r.height))

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
    def _source_rect(self, widget_rect: QRect) -> QRect:
        """Integer image rect covering ``widget_rect``, clipped to the image.

        Two spare pixels each side keep smooth (bilinear) sampling identical to a full redraw, so
        partial repaints leave no seams; the painter's clip keeps the drawing inside the exposed area.
        """
        a = self.map_to_image(QPointF(widget_rect.topLeft()))
        b = self.map_to_image(QPointF(widget_rect.right() + 1, widget_rect.bottom() + 1))
        x0, y0 = max(0, math.floor(a.x()) - 2), max(0, math.floor(a.y()) - 2)
        x1, y1 = min(self._doc.width, math.ceil(b.x()) + 2), min(self._doc.height, math.ceil(b.y()) + 2)
        return QRect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        exposed = event.rect()
        p.fillRect(exposed, self._background)
        if not self._has_image():
            p.setPen(QColor(170, 170, 170))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Open an image (Ctrl+O) or drop one here")
            p.end()
            return
        src = self._source_rect(exposed)
        if not src.isEmpty():
            target = self.image_rect_to_widget(src)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._zoom < 1.0)
            if self._doc.has_alpha:
                p.fillRect(target, self._checker)
            if self._candidate_img is not None:
                self._draw_layer(p, src, self._candidate_img, self._candidate_levels)
            else:
                self._draw_layer(p, src, self._doc.display_qimage(), self._image_levels)
                self.control_overlay.paint(p, src)
                stroking = self._doc.in_stroke  # the stroke being painted shows over the live result
                if self._live is not None and stroking:
                    self._draw_live(p)
                if self._mask_visible and not self._mask_qimage.isNull():
                    self._draw_layer(p, src, self._mask_qimage, self._mask_levels)
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

    def _draw_layer(self, p: QPainter, src: QRect, full: QImage, levels: LevelCache | None) -> None:
        """Draw image rect ``src`` of a layer, from the coarsest level that still has detail."""
        level = levels.level_for(self._zoom) if levels is not None else 0
        if level == 0:
            p.drawImage(self.image_rect_to_widget(src), full, QRectF(src))
            return
        image = levels.image(level)
        f = 1 << level
        x0, y0 = src.x() // f, src.y() // f
        x1, y1 = min(image.width(), -(-(src.x() + src.width()) // f)), min(image.height(), -(-(src.y() + src.height()) // f))
        if x1 <= x0 or y1 <= y0:
            return
        lsrc = QRect(x0, y0, x1 - x0, y1 - y0)
        p.drawImage(self.image_rect_to_widget(QRect(x0 * f, y0 * f, lsrc.width() * f, lsrc.height() * f)), image, QRectF(lsrc))

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
