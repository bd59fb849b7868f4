"""The document: the image being edited, its mask, context box, undo history and generation history.

Model layer (QtCore/QtGui only). Widgets observe it through signals and never edit arrays
directly: every change goes through a method here and becomes one undo command that stores only
the changed tiles (see :mod:`app.editor.undo`). Arrays are edited *in place* (``pixels`` and ``mask`` keep
their identity between ``reset`` signals), which is what lets the canvas wrap them in QImages
without copying and redraw only dirty rectangles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRect, Signal
from PySide6.QtGui import QImage, QUndoStack

from app.core import maskops, outpaint, selection
from app.core.records import GenerationRecord
from app.core.geometry import Bounds
from app.editor.canvas_delta import CanvasDelta, CanvasState, PackedArray
from app.editor.control_layer import ControlLayers
from app.editor.control_undo import ControlDelta
from app.editor.brush import Point, lasso_fill
from app.editor.display_cache import DisplayCache
from app.editor.mask_stroke import MaskStroke
from app.editor.opened_image import PreparedImage, prepare_image, prepare_state
from app.editor.qimage import rgba8
from app.editor.snapshot import Snapshots
from app.editor.undo import (DEFAULT_BUDGET_BYTES, AppliedDelta, BoxDelta, HistoryBudget, TileDelta, copy_changed_tiles,
                             edit_tiles, qrect, to_bounds)


class Document(QObject):
    """Image + mask + undo stack + generations. See docs/API_EDITOR_CORE.md for the contract."""

    image_changed = Signal(QRect)  # image pixels changed in this rect (image coordinates)
    mask_changed = Signal(QRect)  # mask changed in this rect
    reset = Signal()  # new image / restored state: everything may have changed, arrays replaced
    generations_changed = Signal()
    #: The context box (`Bounds` or None), changed by an edit or undo; ``reset`` covers opening.
    context_box_changed = Signal(object)
    #: ``modified`` may have changed (read ``doc.modified``). No bool argument on purpose: PySide6
    #: 6.12 on Python 3.11 loses a reference to True/False on every Python-side ``emit(bool)`` and
    #: the interpreter aborts after a few hundred emits.
    modified_changed = Signal()

    def __init__(self, parent: QObject | None = None, *, history_budget: int = DEFAULT_BUDGET_BYTES) -> None:
        super().__init__(parent)
        self.pixels: np.ndarray = np.zeros((0, 0, 3), np.uint8)
        self.original: np.ndarray = self.pixels
        self.mask: np.ndarray = np.zeros((0, 0), np.uint8)
        self.icc_profile: bytes | None = None
        self.path: str | None = None
        #: Parameters recalled from the opened file's metadata (GenerationParams) or None.
        self.source_params: Any = None
        self.generations: list[GenerationRecord] = []
        self._context_box: Bounds | None = None
        #: (x, y) where ``original`` sits in ``pixels`` (moves when the canvas is expanded).
        self.original_offset: tuple[int, int] = (0, 0)
        #: Goes up whenever pixels change (edit, undo, open, resize): a cheap cache key for work
        #: derived from the image, such as the select-by-click embedding.
        self.image_version = 0
        self.undo_stack = QUndoStack(self)
        #: The undo history's byte budget: ``history.budget`` (settable, evicts at once),
        #: ``history.nbytes()`` (compressed tiles held), ``history.evicted`` (commands dropped).
        self.history = HistoryBudget(self.undo_stack, self._apply_delta, history_budget)
        self.undo_stack.cleanChanged.connect(self.modified_changed)  # signal to signal: no Python emit
        self._stroke: MaskStroke | None = None
        self._display = DisplayCache(self.pixels)
        #: (read-only array, image_version) equal to ``pixels`` at that version: see `unchanged_pixels`.
        self._pristine: tuple[np.ndarray, int] | None = None
        self._snapshots: Snapshots | None = None
        #: ControlNet images and settings (`app.editor.control_layer`), in this document's history.
        self.controls = ControlLayers(self)

    # -- image -----------------------------------------------------------------------------
    def set_image(self, loaded: Any, path: str | None = None) -> None:
        """Open an image (an ``app.core.imageio.LoadedImage``, an array, or a `PreparedImage` made
        off the GUI thread, whose arrays are adopted without a copy). Resets mask, undo, generations."""
        prepared = loaded if isinstance(loaded, PreparedImage) else prepare_image(loaded)
        self.source_params = prepared.params
        path = str(path) if path is not None else getattr(prepared.loaded, "path", None)
        self._adopt(prepared, path, (0, 0), None, [], pristine=True)

    def _adopt(self, prepared: PreparedImage, path: str | None, original_offset: tuple[int, int],
               context_box: Bounds | None, generations: list[GenerationRecord], *, pristine: bool,
               controls: Sequence[Any] = ()) -> None:
        """Take a whole new document state (opened or restored): undo cleared, observers reset.
        ``pristine``: the pixels are the file's own, so snapshots may share them (`unchanged_pixels`);
        ``controls``: the control layers (`SavedControl` s) — none for an opened image."""
        self.original, self.pixels, self.mask = prepared.original, prepared.pixels, prepared.mask
        self.original_offset = tuple(original_offset)
        self.icc_profile = prepared.icc_profile
        self.path = path
        self.generations = generations
        self.controls.restore(controls)
        self._stroke = None
        self.image_version += 1
        self._pristine = None
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self._display = prepared.display if prepared.display.pixels is self.pixels else DisplayCache(self.pixels)
        self._context_box = self._clamped_box(context_box)
        self.reset.emit()  # covers the box too: observers re-read everything
        if pristine:
            self._pristine = (self.original, self.image_version)
        self.generations_changed.emit()

    # -- context box --------------------------------------------------------------------------
    @property
    def context_box(self) -> Bounds | None:
        """What the model sees around the mask (None: the engine picks the region itself)."""
        return self._context_box

    def _clamped_box(self, box: Bounds | QRect | Sequence[int] | None) -> Bounds | None:
        box = to_bounds(box)
        if box is None or self.is_empty:
            return None
        box = box.clamp(self.width, self.height)
        return None if box.is_empty else box

    def set_context_box(self, box: Bounds | QRect | Sequence[int] | None, label: str | None = None) -> bool:
        """Set (clamped to the image; empty clears) or clear the box, undoably. False if unchanged."""
        self._require_image()
        delta = BoxDelta(self._context_box, self._clamped_box(box))
        if delta.is_empty:
            return False
        self._set_box(delta.after)
        return self._push(label or ("Clear context box" if delta.after is None else "Set context box"), [delta], already_applied=True)

    def _set_box(self, box: Bounds | None) -> None:
        self._context_box = box
        self.context_box_changed.emit(box)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1]) if self.pixels.ndim >= 2 else 0

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height

    @property
    def bounds(self) -> Bounds:
        return Bounds.of_image(self.width, self.height)

    @property
    def is_empty(self) -> bool:
        return self.pixels.size == 0

    @property
    def has_alpha(self) -> bool:
        return self.pixels.ndim == 3 and self.pixels.shape[2] == 4

    @property
    def modified(self) -> bool:
        return not self.undo_stack.isClean()

    def mark_saved(self) -> None:
        """The current state is on disk: clears ``modified`` (undo can make it modified again)."""
        self.undo_stack.setClean()

    # -- display cache ----------------------------------------------------------------------
    def display_qimage(self) -> QImage:
        """A QImage of the current pixels for drawing, kept current by dirty rect (8-bit pixels
        are wrapped without a copy; see `DisplayCache`). Valid until ``reset``."""
        return self._display.qimage

    def display_array(self) -> np.ndarray:
        """The 8-bit array behind ``display_qimage()`` (``pixels`` itself for 8-bit images)."""
        return self._display.array

    @property
    def snapshots(self) -> Snapshots:
        """Takes consistent copies of this document for writer threads (autosave, Save)."""
        if self._snapshots is None:
            self._snapshots = Snapshots(self)
        return self._snapshots

    def unchanged_pixels(self) -> np.ndarray | None:
        """A read-only array equal to ``pixels`` while no edit has changed them since the image
        was opened (snapshots share it instead of copying 24 MP), else None."""
        if self._pristine is not None and self._pristine[1] == self.image_version:
            return self._pristine[0]
        return None

    def display_rgba8(self) -> np.ndarray:
        """H×W×4 uint8 RGBA of the current pixels (a copy; for thumbnails, export, tests)."""
        return rgba8(self.pixels)

    # -- undo plumbing ----------------------------------------------------------------------
    def _array(self, target: str) -> np.ndarray:
        return self.mask if target == "mask" else self.pixels

    def _apply_delta(self, delta: TileDelta | BoxDelta, which: str) -> None:
        if self._stroke is not None:
            # Undo/redo pressed mid-stroke: the stroke's saved tiles would no longer match the mask.
            # Drop the unfinished stroke (it was never a command) before the history moves.
            self.cancel_stroke()
        if isinstance(delta, BoxDelta):
            self._set_box(delta.value(which))
            return
        if isinstance(delta, ControlDelta):
            self.controls.apply_delta(delta, which)
            return
        if isinstance(delta, CanvasDelta):
            self._set_canvas(delta.state(which))
            return
        if isinstance(delta, AppliedDelta):
            delta.record.applied = delta.value(which)
            self.generations_changed.emit()
            return
        b = delta.write(self._array(delta.target), which)
        if b is not None:
            self._emit(delta.target, b)

    def _emit(self, target: str, b: Bounds) -> None:
        if target == "mask":
            self.mask_changed.emit(qrect(b))
        else:
            self.image_version += 1
            self._display.update(b)
            self.image_changed.emit(qrect(b))

    def _push(self, label: str, deltas: list[TileDelta | BoxDelta], *, already_applied: bool) -> bool:
        deltas = [d for d in deltas if not d.is_empty]
        if not deltas:
            return False
        self.history.push(self.history.make(label, deltas, already_applied=already_applied))
        return True

    def _replace(self, target: str, new: np.ndarray, label: str, bounds: Bounds | None = None, extra: Sequence[Any] = ()) -> bool:
        """Make ``target`` equal to ``new`` as one undo command holding only the changed tiles.

        Only tiles touching ``bounds`` (default: all) are compared and copied.
        """
        self._require_image()
        delta = copy_changed_tiles(target, self._array(target), new, bounds)
        if delta.is_empty:
            return False
        self._emit(target, delta.bounds())
        return self._push(label, [delta, *extra], already_applied=True)

    def _edit_in_place(self, target: str, bounds: Bounds, edit, label: str, extra: Sequence[Any] = ()) -> bool:
        """Run ``edit(region_view)`` on ``bounds`` of ``target`` as one undo command."""
        self._require_image()
        b = bounds.clamp(self.width, self.height)
        if b.is_empty:
            return False
        delta = edit_tiles(target, self._array(target), b, edit)
        if delta.is_empty:
            return False
        self._emit(target, b)
        return self._push(label, [delta, *extra], already_applied=True)

    def _require_image(self) -> None:
        if self.is_empty:
            raise RuntimeError("no image is open")

    # -- results ----------------------------------------------------------------------------
    def apply_result(self, pixels: np.ndarray, label: str = "Apply result", region: Bounds | QRect | None = None,
                     record: GenerationRecord | None = None, index: int | None = None) -> bool:
        """Replace the image by a candidate, undoably. Returns False if nothing changed.

        ``pixels`` is either a full image (same shape and dtype as ``self.pixels``; ``region``,
        if given, limits where changes are looked for) or a patch the size of ``region``.
        ``record``/``index``: the generation and candidate applied; ``record.applied`` follows
        undo and redo of this command (set at once when no pixel changed: nothing to undo).
        """
        self._require_image()
        pixels = np.asarray(pixels)
        b = to_bounds(region)
        extra = [] if record is None else [AppliedDelta(record, record.applied, index)]
        if pixels.dtype != self.pixels.dtype:
            raise ValueError(f"result is {pixels.dtype}, the image is {self.pixels.dtype}")
        if pixels.shape == self.pixels.shape:
            changed = self._replace("image", pixels, label, b, extra)
        elif b is not None and pixels.shape[:2] == (b.height, b.width) and pixels.shape[2:] == self.pixels.shape[2:]:
            if not self.bounds.contains(b):
                raise ValueError(f"region {b} is outside the image")
            changed = self._edit_in_place("image", b, lambda region: np.copyto(region, pixels), label, extra)
        else:
            raise ValueError(f"result shape {pixels.shape} does not match the image {self.pixels.shape} or region {b}")
        if record is not None:
            record.applied = index
            self.generations_changed.emit()
        return changed

    def add_generation(self, record: GenerationRecord) -> None:
        self.generations.append(record)
        self.generations_changed.emit()

    def remove_generation(self, record: GenerationRecord) -> None:
        self.generations = [g for g in self.generations if g is not record]
        self.generations_changed.emit()

    # -- mask: whole-mask operations --------------------------------------------------------
    def set_mask(self, mask: np.ndarray, label: str = "Set mask") -> bool:
        """Replace the whole mask (validated by ``maskops.validate_mask``), undoably."""
        self._require_image()
        new = maskops.validate_mask(mask, self.mask.shape)
        return self._replace("mask", np.ascontiguousarray(new), label)

    def invert_mask(self) -> bool:
        return self._replace("mask", maskops.invert(self.mask), "Invert mask")

    def clear_mask(self) -> bool:
        return self._replace("mask", np.zeros_like(self.mask), "Clear mask")

    def fill_mask(self) -> bool:
        return self._replace("mask", np.full_like(self.mask, 255), "Fill mask")

    def grown_mask(self, px: int) -> np.ndarray:
        """The mask grown by ``px`` (negative shrinks), not applied: for the live preview."""
        return maskops.grow(self.mask, int(px))  # works on the mask's box, like `maskops.reach_window`

    def feathered_mask(self, px: int) -> np.ndarray:
        """The mask feathered by ``px`` as uint8 (soft edge), not applied: for the live preview."""
        return maskops.feathered_u8(self.mask, int(px))

    def grow_mask(self, px: int) -> bool:
        label = f"Grow mask {px}px" if px >= 0 else f"Shrink mask {-px}px"
        return self._replace("mask", self.grown_mask(px), label, maskops.reach_window(self.mask, px))

    def shrink_mask(self, px: int) -> bool:
        return self._replace("mask", self.grown_mask(-int(px)), f"Shrink mask {px}px", maskops.reach_window(self.mask, px))

    def feather_mask(self, px: int) -> bool:
        return self._replace("mask", self.feathered_mask(px), f"Feather mask {px}px", maskops.reach_window(self.mask, px))

    # -- mask: region fills -----------------------------------------------------------------
    def fill_rect(self, rect: Bounds | QRect | Sequence[int], erase: bool = False) -> bool:
        """Fill (255) or erase (0) a rectangle of the mask, undoably."""
        b = to_bounds(rect)
        value = 0 if erase else 255
        return self._edit_in_place("mask", b, lambda r: r.fill(value), "Erase rectangle" if erase else "Fill rectangle")

    def fill_polygon(self, points: Sequence[Point], erase: bool = False) -> bool:
        """Fill (255) or erase (0) a lasso polygon (image coordinates), undoably."""
        if len(points) < 3:
            return False
        b, edit = lasso_fill(points, 0 if erase else 255, self.width, self.height)
        return self._edit_in_place("mask", b, edit, "Erase lasso" if erase else "Fill lasso")

    # -- mask: brush strokes ----------------------------------------------------------------
    def begin_stroke(self, mode: str = "paint") -> None:
        """Start a brush stroke; ``mode`` is "paint" (towards 255) or "erase" (towards 0)."""
        self._require_image()
        stroke = MaskStroke(self.mask, mode)
        if self._stroke is not None:
            self.end_stroke()
        self._stroke = stroke

    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    def stroke_segment(self, p0: Point, p1: Point, radius: float, hardness: float = 1.0) -> QRect:
        """Paint one segment of the current stroke (see `MaskStroke.paint`); returns the dirty rect
        (also signalled)."""
        if self._stroke is None:
            raise RuntimeError("stroke_segment() outside begin_stroke()/end_stroke()")
        b = self._stroke.paint(p0, p1, radius, hardness)
        if b.is_empty:
            return QRect()
        rect = qrect(b)
        self.mask_changed.emit(rect)
        return rect

    def end_stroke(self, label: str | None = None) -> bool:
        """Finish the stroke: one undo command with the changed tiles. False if nothing changed."""
        if self._stroke is None:
            return False
        stroke, self._stroke = self._stroke, None
        return self._push(label or stroke.label, [stroke.finish()], already_applied=True)

    def cancel_stroke(self) -> None:
        """Abandon the current stroke and restore the mask as it was before it."""
        if self._stroke is None:
            return
        stroke, self._stroke = self._stroke, None
        delta = stroke.finish()
        if not delta.is_empty:
            self._apply_delta(delta, "before")

    # -- canvas size: expand for outpainting -----------------------------------------------------
    def expand_canvas(self, exp: outpaint.Expansion, fill: str = "stretch", colour: tuple[int, ...] | None = None) -> bool:
        """Grow the canvas by ``exp`` as one undo step: the new area pre-filled (`outpaint.FILL_MODES`)
        and masked, the context box set to the new area plus the old border. Original pixels keep
        their exact values, moved by ``exp.offset``. False if ``exp`` adds nothing."""
        self._require_image()
        if exp.is_empty:
            return False
        pixels = outpaint.expand_pixels(self.pixels, exp, fill, colour)
        mask = outpaint.expand_mask(self.mask, exp)
        box = outpaint.context_box_for(self.width, self.height, exp)
        ox, oy = self.original_offset
        before = CanvasState.of(self.pixels, self.mask, self._context_box, self.original_offset)
        after = CanvasState.of(pixels, mask, box, (ox + exp.left, oy + exp.top))
        self._set_canvas(after, pixels, mask)
        controls = self.controls.resize_delta(lambda image: outpaint.expand_pixels(image, exp, "solid", (0, 0, 0)))
        w, h = exp.new_size(before.pixels.shape[1], before.pixels.shape[0])
        deltas = [CanvasDelta(before, after)] + ([controls] if controls is not None else [])
        return self._push(f"Expand canvas to {w}×{h}", deltas, already_applied=True)

    def resize_canvas(self, pixels: np.ndarray, mask: np.ndarray, box: Bounds | None, original_offset: tuple[int, int],
                      label: str, packed: tuple[Any, Any] | None = None) -> bool:
        """Swap in a canvas of another size made elsewhere (an upscale: pixels, mask and box
        scaled together) as one undo step, like `expand_canvas`. ``packed``: the (before, after)
        pixels as `PackedArray` s made off the GUI thread (packing a ×4 result takes seconds)."""
        self._require_image()
        if pixels.dtype != self.pixels.dtype or pixels.shape[2:] != self.pixels.shape[2:] or mask.shape != pixels.shape[:2]:
            raise ValueError(f"canvas {pixels.shape} {pixels.dtype} (mask {mask.shape}) does not fit {self.pixels.shape} {self.pixels.dtype}")
        oh, ow = self.original.shape[:2]
        if not Bounds.of_image(pixels.shape[1], pixels.shape[0]).contains(Bounds(*original_offset, ow, oh)):
            raise ValueError(f"the original ({ow}×{oh}) does not fit the new canvas at {original_offset}")
        before_px, after_px = packed if packed is not None else (PackedArray.of(self.pixels), PackedArray.of(pixels))
        before = CanvasState(before_px, PackedArray.of(self.mask), self._context_box, self.original_offset)
        after = CanvasState(after_px, PackedArray.of(mask), box, tuple(original_offset))
        self._set_canvas(after, pixels, mask)
        size = (pixels.shape[1], pixels.shape[0])
        controls = self.controls.resize_delta(lambda image: cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
        return self._push(label, [CanvasDelta(before, after)] + ([controls] if controls is not None else []),
                          already_applied=True)

    def _set_canvas(self, state: CanvasState, pixels: np.ndarray | None = None, mask: np.ndarray | None = None) -> None:
        """Swap in a whole canvas state (new array identities, so observers get ``reset``)."""
        self._stroke = None
        self.pixels = pixels if pixels is not None else state.pixels.unpack()
        self.mask = mask if mask is not None else state.mask.unpack()
        self.original_offset = state.original_offset
        self._context_box = state.box
        self.image_version += 1
        self._display = DisplayCache(self.pixels)
        self.reset.emit()
        self.context_box_changed.emit(state.box)
        self.image_changed.emit(qrect(self.bounds))  # unlike opening a file, this is work: autosave it

    # -- mask: selections (magic wand, GrabCut, click segmentation) -------------------------------
    def apply_selection(self, selected: np.ndarray, mode: str = "replace", label: str = "Selection") -> bool:
        """Combine a selection (H×W bool or uint8) with the mask by ``mode`` (add / subtract /
        replace), as one undoable mask edit. False if the mask did not change."""
        self._require_image()
        new = selection.combine(self.mask, selected, mode)
        return self._replace("mask", new, f"{label} ({mode})")

    # -- project state ----------------------------------------------------------------------
    def load_state(self, state: Any) -> None:
        """Restore a ``ProjectState`` (copied; `snapshot.project_state` makes one) or one made ready off the GUI thread (a `PreparedImage`
        from `prepare_state`, adopted as it is): image, original, mask, context box, generations.
        Clears undo."""
        prepared = state if isinstance(state, PreparedImage) else prepare_state(state, owned=False)
        state = prepared.loaded
        self.source_params = None
        self._adopt(prepared, state.source_path, getattr(state, "original_offset", (0, 0)),
                    getattr(state, "context_box", None), list(state.generations), pristine=False,
                    controls=getattr(state, "controls", ()))

