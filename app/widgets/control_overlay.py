"""Draws the document's visible control layers over the canvas, each at its own opacity.

Layers are drawn in "screen" mode: control images are white (or grey) lines on black, and screen
leaves the picture unchanged where a layer is black, so the strokes show over the photo without
darkening it (a depth or tile image shows as a light veil; lower its opacity). Each layer's image
is wrapped without a copy and drawn from zoomed-out levels like the picture (`LevelCache`), kept
current by the dirty rects ``controls.image_changed`` reports, so a stroke redraws a brush-sized
patch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QRect
from PySide6.QtGui import QImage, QPainter

from app.editor.qimage import qimage_from_array
from app.widgets.level_cache import LevelCache, draw_layer

if TYPE_CHECKING:
    from app.widgets.canvas import CanvasView


class ControlOverlay:
    """The canvas's control-layer drawing; the canvas calls `paint` between the picture and the mask."""

    def __init__(self, canvas: CanvasView) -> None:
        self._canvas = canvas
        self._controls: Any = None
        self._document: Any = None
        #: layer → (the image array wrapped, its QImage, its levels); rebuilt when the array is replaced.
        self._cache: dict[int, tuple[Any, QImage, LevelCache]] = {}

    def set_document(self, document: Any) -> None:
        if self._controls is not None:
            for signal, slot in self._connections():
                signal.disconnect(slot)
        self._document = document
        self._controls = getattr(document, "controls", None)
        self._cache.clear()
        if self._controls is not None:
            for signal, slot in self._connections():
                signal.connect(slot)

    def _connections(self) -> list:
        # ``reset``: opening an image or project replaces the layers without a signal of their own.
        return [(self._controls.changed, self._on_changed), (self._controls.image_changed, self._on_image_changed),
                (self._document.reset, self._on_changed)]

    def _on_changed(self) -> None:
        live = {id(layer) for layer in self._controls.layers}
        self._cache = {k: v for k, v in self._cache.items() if k in live}
        self._canvas.update()

    def _on_image_changed(self, layer: Any, rect: QRect) -> None:
        entry = self._cache.get(id(layer))
        if entry is not None and entry[0] is layer.image:
            if rect.isEmpty():
                h, w = layer.image.shape[:2]
                entry[2].invalidate(0, 0, w, h)
            else:
                entry[2].invalidate(rect.x(), rect.y(), rect.width(), rect.height())
        if layer.visible:
            self._canvas._update_image_rect(rect)

    def _layer_images(self, layer: Any) -> tuple[QImage, LevelCache]:
        entry = self._cache.get(id(layer))
        if entry is None or entry[0] is not layer.image:
            entry = (layer.image, qimage_from_array(layer.image), LevelCache(layer.image, "image"))
            self._cache[id(layer)] = entry
        return entry[1], entry[2]

    def paint(self, p: QPainter, src: QRect) -> None:
        """Draw image rect ``src`` of every visible layer that has the document's size (during an
        expand's undo the layers follow the picture a moment later)."""
        if self._controls is None:
            return
        doc = self._canvas.document
        for layer in self._controls.layers:
            if not layer.visible or layer.opacity <= 0 or layer.image.shape[:2] != (doc.height, doc.width):
                continue
            full, levels = self._layer_images(layer)
            p.save()
            p.setOpacity(layer.opacity)
            p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Screen)
            draw_layer(p, self._canvas, src, full, levels)
            p.restore()
