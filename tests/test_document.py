"""Document: opening, mask operations, strokes, results and project state, all undoable to exact bytes."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PySide6.QtCore import QObject, QRect, Signal

from app.core import maskops
from app.editor.brush import brush_coverage
from app.editor.document import Document
from app.core.records import GenerationRecord
from app.core.geometry import Bounds
from app.core.params import GenerationParams
from app.editor.snapshot import project_state


@pytest.fixture
def doc(qapp):
    d = Document()
    rng = np.random.default_rng(0)
    d.set_image(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), path="/tmp/photo.png")
    return d


def square_mask(h=300, w=400):
    m = np.zeros((h, w), np.uint8)
    m[100:200, 150:250] = 255
    return m


def test_set_image_resets_mask_undo_and_keeps_the_original(doc):
    assert doc.size == (400, 300) and doc.width == 400 and doc.height == 300 and not doc.is_empty
    assert doc.mask.shape == (300, 400) and not doc.mask.any()
    assert doc.path == "/tmp/photo.png"
    doc.fill_mask()
    assert doc.undo_stack.count() == 1
    new = np.full((50, 60, 4), 9, np.uint16)
    resets = []
    doc.reset.connect(lambda: resets.append(1))
    doc.set_image(new)
    assert resets == [1]
    assert doc.undo_stack.count() == 0 and not doc.modified
    assert doc.mask.shape == (50, 60) and not doc.mask.any()
    assert doc.pixels.dtype == np.uint16 and np.array_equal(doc.original, new)
    assert doc.pixels is not doc.original and not doc.original.flags.writeable


def test_set_image_accepts_a_loaded_image_object(qapp):
    class Loaded:  # the shape of app.core.imageio.LoadedImage
        pixels = np.zeros((10, 12), np.uint8)
        icc_profile = b"icc"
        params = GenerationParams(prompt="a cat")

    d = Document()
    d.set_image(Loaded(), path="x.png")
    assert d.icc_profile == b"icc" and d.source_params.prompt == "a cat" and d.size == (12, 10)


def test_mask_operations_match_maskops_and_undo_exactly(doc):
    doc.set_mask(square_mask())
    base = doc.mask.copy()
    cases = [
        (doc.invert_mask, (), maskops.invert(base)),
        (doc.grow_mask, (5,), maskops.grow(base, 5)),
        (doc.shrink_mask, (5,), maskops.shrink(base, 5)),
        (doc.feather_mask, (6,), np.clip(maskops.feather(base, 6) * 255 + 0.5, 0, 255).astype(np.uint8)),
        (doc.clear_mask, (), np.zeros_like(base)),
        (doc.fill_mask, (), np.full_like(base, 255)),
    ]
    for op, args, expected in cases:
        assert op(*args)
        assert np.array_equal(doc.mask, expected), op.__name__
        doc.undo_stack.undo()
        assert np.array_equal(doc.mask, base), op.__name__
        doc.undo_stack.redo()
        assert np.array_equal(doc.mask, expected), op.__name__
        doc.undo_stack.undo()
    feathered = doc.feathered_mask(6)
    assert 0 < feathered[150, 147] < 255  # a soft edge just outside the hard square
    assert np.array_equal(doc.mask, base)  # the preview did not change the document


def test_mask_op_signals_carry_the_changed_rect(doc):
    rects: list[QRect] = []
    doc.mask_changed.connect(rects.append)
    doc.set_mask(square_mask())
    assert rects and rects[-1].contains(QRect(150, 100, 100, 100))
    assert not rects[-1].contains(QRect(0, 0, 400, 300))  # only the tiles that changed


def test_set_mask_refuses_a_mask_of_another_size(doc):
    with pytest.raises(maskops.MaskError):
        doc.set_mask(np.zeros((10, 10), np.uint8))


def test_noop_operations_push_nothing(doc):
    assert not doc.clear_mask()
    assert doc.undo_stack.count() == 0
    doc.begin_stroke("erase")
    doc.stroke_segment((10, 10), (50, 50), 10, 1.0)
    assert not doc.end_stroke()
    assert doc.undo_stack.count() == 0


def test_stroke_is_one_command_with_no_gaps_and_exact_undo(doc):
    doc.begin_stroke("paint")
    # a very fast move: one segment across 300 px
    doc.stroke_segment((20.0, 150.0), (320.0, 150.0), 8, 1.0)
    doc.stroke_segment((320.0, 150.0), (320.0, 250.0), 8, 1.0)
    assert doc.end_stroke()
    assert doc.undo_stack.count() == 1
    assert (doc.mask[150, 20:321] == 255).all()  # continuous along the segment
    assert (doc.mask[150:251, 320] == 255).all()
    assert doc.mask[150 - 12, 100] == 0 and doc.mask[150 + 12, 100] == 0
    doc.undo_stack.undo()
    assert not doc.mask.any()


def test_soft_brush_falls_off_and_does_not_build_up(doc):
    doc.begin_stroke("paint")
    for _ in range(5):  # the same spot many times: max-compositing keeps it stable
        doc.stroke_segment((200.0, 150.0), (200.0, 150.0), 20, 0.0)
    doc.end_stroke()
    centre, mid, edge = doc.mask[150, 200], doc.mask[150, 210], doc.mask[150, 221]
    assert centre >= 250 and 0 < mid < centre and edge == 0
    once = brush_coverage(Bounds(180, 130, 41, 41), (200.0, 150.0), (200.0, 150.0), 20, 0.0)
    assert np.array_equal(doc.mask[130:171, 180:221], once)


def test_erase_stroke_and_cancel_stroke(doc):
    doc.fill_mask()
    doc.begin_stroke("erase")
    doc.stroke_segment((50.0, 50.0), (150.0, 50.0), 10, 1.0)
    doc.end_stroke()
    assert doc.mask[50, 100] == 0 and doc.mask[80, 100] == 255
    before = doc.mask.copy()
    doc.begin_stroke("paint")
    doc.stroke_segment((0.0, 0.0), (399.0, 299.0), 30, 1.0)
    doc.cancel_stroke()
    assert np.array_equal(doc.mask, before)
    assert doc.undo_stack.count() == 2


def test_fill_rect_and_polygon(doc):
    assert doc.fill_rect(Bounds(10, 20, 30, 40))
    assert doc.mask[20:60, 10:40].all() and doc.mask.sum() == 30 * 40 * 255
    assert doc.fill_rect(QRect(15, 25, 5, 5), erase=True)
    assert not doc.mask[25:30, 15:20].any()
    doc.clear_mask()
    assert doc.fill_polygon([(100, 100), (200, 100), (200, 200), (100, 200)])
    assert doc.mask[150, 150] == 255 and doc.mask[100, 100] == 255 and doc.mask[99, 150] == 0
    assert doc.mask[150, 202] == 0 and doc.mask[202, 150] == 0  # cv2 fills edges inclusively
    assert doc.fill_polygon([(120, 120), (180, 120), (150, 180)], erase=True)
    assert doc.mask[130, 150] == 0 and doc.mask[110, 150] == 255
    for _ in range(3):
        doc.undo_stack.undo()
    assert doc.mask[20:25, 10:40].all() and doc.mask[25, 15] == 0 and not doc.mask[100:200, 100:200].any()


@pytest.mark.parametrize(
    "shape,dtype",
    [((120, 90), np.uint8), ((120, 90, 3), np.uint8), ((120, 90, 4), np.uint16), ((120, 90, 3), np.uint16)],
)
def test_apply_result_undo_returns_exact_original_bytes(qapp, shape, dtype):
    rng = np.random.default_rng(5)
    top = 65536 if dtype == np.uint16 else 256
    original = rng.integers(0, top, shape, dtype=dtype)
    d = Document()
    d.set_image(original)
    changes = []
    d.image_changed.connect(changes.append)
    result = original.copy()
    result[30:60, 20:50] = rng.integers(0, top, result[30:60, 20:50].shape, dtype=dtype)
    assert d.apply_result(result, "Inpaint")
    assert np.array_equal(d.pixels, result) and changes
    d.undo_stack.undo()
    assert d.pixels.tobytes() == original.tobytes()
    d.undo_stack.redo()
    assert d.pixels.tobytes() == result.tobytes()
    # the display image follows the pixels (16-bit through the 8-bit cache)
    img = d.display_qimage()
    assert (img.width(), img.height()) == (90, 120)
    got = img.pixelColor(25, 35)
    expect = result[35, 25] if result.ndim == 3 else np.array([result[35, 25]] * 3)
    if dtype == np.uint16:
        expect = (expect.astype(np.uint32) + 128) // 257
    assert (got.red(), got.green(), got.blue()) == tuple(int(v) for v in expect[:3])


def test_apply_result_patch_with_region(doc):
    patch = np.zeros((20, 30, 3), np.uint8)
    original = doc.pixels.copy()
    assert doc.apply_result(patch, "patch", region=Bounds(5, 6, 30, 20))
    assert not doc.pixels[6:26, 5:35].any()
    assert np.array_equal(doc.pixels[30:], original[30:])
    doc.undo_stack.undo()
    assert np.array_equal(doc.pixels, original)
    with pytest.raises(ValueError):
        doc.apply_result(np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(ValueError):
        doc.apply_result(doc.pixels.astype(np.uint16))


def test_modified_tracks_the_clean_state(doc):
    seen = []
    doc.modified_changed.connect(lambda: seen.append(doc.modified))
    assert not doc.modified
    doc.fill_mask()
    assert doc.modified
    doc.mark_saved()
    assert not doc.modified
    doc.undo_stack.undo()
    assert doc.modified
    doc.undo_stack.redo()
    assert not doc.modified
    assert seen == [True, False, True, False]


def test_state_round_trip(doc):
    doc.set_mask(square_mask())
    result = doc.pixels.copy()
    result[0:10, 0:10] = 0
    doc.apply_result(result)
    record = GenerationRecord(params=GenerationParams(prompt="sky", seed=3), candidates=[result], seeds=[3])
    doc.add_generation(record)
    state = project_state(doc, GenerationParams(prompt="sky"))
    assert state.params.prompt == "sky" and state.source_path == "/tmp/photo.png"
    assert np.array_equal(state.current, result) and state.mask is not doc.mask
    other = Document()
    events = []
    other.reset.connect(lambda: events.append("reset"))
    other.generations_changed.connect(lambda: events.append("generations"))
    other.load_state(state)
    assert events == ["reset", "generations"]
    assert np.array_equal(other.pixels, result) and np.array_equal(other.mask, square_mask())
    assert np.array_equal(other.original, doc.original)
    assert other.generations == [record] and other.path == "/tmp/photo.png"
    assert other.undo_stack.count() == 0 and not other.modified


def test_installed_pyside_keeps_none_and_true_references(qapp):
    """PySide6 6.12.0 drops a reference to None/True per emit or void call and aborts Python < 3.12
    within seconds of painting; constraints.txt pins 6.11.3 and pyproject excludes 6.12.0."""

    class Emitter(QObject):
        ping = Signal()

    e = Emitter()
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(5000):
        e.ping.emit()
        e.setObjectName("e")
    after = sys.getrefcount(None), sys.getrefcount(True)
    for b, a in zip(before, after):
        assert b - a < 10, (b, a)


def test_windowed_grow_shrink_feather_equal_full_image_passes_at_the_border(doc):
    """The ops work on the mask's bounding box only; results must equal whole-image maskops."""
    mask = np.zeros((300, 400), np.uint8)
    mask[0:50, 0:60] = 255  # touches the image corner
    mask[250:300, 370:400] = 128  # a soft patch at the opposite corner
    doc.set_mask(mask)
    assert np.array_equal(doc.grown_mask(7), maskops.grow(mask, 7))
    assert np.array_equal(doc.grown_mask(-7), maskops.shrink(mask, 7))
    full = np.clip(maskops.feather(mask, 9) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(doc.feathered_mask(9), full)
    doc.clear_mask()
    assert not doc.grown_mask(5).any() and not doc.feathered_mask(5).any()


def test_undo_during_a_stroke_drops_the_unfinished_stroke(doc):
    doc.fill_rect(Bounds(0, 0, 50, 50))
    doc.begin_stroke("paint")
    doc.stroke_segment((100.0, 100.0), (200.0, 100.0), 10, 1.0)
    doc.undo_stack.undo()  # e.g. Ctrl+Z while the mouse button is still down
    assert not doc.in_stroke and not doc.mask.any()
    doc.undo_stack.redo()
    assert doc.mask[0:50, 0:50].all() and doc.mask.sum() == 50 * 50 * 255


def test_prepared_arrays_are_adopted_and_never_alias_the_original(qapp):
    from app.editor.opened_image import prepare_image, prepare_state
    from app.storage.project import ProjectState

    doc = Document()
    pixels = np.full((20, 30, 3), 7, np.uint8)
    prepared = prepare_image(pixels)  # what the pool thread does for a big image
    doc.set_image(prepared)
    assert doc.pixels is prepared.pixels and doc.display_array() is prepared.pixels  # no copy on the GUI thread
    assert pixels.flags.writeable  # the caller's array is left as it was
    doc.fill_rect((0, 0, 5, 5))
    assert doc.unchanged_pixels() is doc.original  # mask work: pixels still as opened
    doc.apply_result(np.full((20, 30, 3), 9, np.uint8))
    assert doc.unchanged_pixels() is None and doc.original[0, 0, 0] == 7

    same = np.full((20, 30), 1000, np.uint16)  # a project whose current *is* its original
    state = ProjectState(original=same, current=same, mask=np.zeros((20, 30), np.uint8))
    doc.load_state(prepare_state(state, owned=True))
    assert not np.shares_memory(doc.pixels, doc.original) and doc.display_array().dtype == np.uint8
    doc.apply_result(np.zeros((20, 30), np.uint16))
    assert doc.original[0, 0] == 1000 and same[0, 0] == 1000

    plain = ProjectState(original=same, current=same.copy(), mask=np.zeros((20, 30), np.uint8))
    doc.load_state(plain)  # not prepared: copied, the caller keeps its arrays
    assert doc.pixels is not plain.current and doc.mask is not plain.mask and same.flags.writeable
