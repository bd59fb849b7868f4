"""Snapshots for writer threads: copied a slice per event-loop turn, yet exactly the document at
the moment they complete, whatever the user does meanwhile (app/editor/snapshot.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEventLoop

from app.editor.document import Document
from app.editor.snapshot import Snapshots

H, W = 120, 160


@pytest.fixture
def doc(qapp):
    d = Document()
    rng = np.random.default_rng(3)
    d.set_image(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    return d


def _turn(qapp, n: int = 1) -> None:
    """Run ``n`` event-loop turns (one slice each)."""
    for _ in range(n):
        qapp.processEvents(QEventLoop.ProcessEventsFlag.AllEvents)


def _slices(doc: Document) -> Snapshots:
    # 2 KB slices: the 19,200-byte mask takes ~10 turns, the 57,600-byte pixels ~29.
    return Snapshots(doc, slice_bytes=2048)


def _finish(qapp, taken: list, limit: int = 200) -> None:
    for _ in range(limit):
        if taken:
            return
        _turn(qapp)
    raise AssertionError("the snapshot did not complete")


def test_mask_edits_during_the_copy_are_in_it_and_later_ones_are_not(qapp, doc):
    snaps, taken = _slices(doc), []
    snaps.take(taken.append)
    assert not taken and snaps.busy  # big enough to need several turns
    _turn(qapp, 3)
    doc.fill_rect((0, 0, 20, 10))  # rows already copied: copied again from the change signal
    doc.fill_rect((100, 100, 30, 15))  # rows not copied yet
    doc.begin_stroke()
    doc.stroke_segment((10, 60), (150, 70), 6.0)
    doc.end_stroke()
    expected = doc.mask.copy()
    _finish(qapp, taken)
    state = taken[0]
    assert np.array_equal(state.mask, expected)
    assert state.current is doc.original  # pixels unchanged since opening: shared, not copied
    doc.fill_rect((60, 20, 10, 10))
    assert np.array_equal(state.mask, expected)  # independent of edits after it completed
    assert not snaps.busy


def test_a_result_applied_during_the_copy_is_in_it(qapp, doc):
    result = 255 - doc.pixels
    doc.apply_result(doc.pixels // 2, region=None)  # pixels now differ from the original: copied in slices
    snaps, taken = _slices(doc), []
    snaps.take(taken.append)
    _turn(qapp, 4)
    doc.apply_result(result)
    _finish(qapp, taken)
    assert np.array_equal(taken[0].current, result)
    doc.undo_stack.undo()
    assert np.array_equal(taken[0].current, result)  # the document's in-place undo did not reach it


def test_pixels_shared_then_changed_during_the_mask_copy_are_taken_again(qapp, doc):
    snaps, taken = _slices(doc), []
    doc.fill_rect((0, 0, W, H))
    snaps.take(taken.append)
    _turn(qapp, 2)
    result = 255 - doc.pixels
    doc.apply_result(result)  # the shared original no longer matches the document
    _finish(qapp, taken)
    assert np.array_equal(taken[0].current, result) and taken[0].current is not doc.pixels


def test_takes_asked_for_meanwhile_share_the_copy_and_finish_now_blocks(qapp, doc):
    snaps, first, second = _slices(doc), [], []
    snaps.take(first.append)
    _turn(qapp)
    doc.fill_rect((5, 5, 5, 5))
    snaps.take(second.append, now=True)
    assert first and second and first[0].mask is second[0].mask  # one copy, shared
    assert np.array_equal(first[0].mask, doc.mask)


def test_opening_another_image_during_a_take_finishes_it_with_the_old_document(qapp, doc):
    snaps, taken = _slices(doc), []
    doc.fill_rect((10, 10, 40, 40))
    old_pixels, old_mask, old_original = doc.pixels.copy(), doc.mask.copy(), doc.original
    doc.set_context_box((0, 0, 64, 64))
    snaps.take(taken.append)
    _turn(qapp, 2)
    doc.set_image(np.zeros((50, 70), np.uint8))  # new arrays; the old ones no longer change
    doc.fill_rect((0, 0, 10, 10))
    _finish(qapp, taken)
    state = taken[0]
    assert np.array_equal(state.mask, old_mask) and np.array_equal(state.current, old_pixels)
    assert state.original is old_original and state.context_box is not None
    assert len(taken) == 1


def test_a_small_document_is_copied_at_once(qapp, doc):
    taken: list = []
    doc.fill_rect((0, 0, 8, 8))
    doc.snapshots.take(taken.append)  # the default 2 MB slice holds it whole
    assert taken and np.array_equal(taken[0].mask, doc.mask) and taken[0].mask is not doc.mask


def test_takers_sharing_a_copy_get_their_own_state(qapp, doc):
    snaps, first, second = _slices(doc), [], []
    snaps.take(first.append)
    snaps.take(second.append, now=True)
    assert first[0] is not second[0] and first[0].mask is second[0].mask  # arrays shared, fields not
    first[0].params = "a save's params"
    assert second[0].params != "a save's params"
