"""Autosaver (Qt-free), RecoveryController on the real Document, and the recovery dialog."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from reliability_fixtures import assert_states_equal, make_state

import app.storage.autosave as autosave
from app.storage.autosave import Autosaver, discard, pending_recoveries, recovery_dir
from app.editor.document import Document
from app.core.records import GenerationRecord
from app.core.params import GenerationParams, ParamError
from app.storage.project import ProjectError, load_project
from app.editor.recovery_controller import RecoveryController

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "recovery"


def _dead_session(folder: Path, seed: int = 5) -> None:
    """A real other process that autosaves and dies without a clean exit."""
    code = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from reliability_fixtures import make_state
        from app.storage.autosave import Autosaver
        a = Autosaver({str(folder)!r})
        a.save(make_state(seed={seed}))
        os._exit(0)  # no mark_clean_exit: like a crash
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_folder_comes_from_env_override(data_dir):
    assert recovery_dir() == data_dir
    assert Autosaver().folder == data_dir


def test_nothing_is_written_until_the_first_save(data_dir):
    a = Autosaver()
    assert a.path is None and not data_dir.exists()
    a.close(clean=True)
    assert not data_dir.exists()


def test_live_session_is_not_offered_to_a_second_instance(data_dir):
    first = Autosaver()
    first.save(make_state())
    second = Autosaver()
    assert second.pending_recoveries() == [] and pending_recoveries(data_dir) == []
    with pytest.raises(RuntimeError, match="running session"):
        discard(autosave.Recovery(first.path, first.lock_path, None, 0.0, 0))
    assert first.path.exists()
    first.close(clean=True)
    second.close(clean=True)


def test_dead_session_is_offered_and_holds_the_work(data_dir):
    _dead_session(data_dir, seed=5)
    a = Autosaver()
    (rec,) = a.pending_recoveries()
    assert rec.pid and rec.pid != os.getpid() and rec.size > 0
    assert_states_equal(make_state(seed=5), rec.load())
    assert rec.info().generations == 1
    a.discard(rec)
    assert not rec.path.exists() and not rec.lock_path.exists() and a.pending_recoveries() == []


def test_clean_exit_leaves_nothing_and_unclean_close_leaves_the_work(data_dir):
    a = Autosaver()
    a.save(make_state())
    a.mark_clean_exit()
    assert list(data_dir.iterdir()) == []
    b = Autosaver()
    b.save(make_state(seed=9))
    b.close(clean=False)  # e.g. the app is shutting down because of an error
    (rec,) = Autosaver().pending_recoveries()
    assert_states_equal(make_state(seed=9), rec.load())


def test_adopted_recovery_is_deleted_only_after_the_next_successful_save(data_dir, monkeypatch):
    _dead_session(data_dir)
    a = Autosaver()
    (rec,) = a.pending_recoveries()
    state = a.adopt(rec)
    assert a.pending_recoveries() == []  # not offered twice
    failing = {"on": True}
    real = autosave.save_project

    def maybe_fail(*args, **kw):
        if failing["on"]:
            raise ProjectError("Could not save: the disk is full.")
        return real(*args, **kw)

    monkeypatch.setattr(autosave, "save_project", maybe_fail)
    with pytest.raises(ProjectError):
        a.save(state)
    assert rec.path.exists()  # the only copy of the work is kept while ours failed
    failing["on"] = False
    a.save(state)
    assert not rec.path.exists() and a.path.exists()
    a.mark_clean_exit()


def test_async_saves_coalesce_and_the_newest_wins(data_dir):
    a = Autosaver()
    states = [make_state(seed=s) for s in range(6)]
    for s in states:
        a.save_async(s)
    assert a.flush(60)
    assert 1 <= a.saves <= 6 and a.last_duration_s is not None
    assert_states_equal(states[-1], load_project(a.path))
    a.mark_clean_exit()


def test_worker_survives_a_failed_save_and_reports_it(data_dir, monkeypatch):
    errors = []
    a = Autosaver(on_error=errors.append)
    real = autosave.save_project
    calls = {"n": 0}

    def first_fails(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real(*args, **kw)

    monkeypatch.setattr(autosave, "save_project", first_fails)
    a.save_async(make_state(seed=1))
    assert a.flush(60)
    assert errors and "No space" in errors[0]
    a.save_async(make_state(seed=2))
    assert a.flush(60) and a.last_error is None
    assert_states_equal(make_state(seed=2), load_project(a.path))
    a.mark_clean_exit()


def test_stale_temp_files_of_dead_sessions_are_removed(data_dir):
    data_dir.mkdir(parents=True)
    tmp = data_dir / ".session-1-dead.inpaint.abc.tmp"
    tmp.write_bytes(b"half a save")
    old = time.time() - 3 * 24 * 3600
    os.utime(tmp, (old, old))
    a = Autosaver()
    a.save(make_state())
    assert not tmp.exists()
    a.mark_clean_exit()


def test_orphan_lock_of_a_killed_session_is_cleaned(data_dir):
    """A session killed (kill -9) before its first save leaves only its lock: nobody needs it."""
    code = textwrap.dedent(
        f"""
        import os
        from app.storage.autosave import Autosaver
        a = Autosaver({str(data_dir)!r})
        a._claim_slot()
        os.kill(os.getpid(), 9)
        """
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60)
    assert len(list(data_dir.glob("session-*.lock"))) == 1
    a = Autosaver()
    assert a.pending_recoveries() == []
    assert list(data_dir.glob("session-*.lock")) == []


def test_unwritable_recovery_folder_is_one_clear_message_reported_once(data_dir):
    data_dir.parent.mkdir(parents=True)
    data_dir.write_text("a file where the folder should be")  # fails for root too, unlike chmod
    errors = []
    a = Autosaver(on_error=errors.append)
    for seed in (1, 2, 3):
        a.save_async(make_state(seed=seed))
        assert a.flush(60)
    assert len(errors) == 1, errors
    assert errors[0].startswith("Autosave is off: the recovery folder") and "INPAINT_STUDIO_DATA" in errors[0]
    assert "Errno" not in errors[0]
    a.close(clean=False)


# -- RecoveryController on the real Document ------------------------------------------------------
def _document(qtbot) -> Document:
    doc = Document()
    rng = np.random.default_rng(0)
    doc.set_image(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    return doc


def test_applied_result_is_autosaved(qtbot, data_dir):
    doc = _document(qtbot)
    ctl = RecoveryController(doc, lambda: GenerationParams(prompt="sky", steps=12), mask_interval_s=3600)
    result = doc.pixels.copy()
    result[10:20, 10:20] = 7
    with qtbot.waitSignal(ctl.saved, timeout=10000) as blocker:
        doc.apply_result(result)
    state = load_project(blocker.args[0])
    assert np.array_equal(state.current, result) and state.params.steps == 12
    assert np.array_equal(state.original, doc.original)
    ctl.shutdown(clean=True)
    assert list(data_dir.iterdir()) == []


def test_new_generation_is_autosaved_but_opening_an_image_is_not(qtbot, data_dir):
    doc = Document()
    ctl = RecoveryController(doc, mask_interval_s=3600, result_delay_ms=10)
    doc.set_image(np.zeros((32, 32), np.uint8))
    qtbot.wait(100)
    assert ctl.autosaver.saves == 0 and not ctl.dirty
    record = GenerationRecord(GenerationParams(seed=4), [np.full((32, 32), 9, np.uint8)], [4])
    with qtbot.waitSignal(ctl.saved, timeout=10000) as blocker:
        doc.add_generation(record)
    (gen,) = load_project(blocker.args[0]).generations
    assert gen.seeds == [4] and int(gen.candidates[0][0, 0]) == 9
    ctl.shutdown(clean=True)


def test_mask_work_is_saved_after_the_interval_even_while_painting(qtbot, data_dir):
    doc = _document(qtbot)
    ctl = RecoveryController(doc, mask_interval_s=0.4)
    t0 = time.monotonic()
    doc.begin_stroke()
    doc.stroke_segment((5, 5), (30, 20), 4)
    assert ctl.autosaver.saves == 0  # not on every stroke
    with qtbot.waitSignal(ctl.saved, timeout=10000) as blocker:
        while ctl.autosaver.saves == 0 and time.monotonic() - t0 < 5:
            doc.stroke_segment((30, 20), (5 + (time.monotonic() * 100) % 40, 30), 3)  # keeps painting
            qtbot.wait(50)
    doc.end_stroke()
    assert time.monotonic() - t0 < 4  # steady painting did not postpone the save forever
    assert load_project(blocker.args[0]).mask.max() == 255
    ctl.shutdown(clean=True)


def _snapshot(doc):
    taken: list = []
    doc.snapshots.take(taken.append, now=True)
    return taken[0]


def test_snapshot_is_independent_of_later_edits(qtbot, data_dir):
    doc = _document(qtbot)
    doc.fill_rect((0, 0, 10, 10))
    snap = _snapshot(doc)
    doc.fill_rect((20, 20, 10, 10))
    assert snap.mask[25, 25] == 0 and snap.mask[5, 5] == 255
    assert snap.original is doc.original  # read-only, shared: no copy
    assert snap.current is doc.original  # pixels unchanged since opening: shared too
    result = doc.pixels.copy()
    result[0, 0] = 255 - result[0, 0]
    doc.apply_result(result)
    after = _snapshot(doc)
    assert after.current is not snap.current and np.array_equal(after.current, result)
    assert not np.array_equal(snap.current, result)  # the old snapshot was not touched
    doc.fill_rect((40, 40, 5, 5))
    assert _snapshot(doc).current is after.current  # mask work only: the pixel copy is reused
    doc.undo_stack.undo()  # the mask rect
    doc.undo_stack.undo()  # the result
    assert np.array_equal(_snapshot(doc).current, snap.current)


def test_ui_params_error_falls_back_to_last_good_params(qtbot, data_dir):
    doc = _document(qtbot)
    params = {"value": GenerationParams(prompt="good")}

    def getter():
        if isinstance(params["value"], Exception):
            raise params["value"]
        return params["value"]

    ctl = RecoveryController(doc, getter, mask_interval_s=3600)
    assert ctl.autosave_now(wait=True)
    params["value"] = ParamError("steps", "abc", "a whole number")
    doc.fill_rect((0, 0, 4, 4))
    assert ctl.autosave_now(wait=True)
    assert load_project(ctl.autosaver.path).params.prompt == "good"
    ctl.shutdown(clean=True)


def test_restore_puts_the_work_back_and_then_owns_it(qtbot, data_dir):
    _dead_session(data_dir, seed=11)
    doc = Document()
    ctl = RecoveryController(doc)
    (rec,) = ctl.offer_recovery()
    with qtbot.waitSignal(ctl.restored) as restored, qtbot.waitSignal(ctl.saved, timeout=10000):
        ctl.restore(rec)
    expected = make_state(seed=11)
    assert restored.args[0] == expected.params
    assert np.array_equal(doc.pixels, expected.current) and np.array_equal(doc.mask, expected.mask)
    assert len(doc.generations) == 1 and not rec.path.exists()
    ctl.shutdown(clean=False)
    (mine,) = pending_recoveries(data_dir)
    assert_states_equal(expected, mine.load())


def test_damaged_recovery_is_reported_and_kept(qtbot, data_dir):
    _dead_session(data_dir)
    (rec,) = pending_recoveries(data_dir)
    rec.path.write_bytes(rec.path.read_bytes()[:500])
    doc = _document(qtbot)
    before = doc.pixels.copy()
    ctl = RecoveryController(doc)
    with pytest.raises(ProjectError, match="damaged"):
        ctl.restore(rec)
    assert rec.path.exists() and np.array_equal(doc.pixels, before)
    ctl.shutdown(clean=True)


# -- dialog ---------------------------------------------------------------------------------------
def test_dialog_restore_end_to_end(qtbot, data_dir):
    from app.widgets import recovery_dialog

    _dead_session(data_dir, seed=3)
    doc = Document()
    ctl = RecoveryController(doc)
    seen = {}

    def click_restore():
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, recovery_dialog.RecoveryDialog) and w.isVisible()]
        seen["text"] = dialogs[0].list.item(0).text()
        seen["preview"] = dialogs[0].preview.pixmap().isNull()
        dialogs[0].restore_button.click()

    QTimer.singleShot(100, click_restore)
    assert recovery_dialog.offer_recovery(None, ctl) is True
    assert "32×24, 1 generation" in seen["text"] and seen["preview"] is False
    assert np.array_equal(doc.pixels, make_state(seed=3).current)
    ctl.shutdown(clean=True)


def test_dialog_discard_asks_first_and_later_keeps(qtbot, data_dir, monkeypatch):
    from app.widgets import recovery_dialog

    _dead_session(data_dir)
    ctl = RecoveryController(Document())
    (rec,) = ctl.offer_recovery()
    dialog = recovery_dialog.RecoveryDialog([rec])
    qtbot.addWidget(dialog)
    monkeypatch.setattr(recovery_dialog.QMessageBox, "question", lambda *a: recovery_dialog.QMessageBox.StandardButton.No)
    dialog.discard_button.click()
    assert dialog.choice == recovery_dialog.LATER and rec.path.exists()  # not confirmed: nothing done
    dialog.later_button.click()
    assert dialog.choice == recovery_dialog.LATER and rec.path.exists()
    monkeypatch.setattr(recovery_dialog.QMessageBox, "question", lambda *a: recovery_dialog.QMessageBox.StandardButton.Yes)
    QTimer.singleShot(
        100,
        lambda: [w.discard_button.click() for w in QApplication.topLevelWidgets() if isinstance(w, recovery_dialog.RecoveryDialog) and w.isVisible()],
    )
    assert recovery_dialog.offer_recovery(None, ctl) is False
    assert not rec.path.exists() and ctl.offer_recovery() == []
    ctl.shutdown(clean=True)


# -- the main window hook -----------------------------------------------------------------------------
def test_install_on_the_real_main_window(qtbot, data_dir, tmp_path):
    """`install(window)`: File-menu project actions, project save/open, autosave of applied
    results, clean exit on shutdown, and a damaged project that leaves the document alone."""
    from app.editor.settings import Settings
    from app.widgets.main_window import MainWindow
    from app.widgets.recovery_dialog import install

    window = MainWindow(Settings(tmp_path / "settings.ini"), discover=lambda: [])
    qtbot.addWidget(window)
    ctl = window.recovery or install(window, offer=False)
    assert {"Open &Project…", "Save Pro&ject", "Save Project &As…"} <= {a.text() for a in window.file_menu.actions()}
    rng = np.random.default_rng(1)
    window.files.open_image_array(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    window.document.fill_rect((5, 5, 10, 10))
    window.set_params(GenerationParams(prompt="a bench", steps=9, seed=77))
    result = window.document.pixels.copy()
    result[5:15, 5:15] = 3
    with qtbot.waitSignal(ctl.saved, timeout=10000) as saved:
        window.document.apply_result(result)
    assert load_project(saved.args[0]).params.steps == 9

    path = tmp_path / "session.inpaint"
    with qtbot.waitSignal(window.session.saver.saved, timeout=20000):
        assert window.files.save_project_to(path)
    assert not window.document.modified
    before = window.document.pixels.copy()
    bad = tmp_path / "bad.inpaint"
    bad.write_bytes(b"PK\x03\x04 not really")
    assert window.files.open_project(bad)  # the load starts; its failure arrives from the pool thread
    qtbot.waitUntil(lambda: not window.files.loading.running, timeout=10000)
    assert window.message_bar.title == "Cannot open the project" and "damaged" in window.message_bar.text
    assert np.array_equal(window.document.pixels, before)

    window.files.open_image_array(np.zeros((10, 10, 3), np.uint8))
    assert window.files.open_project(path)
    qtbot.waitUntil(lambda: not window.files.loading.running, timeout=10000)
    assert np.array_equal(window.document.pixels, result) and window.current_params().steps == 9
    assert window.document.mask[7, 7] == 255
    ctl.shutdown(clean=True)
    window.shutdown()
    assert list(data_dir.iterdir()) == []
