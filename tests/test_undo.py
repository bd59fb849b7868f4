"""Tile-based undo: exact bytes back, only changed tiles stored, history bounded by a byte budget."""

from __future__ import annotations

import numpy as np
import pytest

from app.editor.document import Document
from app.core.geometry import Bounds
from app.editor.undo import TILE, TileSnapshot, diff_tiles


@pytest.fixture
def big_doc(qapp):
    doc = Document()
    rng = np.random.default_rng(0)
    doc.set_image(rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8))
    return doc


def test_diff_tiles_keeps_only_changed_tiles_and_restores_exact_bytes():
    rng = np.random.default_rng(1)
    before = rng.integers(0, 65536, (600, 700, 4), dtype=np.uint16)
    after = before.copy()
    after[10:20, 300:310] = 7  # one tile
    after[590, 699] = 1  # the ragged corner tile
    delta = diff_tiles("image", before, after)
    assert sorted(delta.tiles) == [(0, 1), (2, 2)]
    target = after.copy()
    delta.write(target, "before")
    assert np.array_equal(target, before)
    delta.write(target, "after")
    assert np.array_equal(target, after)


def test_snapshot_records_only_touched_and_changed_tiles():
    mask = np.zeros((1000, 1000), np.uint8)
    snap = TileSnapshot("mask", mask)
    snap.touch(Bounds(0, 0, 600, 600))  # touched 9 tiles
    mask[100:120, 100:120] = 255  # changed 1
    assert snap.touched_tiles == 9
    delta = snap.finish()
    assert list(delta.tiles) == [(0, 0)]
    delta.write(mask, "before")
    assert not mask.any()


def test_two_hundred_strokes_store_far_less_than_full_copies(big_doc):
    doc = big_doc
    rng = np.random.default_rng(2)
    for _ in range(200):
        x, y = rng.uniform(0, 3000), rng.uniform(0, 2000)
        doc.begin_stroke("paint")
        doc.stroke_segment((x, y), (x + rng.uniform(-300, 300), y + rng.uniform(-300, 300)), 25, 0.7)
        assert doc.end_stroke()
    assert doc.undo_stack.count() == 200
    full_copies = 200 * doc.mask.nbytes
    stored = doc.history.nbytes()
    assert stored < full_copies / 200, (stored, full_copies)  # less than ONE full mask for all 200
    final = doc.mask.copy()
    doc.undo_stack.setIndex(0)
    assert not doc.mask.any()
    doc.undo_stack.setIndex(200)
    assert np.array_equal(doc.mask, final)


def test_budget_evicts_oldest_and_keeps_the_rest_working(qapp):
    doc = Document()
    rng = np.random.default_rng(3)
    doc.set_image(rng.integers(0, 256, (1024, 1024), dtype=np.uint8))
    states = [doc.pixels.copy()]

    def apply(i: int) -> None:
        # an incompressible patch inside one tile: every command stores about the same bytes
        patch = rng.integers(0, 256, (100, 100), dtype=np.uint8)
        region = Bounds(256 * (i % 4) + 20, 256 * (i // 4) + 20, 100, 100)
        assert doc.apply_result(patch, f"result {i}", region=region)
        states.append(doc.pixels.copy())

    apply(0)
    one = doc.history.nbytes()
    doc.history.budget = int(one * 4.5)
    for i in range(1, 12):
        apply(i)
    assert doc.history.nbytes() <= doc.history.budget
    assert doc.undo_stack.count() == 4
    assert doc.history.evicted == 8
    assert doc.undo_stack.index() == 4
    # the kept commands still undo to the exact bytes of their states, and redo again
    for back in range(1, 5):
        doc.undo_stack.undo()
        assert np.array_equal(doc.pixels, states[12 - back])
    assert not doc.undo_stack.canUndo()
    doc.undo_stack.setIndex(4)
    assert np.array_equal(doc.pixels, states[12])
    assert doc.undo_stack.text(3) == "result 11"


def test_budget_eviction_keeps_clean_state(qapp):
    doc = Document(history_budget=10**9)
    rng = np.random.default_rng(4)
    doc.set_image(rng.integers(0, 256, (256, 256), dtype=np.uint8))
    for i in range(4):
        doc.apply_result(rng.integers(0, 256, (60, 60), dtype=np.uint8), f"r{i}", region=Bounds(0, 0, 60, 60))
    doc.mark_saved()
    assert not doc.modified
    doc.apply_result(rng.integers(0, 256, (60, 60), dtype=np.uint8), "r4", region=Bounds(0, 0, 60, 60))
    assert doc.modified
    one = doc.undo_stack.command(0).nbytes
    doc.history.budget = 3 * one  # drops the two oldest of five
    assert doc.undo_stack.count() == 3
    assert doc.modified
    doc.undo_stack.undo()
    assert not doc.modified  # the saved state is still one step back


def test_tile_size_is_what_the_docs_say():
    assert TILE == 256


def test_a_document_with_history_is_freed_without_the_cycle_collector(qapp):
    """Undo commands are owned by the C++ QUndoStack; if they referenced the Document strongly,
    Documents lived in reference cycles and pytest's final bulk gc pass freed a command twice
    (a segfault after "N passed"). Without cycles, refcounting frees them in a safe order."""
    import gc
    import weakref

    doc = Document()
    doc.set_image(np.zeros((300, 300, 3), np.uint8))
    doc.fill_rect((10, 10, 20, 20))
    doc.apply_result(np.full((300, 300, 3), 7, np.uint8), "result")
    doc.undo_stack.undo()
    ref = weakref.ref(doc)
    gc.disable()
    try:
        del doc
        assert ref() is None
    finally:
        gc.enable()
