"""The editor's Restore menu (issue 27, item 2): upscale, restore faces, denoise through the real
menu, dialog, pool thread and restoration service with tiny random-weight spandrel models
(tests/restoration_models.py) found in a models folder; each result is ONE undo step, Cancel
leaves the document untouched, and pixels outside a selection stay bit-identical."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import restoration_models as rm
from app.core import maskops
from app.core.geometry import Bounds
from app.core.imageio import LoadedImage
from app.core.outpaint import Expansion
from app.editor.document import Document
from app.editor.snapshot import project_state
from app.editor.restore_task import DENOISE, FACES, UPSCALE, RestoreChoice, RestoreOutcome, RestoreRunner, run_restoration
from app.service.restoration import RestorationService
from app.storage.project import load_project, save_project
from doubles import shown_window
from app.widgets import restore_actions
from app.widgets.history_panel import parked_note

WAIT_MS = 30000
_SERVICE = RestorationService()  # one for the tests that run without a window (keeps its model loaded)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("restore-editor")
    paths = {
        "esrgan": rm.save(rm.esrgan_x2(), base / "ESRGAN" / "tiny-esrgan-x2.safetensors"),
        "compact": rm.save(rm.compact_x4(), base / "RealESRGAN" / "tiny-compact-x4.pth"),
        "dncnn": rm.save(rm.dncnn(), base / "denoise" / "tiny-dncnn.pth"),
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INPAINT_STUDIO_MODELS", str(base))
        mp.delenv("INPAINT_STUDIO_A1111", raising=False)
        yield {**paths, "base": base}


@pytest.fixture(scope="module")
def face_model(models):
    """A tiny RestoreFormer added to the same models folder (only the faces test pays for it)."""
    return rm.save(rm.restoreformer(), models["base"] / "GFPGAN" / "tiny-restoreformer.safetensors")


@pytest.fixture
def window(qtbot, tmp_path, models, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(models["base"]))  # whatever module fixture set it last
    w = shown_window(qtbot, tmp_path / "settings.ini")
    w.files.open_image_array(rm.photo(20, 24, seed=3))
    return w


def _dialog(qtbot, w, operation, factor=1, model=None):
    w.restore_actions[(operation, factor)].trigger()
    dialog = w.restore_dialog
    qtbot.waitUntil(lambda: dialog.run_button.isEnabled(), timeout=WAIT_MS)
    if model is not None:
        dialog.model.setCurrentIndex(dialog.model.findData(str(model)))
    return dialog


def _run(qtbot, dialog):
    assert dialog.run()
    qtbot.waitUntil(lambda: dialog.outcome is not None or dialog.note.isVisible() and not dialog.runner.running,
                    timeout=WAIT_MS)
    assert dialog.outcome is not None, dialog.note.text()


def test_upscale_x2_from_the_menu_is_one_undo_step_with_mask_and_box(qtbot, window, models):
    doc = window.document
    doc.fill_rect((4, 5, 6, 7))
    doc.set_context_box((2, 2, 16, 12))
    before_px, before_mask, steps = doc.pixels.copy(), doc.mask.copy(), doc.undo_stack.index()
    dialog = _dialog(qtbot, window, UPSCALE, 2, models["esrgan"])
    assert [dialog.model.itemData(i) for i in range(dialog.model.count())] == [str(models["esrgan"]), str(models["compact"])]
    _run(qtbot, dialog)
    assert doc.size == (24, 20)  # reviewed first: nothing in the document yet
    result = dialog.outcome.pixels
    assert dialog.apply()
    assert doc.size == (48, 40) and doc.undo_stack.index() == steps + 1
    assert np.array_equal(doc.pixels, result)
    assert doc.mask.shape == (40, 48) and np.array_equal(doc.mask[::2, ::2], before_mask)  # the selection scaled with it
    assert doc.context_box == Bounds(4, 4, 32, 24)
    assert "Upscale ×2 — tiny-esrgan-x2 (ESRGAN ×2)" in doc.undo_stack.undoText()
    steps = window.restore_panel.steps.model()  # the panel's edit history lists it with its parameters
    assert steps.data(steps.index(steps.rowCount() - 1, 0)) == doc.undo_stack.undoText()
    window.menu_actions.undo.trigger()
    assert doc.size == (24, 20) and np.array_equal(doc.pixels, before_px) and np.array_equal(doc.mask, before_mask)
    assert doc.context_box == Bounds(2, 2, 16, 12)
    window.menu_actions.redo.trigger()
    assert np.array_equal(doc.pixels, result) and doc.mask.shape == (40, 48)


def test_candidates_under_review_end_at_an_upscale_and_fit_again_after_its_undo(qtbot, window, models):
    doc, session = window.document, window.session
    doc.fill_rect((6, 6, 5, 5))
    with qtbot.waitSignal(session.generation_finished, timeout=WAIT_MS) as finished:
        assert window.generation.generate(window.current_params().replace(model="builtin:telea"))
    record = finished.args[0]
    assert session.candidates is record
    dialog = _dialog(qtbot, window, UPSCALE, 2, models["esrgan"])
    _run(qtbot, dialog)
    assert dialog.apply()
    assert session.candidates is None and "made on a 24×20 canvas" in parked_note(record, doc.size)
    window.menu_actions.undo.trigger()
    assert parked_note(record, doc.size) == "" and session.show_record(record)


def test_upscale_keeps_16_bit_alpha_and_the_icc_profile(qtbot, models):
    rgb = rm.photo(12, 14).astype(np.uint16) * 257 + 3
    alpha = np.tile(np.linspace(100, 65000, 14).astype(np.uint16), (12, 1))
    doc = Document()
    doc.set_image(LoadedImage(np.dstack([rgb, alpha]), icc_profile=b"profile bytes"))
    runner = RestoreRunner(doc, lambda: _SERVICE)
    outcome = run_restoration(_SERVICE, RestoreChoice(UPSCALE, str(models["compact"]), factor=4), doc.pixels.copy(),
                              doc.mask.copy(), doc.image_version, lambda i, n: None, lambda: False)
    assert runner.apply(outcome) == ""
    assert doc.pixels.dtype == np.uint16 and doc.pixels.shape == (48, 56, 4) and doc.icc_profile == b"profile bytes"
    assert np.array_equal(doc.pixels[:, :, 3], cv2.resize(alpha, (56, 48), interpolation=cv2.INTER_CUBIC))  # as the service does
    colour = doc.pixels[:, :, :3]
    assert np.any((colour >> 8) != (colour & 0xFF))  # 16-bit precision: not 8-bit values ×257
    doc.undo_stack.undo()
    assert np.array_equal(doc.pixels[:, :, 3], alpha) and doc.pixels.dtype == np.uint16


def test_an_upscaled_image_saves_and_reopens_as_a_project(qtbot, models, tmp_path):
    doc = Document()
    doc.set_image(rm.photo(10, 12))
    doc.expand_canvas(Expansion(3, 2, 0, 0), "stretch")  # the original sits at (3, 2)
    doc.fill_rect((1, 1, 4, 4))
    runner = RestoreRunner(doc, lambda: _SERVICE)
    outcome = run_restoration(_SERVICE, RestoreChoice(UPSCALE, str(models["esrgan"]), factor=2), doc.pixels.copy(),
                              doc.mask.copy(), doc.image_version, lambda i, n: None, lambda: False)
    assert runner.apply(outcome) == ""
    assert doc.original_offset == (6, 4) and doc.size == (30, 24)
    save_project(tmp_path / "up.inpaint", project_state(doc))
    back = load_project(tmp_path / "up.inpaint")
    assert np.array_equal(back.current, doc.pixels) and np.array_equal(back.mask, doc.mask)
    assert np.array_equal(back.original, doc.original) and tuple(back.original_offset) == (6, 4)


def test_a_x4_model_gives_a_x2_upscale_when_x2_is_asked_for(qtbot, window, models):
    dialog = _dialog(qtbot, window, UPSCALE, 2, models["compact"])
    _run(qtbot, dialog)
    assert dialog.outcome.pixels.shape == (40, 48, 3)
    assert "tiny-compact-x4 (Compact ×4)" in dialog.outcome.label


def test_restore_faces_in_the_selection_leaves_every_other_pixel_bit_identical(qtbot, window, face_model, monkeypatch):
    from app.inference.restoration import faces

    monkeypatch.setattr(faces, "FACE_SIZE", 64)  # the tiny model's working size (real ones: 512)
    doc = window.document
    doc.fill_rect((6, 5, 10, 9))
    before = doc.pixels.copy()
    dialog = _dialog(qtbot, window, FACES)
    assert dialog.in_selection.isChecked()
    dialog.strength.setValue(80)
    _run(qtbot, dialog)
    assert dialog.apply()
    outside = maskops.feather_full(doc.mask, 4) == 0
    assert np.array_equal(doc.pixels[outside], before[outside])
    assert not np.array_equal(doc.pixels, before)
    assert "strength 0.80" in doc.undo_stack.undoText() and "in the selection" in doc.undo_stack.undoText()
    window.menu_actions.undo.trigger()
    assert np.array_equal(doc.pixels, before)


class PausingService(RestorationService):
    """The real service, holding its first tile until the test says go (a run caught mid-way)."""

    def __init__(self) -> None:
        super().__init__()
        self.reached, self.go = threading.Event(), threading.Event()

    def run(self, request, progress=None, cancelled=None):
        def paused(i, n):
            self.reached.set()
            self.go.wait(20)
            progress(i, n)
        return super().run(request, paused, cancelled)


def test_cancel_mid_run_leaves_the_document_untouched(qtbot, window, models):
    doc = window.document
    before, steps = doc.pixels.copy(), doc.undo_stack.count()
    window.restore_runner.service = service = PausingService()
    dialog = _dialog(qtbot, window, DENOISE)
    assert dialog.run()
    qtbot.waitUntil(service.reached.is_set, timeout=WAIT_MS)
    with qtbot.waitSignal(window.restore_runner.cancelled, timeout=WAIT_MS):
        dialog.cancel_button.click()
        service.go.set()
    assert dialog.outcome is None and "Cancelled" in dialog.note.text()
    assert np.array_equal(doc.pixels, before) and doc.undo_stack.count() == steps
    assert dialog.run_button.isEnabled() and not window.restore_runner.running


def test_an_image_opened_while_the_run_copies_the_document_cancels_it(qtbot, window, models):
    runner = window.restore_runner
    window.document.snapshots.slice_bytes = 64  # the copy takes several event-loop turns
    with qtbot.waitSignal(runner.cancelled, timeout=WAIT_MS):
        assert runner.start(RestoreChoice(DENOISE, str(models["dncnn"]))) == ""
        window.files.open_image_array(rm.photo(20, 24, seed=9))  # the snapshot now holds the image that was closed
    assert not runner.running and window.document.undo_stack.count() == 0


def test_no_model_says_where_to_put_one_and_offers_get_models(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path / "empty"))
    w = shown_window(qtbot, tmp_path / "settings.ini")
    w.files.open_image_array(rm.photo(16, 16))
    w.restore_actions[(UPSCALE, 4)].trigger()
    dialog = w.restore_dialog
    qtbot.waitUntil(lambda: dialog.get_models_button.isVisible(), timeout=WAIT_MS)
    assert "No upscaling model found" in dialog.note.text() and not dialog.run_button.isEnabled()
    with qtbot.waitSignal(dialog.get_models_requested):
        dialog.get_models_button.click()


def test_a_result_made_before_the_image_changed_is_not_applied_over_it(qtbot, window, models):
    doc = window.document
    dialog = _dialog(qtbot, window, DENOISE)
    _run(qtbot, dialog)
    doc.apply_result(np.zeros_like(doc.pixels), label="someone else's edit")
    after_edit, steps = doc.pixels.copy(), doc.undo_stack.index()
    assert not dialog.apply()
    assert "changed while this ran" in dialog.note.text()
    assert np.array_equal(doc.pixels, after_edit) and doc.undo_stack.index() == steps


def test_menu_lists_every_operation_and_waits_for_an_image(qtbot, tmp_path, models):
    w = shown_window(qtbot, tmp_path / "settings.ini")
    texts = [a.text() for a in w.restore_menu.actions() if not a.isSeparator()]
    assert texts == ["&Upscale ×2…", "Upscale &×4…", "Restore &Faces…", "&Denoise…", "&Colourise…", "&Get Models…",
                     "Restore &Panel"]
    assert [b.defaultAction() for b in w.restore_panel.buttons] == [*w.restore_actions.values(), w.restore_get_models_action]
    assert not any(a.isEnabled() for a in w.restore_actions.values())  # no image yet
    assert restore_actions.open_restore_dialog(w, UPSCALE) is None
    w.files.open_image_array(rm.photo(16, 16))
    assert w.restore_actions[(UPSCALE, 2)].isEnabled() and w.restore_actions[(DENOISE, 1)].isEnabled()


# -- a sequence of edits keeps the document's invariants ------------------------------------------
_OPS = st.lists(st.sampled_from(["upscale", "paint", "undo", "redo", "expand", "denoise-selection"]), min_size=1, max_size=7)


def _state(doc: Document):
    return doc.pixels.copy(), doc.mask.copy(), doc.context_box, doc.original_offset


def _same(doc: Document, state) -> bool:
    px, mask, box, offset = state
    return (doc.pixels.shape == px.shape and np.array_equal(doc.pixels, px) and np.array_equal(doc.mask, mask)
            and doc.context_box == box and doc.original_offset == offset)


def _restore(doc: Document, runner: RestoreRunner, choice: RestoreChoice) -> bool:
    outcome = run_restoration(_SERVICE, choice, doc.pixels.copy(), doc.mask.copy(), doc.image_version,
                              lambda i, n: None, lambda: False)
    assert isinstance(outcome, RestoreOutcome), outcome
    assert runner.apply(outcome) == ""
    return True


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS, seed=st.integers(0, 1000))
def test_upscale_paint_undo_redo_expand_restore_keep_the_document_consistent(qtbot, models, ops, seed):
    rng = np.random.default_rng(seed)
    doc = Document()
    doc.set_image(rm.photo(10, 12, seed=seed))
    runner = RestoreRunner(doc, lambda: _SERVICE)
    history, pos = [_state(doc)], 0
    for op in ops:
        if doc.width > 100:  # two upscales and an expansion are plenty
            op = "undo"
        index = doc.undo_stack.index()
        if op == "undo":
            if doc.undo_stack.canUndo():
                doc.undo_stack.undo()
                pos -= 1
                assert _same(doc, history[pos])
            continue
        if op == "redo":
            if doc.undo_stack.canRedo():
                doc.undo_stack.redo()
                pos += 1
                assert _same(doc, history[pos])
            continue
        if op == "upscale":
            changed = _restore(doc, runner, RestoreChoice(UPSCALE, str(models["esrgan"]), factor=2))
        elif op == "paint":
            x, y = int(rng.integers(0, doc.width - 2)), int(rng.integers(0, doc.height - 2))
            changed = doc.fill_rect((x, y, 3, 3))
        elif op == "expand":
            changed = doc.expand_canvas(Expansion(0, 0, 4, 2), "stretch")
        else:
            if not doc.mask.any():
                continue
            outside = maskops.feather_full(doc.mask, 4) == 0
            before = doc.pixels.copy()
            changed = _restore(doc, runner, RestoreChoice(DENOISE, str(models["dncnn"]), in_selection=True))
            assert np.array_equal(doc.pixels[outside], before[outside])
        if changed and doc.undo_stack.index() != index:
            assert doc.undo_stack.index() == index + 1  # one operation, one undo step
            history, pos = history[:pos + 1] + [_state(doc)], pos + 1
        assert doc.mask.shape == doc.pixels.shape[:2] and doc.pixels.dtype == np.uint8
        box = doc.context_box
        assert box is None or doc.bounds.contains(box)
        ox, oy = doc.original_offset
        assert ox + doc.original.shape[1] <= doc.width and oy + doc.original.shape[0] <= doc.height
    while doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    assert _same(doc, history[0])


# -- LaMa in the model list ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def lama_file(tmp_path_factory):
    """A full-size random-weight LaMa (spandrel builds only big-lama's shape) in a LaMa/ folder."""
    models = tmp_path_factory.mktemp("lama-editor")
    path = rm.save(rm.lama(), models / "LaMa" / "big-lama.safetensors")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INPAINT_STUDIO_MODELS", str(models))
        mp.delenv("INPAINT_STUDIO_A1111", raising=False)
        yield path


def _choose_lama(qtbot, w, path):
    picker = w.model_picker
    qtbot.waitUntil(lambda: not picker.discovering and picker.combo.findData(f"lama:{path}") >= 0, timeout=WAIT_MS)
    picker.combo.setCurrentIndex(picker.combo.findData(f"lama:{path}"))


def test_lama_files_are_listed_and_the_panel_says_no_prompt_or_seed_is_used(qtbot, tmp_path, monkeypatch):
    path = tmp_path / "models" / "LaMa" / "big-lama.safetensors"  # found by folder and name: never read here
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path / "models"))
    w = shown_window(qtbot, tmp_path / "settings.ini")
    panel = w.params_panel
    _choose_lama(qtbot, w, path)
    assert w.session.prompt_free(w.model_picker.current_model()) and "No prompt, no seed" in w.model_picker.detail.text()
    for field in (panel.seed, panel.random_seed, panel.lock_seed, panel.scheduler, panel.steps, panel.guidance,
                  panel.strength, panel.batch):
        assert not field.isEnabled()
    assert "LaMa uses no prompt and no seed" in panel.prompt.placeholderText()
    w.files.open_image_array(rm.photo(16, 16))
    w.document.fill_rect((4, 4, 4, 4))
    assert panel.params().prompt == "" and panel.validation_message() == "" and w.menu_actions.generate.isEnabled()
    assert w.session.check(w.current_params()) is None  # the session asks no prompt of LaMa either
    w.model_picker.combo.setCurrentIndex(w.model_picker.combo.findData("builtin:telea"))
    assert "Classical inpainting ignores the prompt" in panel.prompt.placeholderText()
    w.set_params(w.current_params().replace(model="lama"))  # the CLI's bare "lama", e.g. recalled from a PNG
    assert w.model_picker.current_model() == f"lama:{path}" and not panel.seed.isEnabled()


@pytest.mark.slow
def test_generate_with_lama_needs_no_prompt_and_keeps_the_outside(qtbot, tmp_path, lama_file, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(lama_file.parent.parent))
    w = shown_window(qtbot, tmp_path / "settings.ini")
    _choose_lama(qtbot, w, lama_file)
    w.files.open_image_array(rm.photo(40, 48, seed=5))
    w.document.fill_rect((16, 12, 12, 10))
    with qtbot.waitSignal(w.session.generation_finished, timeout=WAIT_MS) as finished:
        assert w.generation.generate()
    record = finished.args[0]
    assert record.params.model == f"lama:{lama_file}" and record.params.prompt == ""
    before = w.document.pixels.copy()
    assert w.generation.apply_candidate(0)
    outside = maskops.feather_full(w.document.mask, record.params.mask_blur) == 0
    assert np.array_equal(w.document.pixels[outside], before[outside])
    assert w.document.undo_stack.undoText() == "Apply result (LaMa)"
