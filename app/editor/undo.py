"""Undo commands that store only changed tiles, and a memory budget for the whole history.

A 24 MP mask is 24 MB and the RGB image 72 MB, so a full copy per stroke would exhaust memory in
a few dozen strokes. Every command here keeps, per changed 256×256 tile, the bytes *before* the
edit (zlib-compressed for masks, raw for image tiles: see ``TileDelta.compressed``). The "after"
bytes are taken lazily, at the first undo, from the array itself (which is then exactly the state
after the command): most commands are never undone, so this halves both the memory and the time
to commit a stroke. Undo always writes the saved "before" bytes, so it is byte-identical by
construction; redo writes what that undo captured.

Budget: ``QUndoStack.setUndoLimit`` counts commands, not bytes, and can only be set on an empty
stack. :class:`HistoryBudget` therefore sums ``TileCommand.nbytes`` after every push and, when the
sum exceeds the budget, *rebuilds* the stack without its oldest commands: the payloads are plain
Python objects (:class:`TileDelta`), so fresh commands wrapping them are pushed onto the cleared
stack while the owner is "replaying" (commands do nothing), then the index and the clean state
are restored. Only commands made here take part; a foreign command on the stack stops eviction at
that point (it could not be re-created), which keeps correctness over memory.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QRect
from PySide6.QtGui import QUndoCommand, QUndoStack

from app.core.geometry import Bounds

TILE = 256
#: zlib level 1: masks compress ~100× even at the fastest level; higher levels cost latency.
ZLIB_LEVEL = 1
DEFAULT_BUDGET_BYTES = 512 * 1024 * 1024


def tile_grid(height: int, width: int, bounds: Bounds | None = None, tile: int = TILE) -> Iterator[tuple[int, int]]:
    """(ty, tx) indices of the tiles that intersect ``bounds`` (default: the whole array)."""
    b = (bounds or Bounds.of_image(width, height)).clamp(width, height)
    if b.is_empty:
        return
    for ty in range(b.y // tile, (b.bottom - 1) // tile + 1):
        for tx in range(b.x // tile, (b.right - 1) // tile + 1):
            yield ty, tx


def tile_bounds(ty: int, tx: int, height: int, width: int, tile: int = TILE) -> Bounds:
    return Bounds(tx * tile, ty * tile, tile, tile).clamp(width, height)


@dataclass
class TileDelta:
    """Before/after bytes of the changed tiles of one array (the mask or the image)."""

    target: str  # "mask" or "image"
    shape: tuple[int, ...]
    dtype: np.dtype
    #: (ty, tx) → [before, after]; ``after`` is None until the first undo captures it.
    tiles: dict[tuple[int, int], list] = field(default_factory=dict)
    tile: int = TILE

    @property
    def compressed(self) -> bool:
        """Masks are zlib-compressed (~100× smaller, fast); image tiles are stored raw, because
        zlib gains little on photographic noise and costs ~8 ms per RGB tile (3 s for a full
        24 MP result), which would freeze the window when a result is applied."""
        return self.target == "mask"

    def _pack(self, region: np.ndarray) -> bytes:
        data = np.ascontiguousarray(region).tobytes()
        return zlib.compress(data, ZLIB_LEVEL) if self.compressed else data

    def _unpack(self, data: bytes) -> bytes:
        return zlib.decompress(data) if self.compressed else data

    @property
    def nbytes(self) -> int:
        return sum(len(b) + (len(a) if a is not None else 0) for b, a in self.tiles.values()) + 64 * len(self.tiles)

    @property
    def is_empty(self) -> bool:
        return not self.tiles

    def bounds(self) -> Bounds | None:
        """Union of the changed tiles, for the change signal."""
        out: Bounds | None = None
        h, w = self.shape[:2]
        for ty, tx in self.tiles:
            b = tile_bounds(ty, tx, h, w, self.tile)
            out = b if out is None else out.union(b)
        return out

    def write(self, array: np.ndarray, which: str) -> Bounds | None:
        """Write the "before" or "after" bytes into ``array`` in place; return the changed bounds.

        Writing "before" first captures the current tiles as "after" if they are not known yet.
        """
        if array.shape != self.shape or array.dtype != self.dtype:
            raise ValueError(f"undo data is for {self.shape} {self.dtype}, the {self.target} is {array.shape} {array.dtype}")
        index = 0 if which == "before" else 1
        h, w = self.shape[:2]
        for (ty, tx), pair in self.tiles.items():
            b = tile_bounds(ty, tx, h, w, self.tile)
            region = array[b.slices]
            if index == 0 and pair[1] is None:
                pair[1] = self._pack(region)
            if pair[index] is None:
                raise RuntimeError("redo before undo: the state after this edit was never captured")
            region[...] = np.frombuffer(self._unpack(pair[index]), dtype=self.dtype).reshape(region.shape)
        return self.bounds()


def diff_tiles(
    target: str, before: np.ndarray, after: np.ndarray, bounds: Bounds | None = None, *, keep_after: bool = True
) -> TileDelta:
    """Delta between two whole arrays of one shape, looking only at tiles touching ``bounds``.

    ``keep_after=False`` stores only the "before" bytes (the caller applies ``after`` itself).
    """
    if before.shape != after.shape or before.dtype != after.dtype:
        raise ValueError(f"cannot diff {before.shape} {before.dtype} against {after.shape} {after.dtype}")
    h, w = before.shape[:2]
    delta = TileDelta(target, before.shape, before.dtype)
    for ty, tx in tile_grid(h, w, bounds):
        sl = tile_bounds(ty, tx, h, w).slices
        b, a = before[sl], after[sl]
        if not np.array_equal(b, a):
            delta.tiles[(ty, tx)] = [delta._pack(b), delta._pack(a) if keep_after else None]
    return delta


def copy_changed_tiles(target: str, array: np.ndarray, new: np.ndarray, bounds: Bounds | None = None) -> TileDelta:
    """Make ``array`` equal to ``new`` in place, comparing and copying only the tiles touching
    ``bounds`` (default: all); the delta holds the changed tiles' bytes from before."""
    delta = diff_tiles(target, array, new, bounds, keep_after=False)
    h, w = array.shape[:2]
    for ty, tx in delta.tiles:
        sl = tile_bounds(ty, tx, h, w).slices
        array[sl] = new[sl]
    return delta


class TileSnapshot:
    """Copy-on-first-touch record of one array during an in-place edit (a brush stroke).

    ``touch(bounds)`` must be called *before* pixels in ``bounds`` change; it saves the untouched
    tiles once. ``finish()`` compares those tiles with the array now and keeps only real changes.
    Memory during a stroke is the touched tiles only, never a full copy.
    """

    def __init__(self, target: str, array: np.ndarray) -> None:
        self.target = target
        self.array = array
        self._saved: dict[tuple[int, int], np.ndarray] = {}

    def touch(self, bounds: Bounds) -> None:
        h, w = self.array.shape[:2]
        for key in tile_grid(h, w, bounds):
            if key not in self._saved:
                self._saved[key] = self.array[tile_bounds(*key, h, w).slices].copy()

    @property
    def touched_tiles(self) -> int:
        return len(self._saved)

    def finish(self) -> TileDelta:
        """The changed tiles' "before" bytes ("after" is captured by the first undo)."""
        h, w = self.array.shape[:2]
        delta = TileDelta(self.target, self.array.shape, self.array.dtype)
        for key, before in self._saved.items():
            after = self.array[tile_bounds(*key, h, w).slices]
            if not np.array_equal(before, after):
                delta.tiles[key] = [delta._pack(before), None]
        self._saved.clear()
        return delta


def edit_tiles(target: str, array: np.ndarray, bounds: Bounds, edit: Callable[[np.ndarray], object]) -> TileDelta:
    """Run ``edit`` on the view of ``bounds`` of ``array``, in place; the delta holds the tiles it changed."""
    snap = TileSnapshot(target, array)
    snap.touch(bounds)
    edit(array[bounds.slices])
    return snap.finish()


@dataclass(frozen=True)
class BoxDelta:
    """A context-box change. It rides in a `TileCommand` like a tile delta, so box edits share the
    history (and its eviction) with mask and image edits; it holds no pixels (``nbytes`` 0)."""

    before: Bounds | None
    after: Bounds | None
    target: str = "context"
    nbytes: int = 0

    @property
    def is_empty(self) -> bool:
        return self.before == self.after

    def value(self, which: str) -> Bounds | None:
        return self.after if which == "after" else self.before


@dataclass(frozen=True)
class AppliedDelta:
    """Which candidate of a generation record is in the image (``record.applied``): rides in the
    Apply command, so undoing an Apply also un-marks its history entry and the saved parameters."""

    record: object  # GenerationRecord (mutable; identity matters)
    before: int | None
    after: int | None
    target: str = "applied"
    nbytes: int = 0

    @property
    def is_empty(self) -> bool:
        return self.before == self.after

    def value(self, which: str) -> int | None:
        return self.after if which == "after" else self.before


class TileCommand(QUndoCommand):
    """One undoable edit made of :class:`TileDelta` s (mask and/or image).

    The owning :class:`HistoryBudget` writes the tiles (through the Document's ``apply``, which
    also emits the change signals). ``already_applied`` skips the first redo that
    ``QUndoStack.push`` calls, for edits made in place while the user painted.

    The owner is held by a weak reference: the command belongs to a C++ ``QUndoStack`` owned by
    the Document, and a strong reference back would put C++-owned wrappers in a Python reference
    cycle; collecting such cycles in bulk let shiboken free a command twice (a segfault).
    """

    def __init__(self, label: str, deltas: list[TileDelta | BoxDelta], owner: HistoryBudget, *, already_applied: bool = False) -> None:
        super().__init__(label)
        self.deltas = deltas
        self._owner = weakref.ref(owner)
        self._skip_redo = already_applied

    @property
    def nbytes(self) -> int:
        return sum(d.nbytes for d in self.deltas)

    def _active_owner(self) -> HistoryBudget | None:
        owner = self._owner()
        return None if owner is None or owner.replaying else owner

    def redo(self) -> None:
        if self._skip_redo:
            self._skip_redo = False
            return
        owner = self._active_owner()
        if owner is not None:
            for d in self.deltas:
                owner.apply(d, "after")

    def undo(self) -> None:
        owner = self._active_owner()
        if owner is not None:
            for d in reversed(self.deltas):
                owner.apply(d, "before")


class HistoryBudget:
    """Keeps the summed ``nbytes`` of the :class:`TileCommand` s on a stack under ``budget`` bytes."""

    def __init__(self, stack: QUndoStack, apply: Callable[[TileDelta, str], None], budget: int = DEFAULT_BUDGET_BYTES):
        self.stack = stack
        #: Weak, for the same reason as TileCommand's owner: ``apply`` is a Document method and
        #: the Document owns this budget.
        self._apply = weakref.WeakMethod(apply) if hasattr(apply, "__self__") else (lambda: apply)
        self._budget = int(budget)
        self.replaying = False
        self.evicted = 0  # commands dropped so far (for tests and the status bar)

    @property
    def budget(self) -> int:
        """Bytes the history may hold; setting it evicts at once."""
        return self._budget

    @budget.setter
    def budget(self, nbytes: int) -> None:
        self._budget = int(nbytes)
        self.enforce()

    def commands(self) -> list[QUndoCommand]:
        return [self.stack.command(i) for i in range(self.stack.count())]

    def nbytes(self) -> int:
        return sum(getattr(c, "nbytes", 0) for c in self.commands())

    def apply(self, delta: TileDelta, which: str) -> None:
        target = self._apply()
        if target is not None:
            target(delta, which)

    def make(self, label: str, deltas: list[TileDelta], *, already_applied: bool = False) -> TileCommand:
        return TileCommand(label, deltas, self, already_applied=already_applied)

    def push(self, command: QUndoCommand) -> None:
        self.stack.push(command)
        self.enforce()

    def enforce(self) -> None:
        """Drop the oldest commands until the history fits the budget (never the newest one)."""
        commands = self.commands()
        sizes = [getattr(c, "nbytes", 0) for c in commands]
        total = sum(sizes)
        if total <= self.budget:
            return
        drop = 0
        while drop < len(commands) - 1 and total > self.budget and isinstance(commands[drop], TileCommand):
            total -= sizes[drop]
            drop += 1
        if drop == 0:
            return
        kept = [(c.text(), c.deltas) for c in commands[drop:]]
        if not all(isinstance(c, TileCommand) for c in commands[drop:]):
            return  # a foreign command cannot be re-created; keep everything rather than lose it
        index, clean = self.stack.index(), self.stack.cleanIndex()
        self.replaying = True
        try:
            self.stack.clear()
            for text, deltas in kept:
                self.stack.push(self.make(text, deltas))
            new_clean = clean - drop
            if clean >= 0 and 0 <= new_clean <= len(kept):
                self.stack.setIndex(new_clean)
                self.stack.setClean()
            else:
                self.stack.resetClean()
            self.stack.setIndex(max(0, index - drop))
        finally:
            self.replaying = False
        self.evicted += drop


def qrect(b: Bounds | None) -> QRect:
    return QRect() if b is None else QRect(b.x, b.y, b.width, b.height)


def to_bounds(region: Bounds | QRect | Sequence[int] | None) -> Bounds | None:
    """``region`` as `Bounds` (None stays None): callers may pass a QRect or (x, y, w, h)."""
    if region is None or isinstance(region, Bounds):
        return region
    if isinstance(region, QRect):
        return Bounds(region.x(), region.y(), region.width(), region.height())
    x, y, w, h = region
    return Bounds(int(x), int(y), int(w), int(h))
