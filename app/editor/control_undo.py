"""Undo data of the control layers (`app.editor.control_layer`), riding in the document's `TileCommand`s.

Each delta says what one edit changed and how much memory it holds (``nbytes``, counted by the
history budget); `ControlLayers.apply_delta` writes it back for undo ("before") and redo
("after"). They hold the layer objects themselves, so a removed layer returns with its pixels.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from app.editor.canvas_delta import PackedArray
from app.editor.undo import TileDelta

if TYPE_CHECKING:
    from app.editor.control_layer import ControlLayer


class ControlDelta:
    """Base of the control layers' undo data; the Document hands these to `ControlLayers.apply_delta`."""

    target = "control"
    nbytes = 0

    @property
    def is_empty(self) -> bool:
        return False


@dataclasses.dataclass(eq=False)
class ControlTileDelta(ControlDelta):
    """Changed tiles of one layer's image (a stroke, a preprocess, an import)."""

    layer: ControlLayer
    tiles: TileDelta

    @property
    def nbytes(self) -> int:  # type: ignore[override]
        return self.tiles.nbytes

    @property
    def is_empty(self) -> bool:
        return self.tiles.is_empty


@dataclasses.dataclass(eq=False)
class ControlSettingsDelta(ControlDelta):
    """Unit settings of one layer before and after a change (``after`` grows while a spin box or
    a typed model name keeps changing the same keys: see `ControlLayers.update`)."""

    layer: ControlLayer
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def is_empty(self) -> bool:
        return self.before == self.after


@dataclasses.dataclass(eq=False)
class ControlListDelta(ControlDelta):
    """The list of layers before and after an add or remove (the layer objects, images and all)."""

    before: tuple[ControlLayer, ...]
    after: tuple[ControlLayer, ...]

    @property
    def nbytes(self) -> int:  # type: ignore[override]
        return sum(layer.image.nbytes for layer in set(self.before) ^ set(self.after))

    @property
    def is_empty(self) -> bool:
        return self.before == self.after


@dataclasses.dataclass(eq=False)
class ControlResizeDelta(ControlDelta):
    """Every layer's image before and after a canvas resize, zlib-packed (like `CanvasDelta`)."""

    layers: tuple[ControlLayer, ...]
    before: tuple[PackedArray, ...]
    after: tuple[PackedArray, ...]

    @property
    def nbytes(self) -> int:  # type: ignore[override]
        return sum(len(p.data) for p in (*self.before, *self.after))

    @property
    def is_empty(self) -> bool:
        return not self.layers
