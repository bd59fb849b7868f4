"""Zoom and pan of the canvas: the view transform ``widget = offset + image * zoom``.

A mixin of `app.widgets.canvas.CanvasView` (it needs the widget's size, ``update``, the
``zoom_changed`` / ``view_changed`` signals, ``_doc`` and ``_has_image``), kept apart so the
canvas module holds drawing and input only. Image coordinates are continuous (pixel i spans
[i, i+1)).
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRect, QRectF, QSize

from app.core.geometry import Bounds

MIN_ZOOM, MAX_ZOOM = 1 / 64, 64.0
ZOOM_STEP = 1.25


def fit_zoom(image_size: tuple[int, int], viewport: tuple[int, int]) -> float:
    """The zoom at which a ``(w, h)`` image fits a ``(w, h)`` viewport whole."""
    (w, h), (vw, vh) = image_size, viewport
    return min(MAX_ZOOM, max(MIN_ZOOM, min(max(1, vw) / max(1, w), max(1, vh) / max(1, h))))


class ZoomPan:
    """Zoom, fit, pan and the image↔widget mapping; state lives in ``_zoom``, ``_offset``, ``_fit_mode``."""

    @property
    def zoom(self) -> float:
        return self._zoom

    @property
    def offset(self) -> QPointF:
        """Widget position of the image's top-left corner."""
        return QPointF(self._offset)

    def map_to_image(self, pos: QPointF) -> QPointF:
        return QPointF((pos.x() - self._offset.x()) / self._zoom, (pos.y() - self._offset.y()) / self._zoom)

    def map_from_image(self, pos: QPointF) -> QPointF:
        return QPointF(self._offset.x() + pos.x() * self._zoom, self._offset.y() + pos.y() * self._zoom)

    def image_rect_to_widget(self, rect: QRectF | QRect) -> QRectF:
        r = QRectF(rect)
        tl = self.map_from_image(r.topLeft())
        return QRectF(tl.x(), tl.y(), r.width() * self._zoom, r.height() * self._zoom)

    def image_source_rect(self, widget_rect: QRect, width: int, height: int) -> QRect:
        """Integer rect of a ``width``×``height`` image covering ``widget_rect``, clipped to the image.

        Two spare pixels each side keep smooth (bilinear) sampling identical to a full redraw, so
        partial repaints leave no seams; the painter's clip keeps the drawing inside the exposed area.
        """
        a = self.map_to_image(QPointF(widget_rect.topLeft()))
        b = self.map_to_image(QPointF(widget_rect.right() + 1, widget_rect.bottom() + 1))
        x0, y0 = max(0, math.floor(a.x()) - 2), max(0, math.floor(a.y()) - 2)
        x1, y1 = min(width, math.ceil(b.x()) + 2), min(height, math.ceil(b.y()) + 2)
        return QRect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def _widget_dirty(self, rect: QRect, pad: float = 2.0) -> QRect:
        return self.image_rect_to_widget(rect).adjusted(-pad, -pad, pad, pad).toAlignedRect()

    def _update_image_rect(self, rect: QRect) -> None:
        if rect.isEmpty():
            self.update()
        else:
            self.update(self._widget_dirty(rect))

    def _update_image_regions(self, *regions: Bounds | None) -> None:
        for r in regions:
            if r is not None:
                self._update_image_rect(QRect(r.x, r.y, r.width, r.height))

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under ``anchor`` (widget coords; default centre) fixed."""
        zoom = float(min(MAX_ZOOM, max(MIN_ZOOM, zoom)))
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        img = self.map_to_image(anchor)
        self._fit_mode = False
        changed = not math.isclose(zoom, self._zoom)
        self._zoom = zoom
        self._offset = QPointF(anchor.x() - img.x() * zoom, anchor.y() - img.y() * zoom)
        self._view_moved(changed)

    def zoom_in(self) -> None:
        self.set_zoom(self._zoom * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self._zoom / ZOOM_STEP)

    def zoom_actual(self) -> None:
        """100 %: one image pixel per device-independent pixel, around the centre."""
        self.set_zoom(1.0)

    def zoom_fit(self) -> None:
        """Fit the whole image and keep fitting when the widget is resized, until the user zooms."""
        self._fit_mode = True
        self._apply_fit()

    def _apply_fit(self) -> None:
        if not self._has_image():
            return
        w, h = self._doc.size
        vw, vh = max(1, self.width()), max(1, self.height())
        zoom = fit_zoom((w, h), (vw, vh))
        changed = not math.isclose(zoom, self._zoom)
        self._zoom = zoom
        self._offset = QPointF((vw - w * zoom) / 2, (vh - h * zoom) / 2)
        self._view_moved(changed)

    def set_view(self, zoom: float, offset: QPointF) -> None:
        """Set zoom and the widget position of the image origin at once (restoring a view, tests)."""
        zoom = float(min(MAX_ZOOM, max(MIN_ZOOM, zoom)))
        changed = not math.isclose(zoom, self._zoom)
        self._fit_mode = False
        self._zoom, self._offset = zoom, QPointF(offset)
        self._view_moved(changed)

    def pan_by(self, dx: float, dy: float) -> None:
        self._fit_mode = False
        self._offset += QPointF(dx, dy)
        self._view_moved(False)
        # QWidget.scroll would blit, but overlays (outline, box) would smear; a full repaint of the
        # visible part is cheap because only the exposed source rectangle is drawn.

    def center_on(self, image_point: QPointF) -> None:
        self._fit_mode = False
        self._offset = QPointF(self.width() / 2 - image_point.x() * self._zoom, self.height() / 2 - image_point.y() * self._zoom)
        self._view_moved(False)

    def _view_moved(self, zoom_changed: bool) -> None:
        self.update()
        if zoom_changed:
            self.zoom_changed.emit(self._zoom)
        self.view_changed.emit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        if self._fit_mode:
            self._apply_fit()
        super().resizeEvent(event)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(800, 600)
