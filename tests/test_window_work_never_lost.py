"""Issue 25, "work lost" 1–3 in the real window (offscreen), driven as a new user would: undo of
an Expand canvas that candidates were made on, the quit question after a restored recovery, and
Save / Save As over a file that must not be replaced."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.core import imageio
from app.core.outpaint import Expansion
from app.core.params import GenerationParams
from app.storage.project import load_project
from app.widgets import file_actions
from app.widgets.recovery_dialog import install
from test_editor_reliability import _answer, _dead_session, data_dir  # noqa: F401
from test_main_window import generate_and_wait, make_window, photo, settings  # noqa: F401

Buttons = QMessageBox.StandardButton
CLASSICAL = GenerationParams(model="builtin:telea")


@pytest.fixture
def window(qtbot, settings, data_dir):  # noqa: F811
    w = make_window(qtbot, settings)
    install(w, offer=False)
    yield w
    w.recovery.shutdown(clean=True)  # what the application's aboutToQuit does
    w.force_close()


def save_dialog_answers(monkeypatch, *paths) -> list:
    """The file dialog answers ``paths`` in turn; returns the start names it was shown."""
    answers, shown = list(paths), []

    def get_save_file_name(_parent, _title, start, _filter):
        shown.append(start)
        return (str(answers.pop(0)) if answers else "", "")

    monkeypatch.setattr(file_actions.QFileDialog, "getSaveFileName", get_save_file_name)
    return shown


# -- 1: undoing Expand canvas after a generation ----------------------------------------------------
def test_undo_of_expand_after_generate_and_discard_keeps_autosave_and_save_project_working(qtbot, window, photo, tmp_path):
    window.files.open_path(photo)
    doc, ctl = window.document, window.recovery
    doc.expand_canvas(Expansion(0, 0, 64, 0), "stretch")
    generate_and_wait(qtbot, window, CLASSICAL)
    window.candidates_panel.discard_requested.emit()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.size == (512, 512)
    assert "made on a 576×512 canvas" in window.history_panel.list.item(0).text()  # parked, and said so
    assert ctl.autosave_now(wait=True) and ctl.autosaver.last_error is None
    qtbot.wait(50)  # queued signals from the autosave thread
    assert not window.status.autosave.isVisible() and ctl.failing is None
    assert load_project(ctl.autosaver.path).current.shape == (512, 512, 3)
    with qtbot.waitSignal(window.session.saver.saved, timeout=20000):
        assert window.files.save_project_to(tmp_path / "work.inpaint")
    again = load_project(tmp_path / "work.inpaint")
    assert again.current.shape == (512, 512, 3) and again.generations[0].candidates[0].shape == (512, 576, 3)
    window.history_panel.list.setCurrentRow(0)
    window.history_panel.show_requested.emit(doc.generations[0])  # double-click on the parked entry
    assert window.session.candidates is None and "576×512" in window.message_bar.text


def test_a_failed_autosave_stays_visible_until_one_succeeds(qtbot, window, photo, monkeypatch):
    import app.storage.autosave as autosave_module

    window.files.open_path(photo)
    ctl = window.recovery
    real = autosave_module.save_project
    monkeypatch.setattr(autosave_module, "save_project", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    window.document.fill_rect((10, 10, 20, 20))
    with qtbot.waitSignal(ctl.save_failed, timeout=10000):
        ctl.autosave_now()
    assert window.status.autosave.isVisible() and "No space left" in window.status.autosave.toolTip()
    window.message_bar.dismiss()
    assert window.status.autosave.isVisible()  # dismissing the banner does not hide the failure
    monkeypatch.setattr(autosave_module, "save_project", real)
    with qtbot.waitSignal(ctl.saved, timeout=10000):
        ctl.autosave_now()
    assert not window.status.autosave.isVisible()


# -- 2: the quit question after a restored recovery ---------------------------------------------------
def test_quit_after_restoring_offers_save_project_and_deletes_the_recovery_only_after_it(qtbot, settings, data_dir, tmp_path, monkeypatch):  # noqa: F811
    _dead_session(data_dir, seed=3)
    window = make_window(qtbot, settings)
    ctl = install(window, offer=False)
    (rec,) = ctl.offer_recovery()
    with qtbot.waitSignal(ctl.saved, timeout=10000):
        ctl.restore(rec, load_project(rec.path))
    mask = window.document.mask.copy()
    assert mask.any()

    shown = save_dialog_answers(monkeypatch, "", tmp_path / "kept")  # first: the user cancels the file dialog
    window.close()  # Ctrl+Q
    qtbot.waitUntil(lambda: window.files.question is not None, timeout=5000)
    assert window.files.question.button(Buttons.Save).text() == "Save Project…"
    _answer(qtbot, lambda: window.files.question, Buttons.Save)
    assert window.isVisible() and shown[0].endswith(".inpaint")  # nothing saved: the window stays, the work too
    assert window.document.modified and ctl.autosaver.path.exists()  # so a quit now would keep the recovery

    window.close()
    _answer(qtbot, lambda: window.files.question, Buttons.Save)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=20000)  # closed once the project was on disk
    saved = load_project(tmp_path / "kept.inpaint")
    assert np.array_equal(saved.mask, mask) and len(saved.generations) == 1
    assert list(tmp_path.glob("*.png")) == []  # no "…-inpainted.png" in place of the work
    ctl._on_quit()
    assert not ctl.autosaver.path.exists()


def test_candidates_under_review_are_unsaved_work(qtbot, window, photo, monkeypatch, tmp_path):
    window.files.open_path(photo)
    window.document.fill_rect((100, 100, 40, 40))
    window.document.mark_saved()  # as after Save: only the candidates below are new
    generate_and_wait(qtbot, window, CLASSICAL)
    assert not window.document.modified and window.session.has_unsaved_work
    save_dialog_answers(monkeypatch, tmp_path / "review.inpaint")
    window.close()
    _answer(qtbot, lambda: window.files.question, Buttons.Save)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=20000)
    assert len(load_project(tmp_path / "review.inpaint").generations) == 1


# -- 3: Save / Save As over files that must not be replaced --------------------------------------------
def test_save_as_over_a_read_only_file_refuses_and_offers_another_name(qtbot, window, photo, tmp_path, monkeypatch):
    window.files.open_path(photo)
    protected = tmp_path / "protected.png"
    imageio.save_image(protected, np.zeros((4, 4, 3), np.uint8))
    protected.chmod(0o444)
    before = protected.read_bytes()
    save_dialog_answers(monkeypatch, protected, tmp_path / "other.png")
    window.menu_actions.save_as.trigger()
    qtbot.waitUntil(lambda: window.files.refusal is not None, timeout=5000)
    box = window.files.refusal
    assert "protected.png is read-only" in box.text() and "read-only" in window.status.message.text()
    assert protected.read_bytes() == before and stat.S_IMODE(protected.stat().st_mode) == 0o444
    with qtbot.waitSignal(window.session.saver.saved, timeout=20000):
        box.button(Buttons.Save).click()  # "Choose Another Name…"
    assert imageio.load_image(tmp_path / "other.png").pixels.shape == (512, 512, 3)
    assert window.status.message.text() == "Saved other.png"


def test_ctrl_s_to_a_read_only_result_and_save_over_the_opened_photo_are_refused(qtbot, window, photo, tmp_path, monkeypatch):
    window.files.open_path(photo)
    window.document.fill_rect((1, 1, 5, 5))
    target = tmp_path / "result.png"
    imageio.save_image(target, np.zeros((4, 4, 3), np.uint8))
    os.chmod(target, 0o444)
    window.session.save_path = str(target)
    save_dialog_answers(monkeypatch)  # the user cancels when asked for another name
    assert not window.files.save()
    _answer(qtbot, lambda: window.files.refusal, Buttons.Save)
    assert imageio.load_image(target).pixels.shape == (4, 4, 3) and window.document.modified

    photo_bytes = photo.read_bytes()
    assert not window.files.save_result(photo)
    assert "the image you opened" in window.files.refusal.text()
    window.files.refusal.button(Buttons.Cancel).click()
    assert photo.read_bytes() == photo_bytes
