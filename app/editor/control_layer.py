"""Control layers: the ControlNet images of a document, painted, imported or preprocessed.

Each `ControlLayer` is one ControlNet unit as the editor holds it: an H×W×3 uint8 image of the
document's size (white strokes on black for scribble/line art), the unit's settings (module,
model, weight, start/end) and how it is shown (visible, opacity). `ControlLayers` is the list,
owned by the `Document` (``document.controls``), and every change to pixels or to the list is an
undo command on the document's one history (`app.editor.undo`): a stroke or a replaced image
stores only its changed tiles (`ControlTileDelta`), adding or removing a layer keeps the layer
object (`ControlListDelta`), expanding the canvas keeps both sizes packed (`ControlResizeDelta`;
all in `app.editor.control_undo`).
The unit's settings (module, model, weight, range, enabled) are undo steps too
(`ControlSettingsDelta`; a run of spin-box ticks is one); how a layer is shown (visibility,
opacity) is view state, saved with the project but not undone.

Images are edited in place (like the mask), so the canvas wraps them without copying; `saved()`
hands out copies for writer threads (`app.storage.project_controls.SavedControl`), cached per
layer version, so an autosave with unchanged layers copies nothing. `request_controls(state)` turns
a snapshot into what a generation gets: ``params.controls`` and ``GenerationRequest.control_images``.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRect, Signal

from app.core import control_preprocess
from app.core.compositing import to_rgb8
from app.core.geometry import Bounds
from app.core.guides import CONTROL_MODULES, MAX_CONTROLS, ControlUnit
from app.editor.brush import Point, brush_coverage, segment_bounds
from app.editor.canvas_delta import PackedArray
from app.editor.control_undo import ControlDelta, ControlListDelta, ControlResizeDelta, ControlSettingsDelta, ControlTileDelta
from app.editor.undo import TileSnapshot, diff_tiles, qrect, tile_bounds
from app.storage.project_controls import SavedControl

#: Settings `ControlLayers.update` accepts, with their kinds.
SETTINGS = {"module": str, "model": str, "weight": float, "start": float, "end": float, "enabled": bool, "visible": bool, "opacity": float}
#: The settings a generation reads: changing one is an undo step (and unsaved work); the others
#: (shown, opacity) only change the view.
UNIT_SETTINGS = ("module", "model", "weight", "start", "end", "enabled")


class ControlLayer:
    """One control unit's image and settings. Identity matters: undo commands hold the object."""

    def __init__(self, image: np.ndarray, *, module: str = "none", model: str = "", weight: float = 1.0, start: float = 0.0,
                 end: float = 1.0, enabled: bool = True, visible: bool = True, opacity: float = 0.5) -> None:
        self.image = image  # H×W×3 uint8, edited in place; replaced only by a canvas resize
        self.module, self.model, self.weight, self.start, self.end = module, model, weight, start, end
        self.enabled, self.visible, self.opacity = enabled, visible, opacity
        self.version = 0  # goes up with every pixel change (the snapshot cache's key)
        self._saved: tuple[int, SavedControl] | None = None

    @property
    def unit(self) -> ControlUnit:
        return ControlUnit(self.module, self.model, float(self.weight), float(self.start), float(self.end))

    def settings(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SETTINGS}

    def saved(self) -> SavedControl:
        """A frozen copy for writer threads (the image copied once per version)."""
        settings = self.settings()
        if self._saved is None or self._saved[0] != self.version:
            image = self.image.copy()
            image.flags.writeable = False
            self._saved = (self.version, SavedControl(image=image, **settings))
        elif any(getattr(self._saved[1], key) != value for key, value in settings.items()):
            self._saved = (self.version, dataclasses.replace(self._saved[1], **settings))
        return self._saved[1]


@dataclasses.dataclass(eq=False)
class PreprocessJob:
    """A preprocess with its inputs copied: `run` is safe on any thread; the result goes back
    through `ControlLayers.finish_preprocess` on the GUI thread."""

    layer: ControlLayer
    module: str
    region: Bounds | None  # None: the whole image
    pixels: np.ndarray
    mask: np.ndarray
    options: dict[str, float]
    size: tuple[int, int]  # the document's (w, h) when made

    def run(self) -> np.ndarray:
        return control_preprocess.preprocess(self.module, self.pixels, self.mask, **self.options)


# -- the list ---------------------------------------------------------------------------------
class ControlLayers(QObject):
    """The document's control layers and the one being edited (``active``).

    ``document`` is the owning `Document`: its size, its pixels/mask for preprocessing, and its
    undo history (``_push``). The stroke methods mirror the Document's mask strokes, so the canvas's
    brush paints here when ``painting`` is on (white; erase = black).
    """

    #: The list, a setting or the active layer changed (re-read everything).
    changed = Signal()
    #: Pixels of a layer changed in this rect (image coordinates; empty = all of it).
    image_changed = Signal(object, QRect)

    def __init__(self, document: Any) -> None:
        super().__init__(document)
        #: Weak, like the undo commands' owner: the Document holds us, and a strong reference back
        #: would keep a closed document alive until the cycle collector runs.
        self._doc_ref = weakref.ref(document)
        self.layers: list[ControlLayer] = []
        self.active: ControlLayer | None = None
        self.painting = False  # the canvas's brush paints the active layer instead of the mask
        self._stroke: TileSnapshot | None = None
        self._stroke_layer: ControlLayer | None = None
        self._stroke_mode = "paint"

    @property
    def _doc(self) -> Any:
        return self._doc_ref()

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layers)

    def index(self, layer: ControlLayer | None) -> int:
        return next((i for i, item in enumerate(self.layers) if item is layer), -1)

    def saved(self) -> tuple[SavedControl, ...]:
        """Frozen copies of every layer, for a project or a generation."""
        return tuple(layer.saved() for layer in self.layers)

    def units(self) -> tuple[ControlUnit, ...]:
        """The enabled layers' units, in order (what ``params.controls`` gets)."""
        return tuple(layer.unit for layer in self.layers if layer.enabled)

    def problem(self) -> str | None:
        """Why the enabled layers cannot run (said in the user's terms), or None."""
        for number, layer in enumerate(self.layers, 1):
            if layer.enabled and not layer.model.strip():
                return (f"Control layer {number} has no ControlNet model: choose one in the Control layers panel, "
                        "or turn the layer off.")
        return None

    # -- list edits (undoable) ----------------------------------------------------------------
    def add(self, image: np.ndarray | None = None, **settings: Any) -> ControlLayer:
        """A new layer (black, or ``image`` fitted to the document) on top, made active; one undo step."""
        self._doc._require_image()
        if len(self.layers) >= MAX_CONTROLS:
            raise ValueError(f"at most {MAX_CONTROLS} control layers")
        pixels = np.zeros((self._doc.height, self._doc.width, 3), np.uint8) if image is None else self.fit(image)
        layer = ControlLayer(pixels, **self._checked(settings))
        self._set_list((*self.layers, layer), f"Add control layer {len(self.layers) + 1}")
        self.set_active(layer)
        return layer

    def remove(self, layer: ControlLayer) -> bool:
        if self.index(layer) < 0:
            return False
        self.cancel_stroke()
        return self._set_list(tuple(item for item in self.layers if item is not layer), f"Remove control layer {self.index(layer) + 1}")

    def _set_list(self, after: tuple[ControlLayer, ...], label: str) -> bool:
        delta = ControlListDelta(tuple(self.layers), after)
        self._apply_list(after)
        return self._doc._push(label, [delta], already_applied=True)

    def _apply_list(self, layers: Sequence[ControlLayer]) -> None:
        self.layers = list(layers)
        if self.active not in self.layers:
            self.active = self.layers[-1] if self.layers else None
        self.changed.emit()

    # -- pixel edits (undoable) ---------------------------------------------------------------
    def set_image(self, layer: ControlLayer, image: np.ndarray, label: str = "Set control image", region: Bounds | None = None,
                  settings: dict[str, Any] | None = None) -> bool:
        """Replace ``layer``'s pixels by ``image`` (any size: fitted to the document; or a patch the
        size of ``region``), storing only changed tiles, and apply unit ``settings`` in the same
        undo step. False if nothing changed."""
        extra = self._settings_delta(layer, settings or {})
        if self.index(layer) < 0:
            raise ValueError("not a layer of this document")
        self.cancel_stroke()
        if region is not None:
            new = layer.image.copy()
            new[region.slices] = to_rgb8(np.asarray(image))
        else:
            new = self.fit(image, copy=False)  # only read: its changed tiles are copied in below
        delta = diff_tiles("control", layer.image, new, region, keep_after=False)
        h, w = new.shape[:2]
        for ty, tx in delta.tiles:
            sl = tile_bounds(ty, tx, h, w).slices
            layer.image[sl] = new[sl]
        if not delta.is_empty:
            self._changed_pixels(layer, delta.bounds())
        if extra is not None:
            self._apply_settings(layer, extra.after)
        return self._doc._push(label, [ControlTileDelta(layer, delta)] + ([extra] if extra is not None else []), already_applied=True)

    def clear(self, layer: ControlLayer) -> bool:
        return self.set_image(layer, np.zeros_like(layer.image), "Clear control layer")

    def preprocess(self, layer: ControlLayer, module: str, region: Bounds | None = None, **options: float) -> bool:
        """Make ``layer``'s image from the document's pixels with ``module`` (whole image, or only
        ``region`` — e.g. the selection's box — leaving the rest of the layer as it is), set the
        layer's module, as one undo step. Raises the preprocessor's `UserError`s. A window runs
        big images in two halves instead: `preprocess_job` here, ``job.run()`` on a thread."""
        job = self.preprocess_job(layer, module, region, **options)
        return job is not None and self.finish_preprocess(job, job.run())

    def preprocess_job(self, layer: ControlLayer, module: str, region: Bounds | None = None, **options: float) -> PreprocessJob | None:
        """The inputs of a preprocess, checked and copied now (the pixels may be edited while the
        job runs elsewhere); None when ``region`` is empty."""
        if self.index(layer) < 0:
            raise ValueError("not a layer of this document")
        control_preprocess.check(module, **options)
        doc = self._doc
        b = doc.bounds if region is None else region.clamp(doc.width, doc.height)
        if b.is_empty:
            return None
        return PreprocessJob(layer, module, None if region is None else b, doc.pixels[b.slices].copy(), doc.mask[b.slices].copy(),
                             dict(options), doc.size)

    def finish_preprocess(self, job: PreprocessJob, image: np.ndarray) -> bool:
        """Put a job's result in its layer (one undo step). False, changing nothing, if the layer
        was removed or the canvas resized meanwhile."""
        layer = job.layer
        if self.index(layer) < 0 or self._doc.size != job.size or layer.image.shape[1::-1] != job.size:
            return False
        return self.set_image(layer, image, f"Control layer from image ({job.module})", job.region, {"module": job.module})

    def fit(self, image: np.ndarray, copy: bool = True) -> np.ndarray:
        """``image`` as H×W×3 uint8 of the document's size (an imported file of another size is
        stretched to it: a control image must line up with the picture); ``copy=False`` may return
        ``image`` itself (read only)."""
        rgb = to_rgb8(np.asarray(image))
        size = (self._doc.width, self._doc.height)
        if rgb.shape[1::-1] != size:
            shrink = rgb.shape[0] * rgb.shape[1] > size[0] * size[1]
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        return np.array(rgb, copy=True, order="C") if copy else rgb

    # -- settings (not undo steps) ------------------------------------------------------------
    def update(self, layer: ControlLayer, **settings: Any) -> None:
        """Change settings of ``layer``. Unit settings (`UNIT_SETTINGS`) are an undo step; a change
        of the same keys of the same layer right after the last one joins that step (a spin box's
        ticks, a typed model name), unless that step is the saved state."""
        if self.index(layer) < 0:
            raise ValueError("not a layer of this document")
        checked = self._checked(settings)
        view = {k: v for k, v in checked.items() if k not in UNIT_SETTINGS and getattr(layer, k) != v}
        delta = self._settings_delta(layer, {k: v for k, v in checked.items() if k in UNIT_SETTINGS})
        for key, value in view.items():
            setattr(layer, key, value)
        if delta is not None:
            self._apply_settings(layer, delta.after, emit=False)
            if not self._merge(delta):
                keys = ", ".join(delta.after)
                self._doc._push(f"Control layer {self.index(layer) + 1}: {keys}", [delta], already_applied=True)
        if view or delta is not None:
            self.changed.emit()

    def _settings_delta(self, layer: ControlLayer, settings: dict[str, Any]) -> ControlSettingsDelta | None:
        after = {k: v for k, v in self._checked(settings).items() if getattr(layer, k) != v}
        return ControlSettingsDelta(layer, {k: getattr(layer, k) for k in after}, after) if after else None

    def _apply_settings(self, layer: ControlLayer, values: dict[str, Any], emit: bool = True) -> None:
        for key, value in values.items():
            setattr(layer, key, value)
        if emit:
            self.changed.emit()

    def _merge(self, delta: ControlSettingsDelta) -> bool:
        """Fold ``delta`` into the newest undo step if it changed the same keys of the same layer."""
        stack = self._doc.undo_stack
        index = stack.index()
        if index == 0 or index != stack.count() or stack.cleanIndex() == index:
            return False
        last = getattr(stack.command(index - 1), "deltas", None)
        if not last or len(last) != 1 or not isinstance(last[0], ControlSettingsDelta):
            return False
        top = last[0]
        if top.layer is not delta.layer or set(top.after) != set(delta.after):
            return False
        top.after.update(delta.after)
        return True

    def set_active(self, layer: ControlLayer | None) -> None:
        if layer is not None and self.index(layer) < 0:
            raise ValueError("not a layer of this document")
        if layer is not self.active:
            self.cancel_stroke()
            self.active = layer
            self.changed.emit()

    def set_painting(self, on: bool) -> None:
        if bool(on) != self.painting:
            self.cancel_stroke()
            self.painting = bool(on)
            self.changed.emit()

    @staticmethod
    def _checked(settings: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in settings.items():
            kind = SETTINGS.get(key)
            if kind is None:
                raise TypeError(f"unknown control layer setting {key!r}")
            if kind is float:
                value = float(value)
                lo, hi = (0.0, 2.0) if key == "weight" else (0.0, 1.0)
                if not lo <= value <= hi:
                    raise ValueError(f"{key} must be from {lo:g} to {hi:g}, not {value}")
            elif kind is bool:
                value = bool(value)
            elif not isinstance(value, str):
                raise TypeError(f"{key} must be text")
            if key == "module" and value not in CONTROL_MODULES:
                raise ValueError(f"unknown module {value!r}")
            out[key] = value
        return out

    # -- strokes: the Document's stroke API, on the active layer ------------------------------
    def begin_stroke(self, mode: str = "paint") -> None:
        if self.active is None:
            raise RuntimeError("no control layer to paint on")
        if mode not in ("paint", "erase"):
            raise ValueError(f"stroke mode must be 'paint' or 'erase', not {mode!r}")
        self.end_stroke()
        self._stroke, self._stroke_layer, self._stroke_mode = TileSnapshot("control", self.active.image), self.active, mode

    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    def stroke_segment(self, p0: Point, p1: Point, radius: float, hardness: float = 1.0) -> QRect:
        """Paint white (erase: black) along one segment; like `Document.stroke_segment`."""
        if self._stroke is None:
            raise RuntimeError("stroke_segment() outside begin_stroke()/end_stroke()")
        layer = self._stroke_layer
        h, w = layer.image.shape[:2]
        b = segment_bounds(p0, p1, radius, w, h)
        if b.is_empty:
            return QRect()
        self._stroke.touch(b)
        cov = brush_coverage(b, p0, p1, radius, hardness)[:, :, None]
        region = layer.image[b.slices]
        if self._stroke_mode == "paint":
            np.maximum(region, cov, out=region)
        else:
            np.minimum(region, 255 - cov, out=region)
        self._changed_pixels(layer, b)
        return qrect(b)

    def end_stroke(self, label: str | None = None) -> bool:
        if self._stroke is None:
            return False
        snap, layer, self._stroke, self._stroke_layer = self._stroke, self._stroke_layer, None, None
        delta = snap.finish()
        if delta.is_empty:
            return False
        label = label or ("Erase on control layer" if self._stroke_mode == "erase" else "Paint on control layer")
        return self._doc._push(label, [ControlTileDelta(layer, delta)], already_applied=True)

    def cancel_stroke(self) -> None:
        if self._stroke is None:
            return
        snap, layer, self._stroke, self._stroke_layer = self._stroke, self._stroke_layer, None, None
        delta = snap.finish()
        if not delta.is_empty:
            delta.write(layer.image, "before")
            self._changed_pixels(layer, delta.bounds())

    # -- the Document's hooks -----------------------------------------------------------------
    def apply_delta(self, delta: ControlDelta, which: str) -> None:
        """Undo ("before") or redo ("after") one of our deltas (called by the Document)."""
        self.cancel_stroke()
        if isinstance(delta, ControlTileDelta):
            b = delta.tiles.write(delta.layer.image, which)
            self._changed_pixels(delta.layer, b)
        elif isinstance(delta, ControlListDelta):
            self._apply_list(delta.after if which == "after" else delta.before)
        elif isinstance(delta, ControlSettingsDelta):
            self._apply_settings(delta.layer, delta.after if which == "after" else delta.before)
        elif isinstance(delta, ControlResizeDelta):
            for layer, packed in zip(delta.layers, delta.after if which == "after" else delta.before):
                layer.image = packed.unpack()
                layer.version += 1
            self.changed.emit()

    def resize_delta(self, resize: Callable[[np.ndarray], np.ndarray]) -> ControlResizeDelta | None:
        """Resize every layer now (``resize`` maps an image to its new size: expand the canvas) and
        return the undo data, or None without layers. Layers hidden in the history (removed) keep
        their size: an undo that brings one back needs the resize undone first anyway."""
        if not self.layers:
            return None
        self.cancel_stroke()
        layers = tuple(self.layers)
        before = tuple(PackedArray.of(layer.image) for layer in layers)
        for layer in layers:
            layer.image = np.ascontiguousarray(resize(layer.image))
            layer.version += 1
        after = tuple(PackedArray.of(layer.image) for layer in layers)
        self.changed.emit()
        return ControlResizeDelta(layers, before, after)

    def restore(self, saved: Sequence[SavedControl] = ()) -> None:
        """Replace every layer (opening an image: none; a project: its layers). No undo step and no
        signal: the Document's ``reset`` follows, and observers re-read everything then."""
        self.cancel_stroke()
        self.layers = [ControlLayer(np.array(s.image, copy=True, order="C"), module=s.module, model=s.model, weight=s.weight,
                                    start=s.start, end=s.end, enabled=s.enabled, visible=s.visible, opacity=s.opacity)
                       for s in saved]
        self.active = self.layers[-1] if self.layers else None
        self.painting = self.painting and self.active is not None

    def _changed_pixels(self, layer: ControlLayer, b: Bounds | None) -> None:
        layer.version += 1
        self.image_changed.emit(layer, qrect(b))


def request_controls(state: Any) -> tuple[tuple[ControlUnit, ...], tuple[np.ndarray, ...]]:
    """What a generation gets from a snapshot (`ProjectState`): the enabled layers' units and their
    images. An "inpaint" unit's image is the snapshot's pixels as they are now (RGB8; no copy for an
    RGB8 document), not the layer: the generation side marks the request's masked pixels −1 with
    `control_preprocess.inpaint_condition(image, request.mask)`."""
    units, images = [], []
    for control in getattr(state, "controls", ()):
        if not control.enabled:
            continue
        units.append(control.unit)
        if control.module == "inpaint":
            images.append(to_rgb8(state.current))
        else:
            images.append(control.image)
    return tuple(units), tuple(images)
