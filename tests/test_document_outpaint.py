"""Document: expand canvas and selections as single undo steps, restored to exact bytes."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.geometry import Bounds
from app.core.outpaint import Expansion
from app.editor.document import Document

EXP = Expansion(37, 0, 64, 5)


def _image(kind):
    rng = np.random.default_rng(3)
    return {
        "rgb8": lambda: rng.integers(0, 256, (60, 80, 3), dtype=np.uint8),
        "rgba16": lambda: rng.integers(0, 65536, (60, 80, 4), dtype=np.uint16),
        "gray8": lambda: rng.integers(0, 256, (60, 80), dtype=np.uint8),
    }[kind]()


@pytest.mark.parametrize("fill", ["stretch", "inpaint", "blur", "solid"])
@pytest.mark.parametrize("kind", ["rgb8", "rgba16", "gray8"])
def test_expand_is_one_undo_step_and_undo_is_exact(qapp, kind, fill):
    doc = Document()
    img = _image(kind)
    doc.set_image(img)
    doc.fill_rect(Bounds(5, 6, 10, 10))
    doc.set_context_box(Bounds(1, 2, 30, 20))
    before = (doc.pixels.copy(), doc.mask.copy(), doc.context_box)
    resets = []
    doc.reset.connect(lambda: resets.append(1))
    assert doc.expand_canvas(EXP, fill)
    assert doc.size == (80 + 37 + 64, 60 + 5) and doc.undo_stack.count() == 3
    assert doc.pixels.dtype == img.dtype and doc.pixels.shape[2:] == img.shape[2:]
    assert np.array_equal(doc.pixels[0:60, 37:117], img)  # every original pixel, bit-exact, moved
    assert np.array_equal(doc.mask[0:60, 37:117], before[1])
    assert doc.mask[:, :37].min() == 255 and doc.mask[60:].min() == 255
    assert doc.context_box == Bounds(0, 0, 181, 65) and doc.original_offset == (37, 0)
    assert doc.display_qimage().width() == 181 and resets
    after = doc.pixels.copy()

    doc.undo_stack.undo()
    assert doc.pixels.shape == img.shape and doc.pixels.dtype == img.dtype
    assert np.array_equal(doc.pixels, before[0]) and np.array_equal(doc.mask, before[1])
    assert doc.context_box == before[2] and doc.original_offset == (0, 0)
    doc.undo_stack.redo()
    assert np.array_equal(doc.pixels, after)
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert np.array_equal(doc.pixels, img) and not doc.mask.any() and doc.context_box is None


def test_expand_twice_accumulates_offset_and_edits_after_it_undo(qapp):
    doc = Document()
    img = _image("rgb8")
    doc.set_image(img)
    doc.expand_canvas(Expansion(10, 4, 0, 0))
    doc.expand_canvas(Expansion(3, 0, 0, 2))
    assert doc.original_offset == (13, 4)
    assert np.array_equal(doc.pixels[4:64, 13:93], img)
    doc.clear_mask()
    assert not doc.mask.any()
    for _ in range(3):
        doc.undo_stack.undo()
    assert np.array_equal(doc.pixels, img) and doc.original_offset == (0, 0)
    assert not doc.expand_canvas(Expansion())


def test_selection_modes_are_undoable_mask_edits(qapp):
    doc = Document()
    doc.set_image(np.zeros((20, 20, 3), np.uint8))
    a = np.zeros((20, 20), bool)
    a[0:10] = True
    b = np.zeros((20, 20), bool)
    b[5:15] = True
    assert doc.apply_selection(a, "add", "Magic wand")
    assert doc.undo_stack.undoText() == "Magic wand (add)"
    doc.apply_selection(b, "subtract")
    assert (doc.mask[0:5] == 255).all() and not doc.mask[5:].any()
    doc.apply_selection(b, "replace")
    assert np.array_equal(doc.mask > 0, b)
    doc.apply_selection(a, "add")
    assert np.array_equal(doc.mask > 0, a | b)
    for _ in range(4):
        doc.undo_stack.undo()
    assert not doc.mask.any()
    assert not doc.apply_selection(np.zeros((20, 20), bool), "add")


def test_expand_and_its_undo_announce_an_image_change(qapp):
    """Unlike opening a file, an expansion is work: the recovery autosave listens to image_changed."""
    doc = Document()
    doc.set_image(_image("gray8"))
    changed = []
    doc.image_changed.connect(lambda rect: changed.append((rect.width(), rect.height())))
    doc.expand_canvas(Expansion(0, 0, 10, 0))
    doc.undo_stack.undo()
    assert changed == [(90, 60), (80, 60)]


def test_image_version_moves_with_pixels_not_with_the_mask(qapp):
    doc = Document()
    doc.set_image(_image("rgb8"))
    v = doc.image_version
    doc.fill_rect(Bounds(0, 0, 5, 5))
    assert doc.image_version == v
    doc.apply_result(np.zeros_like(doc.pixels))
    assert doc.image_version == v + 1
    doc.undo_stack.undo()
    assert doc.image_version == v + 2
    doc.expand_canvas(Expansion(1, 0, 0, 0))
    assert doc.image_version == v + 3
