"""Issue 12, editor items, in the real window offscreen: restored work stays unsaved, the first
autosave comes within seconds, quitting during a run, opening over unsaved work, Ctrl+S on a
project, projects loading off the GUI thread, and an unwritable recovery folder reported once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMessageBox

from app.editor import worker as worker_module
from app.editor.background_task import BackgroundTask, project_load
from app.storage.project import load_project, save_project
from app.widgets.recovery_dialog import install
from reliability_fixtures import make_state
from test_main_window import ROOT, SlowBackend, make_window, paint_stroke, photo, settings  # noqa: F401

Buttons = QMessageBox.StandardButton


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "recovery"


def _dead_session(folder, seed: int = 5) -> None:
    """Another process autosaves and dies without a clean exit (its lock is released by the OS)."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from reliability_fixtures import make_state
        from app.storage.autosave import Autosaver
        Autosaver({str(folder)!r}).save(make_state(seed={seed}))
        os._exit(0)
        """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def _answer(qtbot, box_getter, button) -> None:
    """Click ``button`` of the question the window opened (non-modal, so the test goes on)."""
    qtbot.waitUntil(lambda: box_getter() is not None and box_getter().isVisible(), timeout=5000)
    box = box_getter()
    box.button(button).click()


def _wait_loaded(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.files.loading.running, timeout=20000)


# -- 1: restored work is unsaved until saved ---------------------------------------------------------
def test_restored_work_is_unsaved_and_quit_asks_and_keeps_the_recovery(qtbot, settings, data_dir, tmp_path):
    _dead_session(data_dir, seed=3)
    window = make_window(qtbot, settings)
    ctl = install(window, offer=False)
    (rec,) = ctl.offer_recovery()
    with qtbot.waitSignal(ctl.saved, timeout=10000):
        ctl.restore(rec, load_project(rec.path))
    assert window.document.modified and window.isWindowModified()  # title shows [*]

    window.close()  # Ctrl+Q
    _answer(qtbot, lambda: window.files.question, Buttons.Cancel)
    assert window.isVisible()
    recovered = list(data_dir.glob("session-*.inpaint"))
    assert recovered == [ctl.autosaver.path]  # the work is on disk in this session's slot
    ctl._on_quit()  # what a quit without saving (aboutToQuit) does: the recovery file stays
    assert ctl.autosaver.path.exists()

    # a session that saved its work deletes the recovery on a normal quit
    window2 = make_window(qtbot, settings)
    ctl2 = window2.session.install_recovery(window2.current_params)
    assert [r.path for r in ctl2.offer_recovery()] == recovered
    ctl2.restore(ctl2.offer_recovery()[0])
    ctl2.autosaver.flush()
    with qtbot.waitSignal(window2.session.saver.saved, timeout=20000):
        assert window2.files.save_project_to(tmp_path / "saved.inpaint")
    assert not window2.document.modified
    ctl2._on_quit()
    assert list(data_dir.glob("session-*.inpaint")) == []
    window.force_close()
    window2.force_close()


def test_discard_at_quit_deletes_the_recovery(qtbot, settings, data_dir, photo):
    window = make_window(qtbot, settings)
    ctl = install(window, offer=False)
    window.files.open_path(photo)
    window.document.fill_rect((10, 10, 20, 20))
    assert ctl.autosave_now(wait=True) and ctl.autosaver.path.exists()
    window.close()
    _answer(qtbot, lambda: window.files.question, Buttons.Discard)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    ctl._on_quit()
    assert list(data_dir.glob("session-*")) == []


# -- 2: the first autosave within seconds ------------------------------------------------------------
def test_first_change_is_autosaved_within_three_seconds_then_on_the_interval(qtbot, settings, data_dir, photo):
    window = make_window(qtbot, settings)
    ctl = install(window, offer=False)  # the default 120 s interval
    window.files.open_path(photo)
    t0 = time.monotonic()
    with qtbot.waitSignal(ctl.saved, timeout=5000):
        paint_stroke(qtbot, window.canvas, [(50, 50), (80, 60), (120, 90)])
    assert 1.5 <= time.monotonic() - t0 < 4.0
    assert load_project(ctl.autosaver.path).mask[60, 80] == 255
    with qtbot.assertNotEmitted(ctl.saved, wait=3500):  # later strokes wait for the interval
        paint_stroke(qtbot, window.canvas, [(200, 200), (220, 210)])
    assert ctl.dirty
    window.files.open_path(photo)  # asks: the work is unsaved
    _answer(qtbot, lambda: window.files.question, Buttons.Discard)
    with qtbot.waitSignal(ctl.saved, timeout=5000):  # a newly opened image gets a quick first save again
        paint_stroke(qtbot, window.canvas, [(300, 300), (310, 310)])
    window.force_close()


# -- 3: Ctrl+Q during a slow run ---------------------------------------------------------------------
@pytest.mark.parametrize("unsaved", [False, True])
def test_quit_during_a_slow_step_asks_cancels_waits_and_closes(qtbot, settings, photo, unsaved):
    window = make_window(qtbot, settings, lambda model, options: SlowBackend(steps=400, delay=0.05))
    window.files.open_path(photo)
    window.document.fill_rect((100, 100, 50, 50))
    if not unsaved:
        window.document.mark_saved()
    with qtbot.waitSignal(window.session.progress, timeout=10000):
        assert window.generation.generate()
    thread = window.session.worker._thread
    window.close()
    if unsaved:
        _answer(qtbot, lambda: window.files.question, Buttons.Cancel)
        assert window.isVisible() and window.generating  # Cancel: nothing stopped
        window.close()
        _answer(qtbot, lambda: window.files.question, Buttons.Discard)
    else:
        _answer(qtbot, lambda: window.close_guard.stop_question, Buttons.Cancel)
        assert window.isVisible() and window.generating
        window.close()
        _answer(qtbot, lambda: window.close_guard.stop_question, Buttons.Yes)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    t0 = time.monotonic()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    timer.stop()
    assert time.monotonic() - t0 < 2.0  # one 50 ms step, not a 10 s wait
    assert thread.isFinished() and not worker_module._ORPHANS  # no "QThread destroyed while running"
    gaps = np.diff(ticks) if len(ticks) > 1 else np.array([0.0])
    assert gaps.max() < 0.5  # the GUI never blocked meanwhile


# -- 4: opening over unsaved work asks ---------------------------------------------------------------
def test_opening_over_unsaved_work_asks_save_discard_cancel(qtbot, settings, photo, tmp_path):
    window = make_window(qtbot, settings)
    window.files.open_path(photo)
    window.document.fill_rect((10, 10, 30, 30))
    undo_count = window.document.undo_stack.count()
    other = tmp_path / "other.png"
    from app.core import imageio

    imageio.save_image(other, np.full((40, 50, 3), 9, np.uint8))
    assert not window.files.open_path(other)  # asked first
    _answer(qtbot, lambda: window.files.question, Buttons.Cancel)
    assert window.document.undo_stack.count() == undo_count and window.document.width == 512

    assert not window.files.open_image_array(np.zeros((8, 8, 3), np.uint8))  # paste asks too
    _answer(qtbot, lambda: window.files.question, Buttons.Discard)
    assert window.document.width == 8

    window.document.apply_result(np.full((8, 8, 3), 7, np.uint8))  # pixels only: the result image holds it
    window.session.save_path = str(tmp_path / "result.png")  # Save writes there without a dialog
    assert not window.files.open_path(other)
    with qtbot.waitSignal(window.session.saver.saved, timeout=20000):
        _answer(qtbot, lambda: window.files.question, Buttons.Save)
    qtbot.waitUntil(lambda: window.document.width == 50, timeout=10000)  # opened once the file was on disk
    assert imageio.load_image(tmp_path / "result.png").pixels.shape[:2] == (8, 8)
    assert window.document.width == 50 and not window.document.modified
    window.force_close()


# -- 7: Ctrl+S on an opened project ------------------------------------------------------------------
def test_ctrl_s_on_an_opened_project_saves_the_project(qtbot, settings, tmp_path):
    project = tmp_path / "portrait.inpaint"
    save_project(project, make_state(seed=2))
    window = make_window(qtbot, settings)
    assert window.files.open_path(project)
    _wait_loaded(qtbot, window)
    assert "portrait.inpaint" in window.windowTitle() and "portrait.inpaint" in window.status.message.text()
    window.document.fill_rect((20, 15, 4, 4))
    assert window.isWindowModified()
    with qtbot.waitSignal(window.session.saver.saved, timeout=20000):
        window.menu_actions.save.trigger()
    assert QKeySequence(QKeySequence.StandardKey.Save) in window.menu_actions.save.shortcuts()
    assert not window.document.modified and "portrait.inpaint" in window.windowTitle()
    assert load_project(project).mask[16, 21] == 255
    assert sorted(p.name for p in tmp_path.glob("*.png")) == []  # no "…-inpainted.png"
    window.force_close()


# -- 10: projects load off the GUI thread with progress and Cancel --------------------------------------
def test_project_load_reports_progress_keeps_the_gui_responsive_and_cancels(qtbot, tmp_path):
    project = tmp_path / "many.inpaint"
    save_project(project, make_state(400, 600, generations=30, seed=4))
    load = project_load(project)
    seen, ticks = [], []
    load.progress.connect(lambda done, total: seen.append((done, total)))
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    with qtbot.waitSignal(load.finished, timeout=30000) as done:
        load.start()
    timer.stop()
    prepared, levels = done.args[0]
    assert len(prepared.loaded.generations) == 30 and levels is None  # no view asked for
    assert not prepared.original.flags.writeable and prepared.pixels is prepared.loaded.current  # adopted, not copied
    assert seen[-1] == (63, 63) and len(seen) == 63  # current, original, mask, 2 × 30 candidates
    assert ticks  # the event loop ran while it loaded

    slow = BackgroundTask(lambda progress: [progress(i, 1000) or time.sleep(0.01) for i in range(1000)], "Opening slow")
    with qtbot.waitSignal(slow.cancelled, timeout=5000):
        slow.start()
        qtbot.waitUntil(lambda: slow.running, timeout=1000)
        qtbot.wait(50)
        slow.cancel()
    assert slow.wait(5)
    qtbot.waitUntil(lambda: not slow.running, timeout=2000)


def test_cancelled_or_failed_project_open_leaves_the_document(qtbot, settings, photo, tmp_path):
    project = tmp_path / "big.inpaint"
    save_project(project, make_state(600, 800, generations=40, seed=5))
    window = make_window(qtbot, settings)
    window.files.open_path(photo)
    before = window.document.pixels.copy()
    assert window.files.open_path(project)
    window.files.loading.cancel()
    _wait_loaded(qtbot, window)
    assert np.array_equal(window.document.pixels, before) and "cancelled" in window.status.message.text()
    (tmp_path / "bad.inpaint").write_bytes(b"PK\x03\x04 broken")
    window.files.open_path(tmp_path / "bad.inpaint")
    _wait_loaded(qtbot, window)
    assert window.message_bar.level == "error" and np.array_equal(window.document.pixels, before)
    window.force_close()


# -- 12: an unwritable recovery folder is one message in the bar ---------------------------------------
def test_unwritable_recovery_folder_is_one_message_in_the_bar(qtbot, settings, data_dir, photo):
    data_dir.parent.mkdir(parents=True)
    data_dir.write_text("a file where the folder should be")  # fails for root too, unlike chmod
    window = make_window(qtbot, settings)
    ctl = install(window, offer=False)
    shown = []
    window.message_bar.show_message = lambda *a, **k: shown.append(a)  # count what reaches the bar
    window.files.open_path(photo)
    for k in range(3):
        window.document.fill_rect((10 * k, 10, 5, 5))
        ctl.autosave_now(wait=True)
        qtbot.wait(50)
    assert len(shown) == 1, shown
    level, title, text = shown[0][:3]
    assert (level, title) == ("warning", "Autosave failed") and "Errno" not in text and "INPAINT_STUDIO_DATA" in text
    window.force_close()


# -- big images open off the GUI thread (issue 21) ---------------------------------------------------
def test_a_big_image_decodes_on_a_pool_thread_and_a_bad_one_keeps_the_open_work(qtbot, settings, tmp_path):
    from app.core import imageio
    from app.widgets import file_actions

    small = tmp_path / "small.png"
    imageio.save_image(small, np.full((40, 60, 3), 7, np.uint8))
    big = tmp_path / "big.jpg"
    imageio.save_image(big, np.random.default_rng(0).integers(0, 256, (2000, 2100, 3), dtype=np.uint8), quality=80)
    assert imageio.header_pixels(big) == 4_200_000 >= file_actions.BACKGROUND_OPEN_PIXELS
    window = make_window(qtbot, settings)
    assert window.files.open_path(str(small)) and window.document.size == (60, 40)  # small: at once
    assert window.files.open_path(str(big))
    assert window.files.loading is not None and window.document.size == (60, 40)  # still the old image
    _wait_loaded(qtbot, window)
    qtbot.waitUntil(lambda: window.document.size == (2100, 2000), timeout=20000)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(big.read_bytes()[:4000])  # the header claims 4.2 MP; the data ends early
    assert window.files.open_path(str(broken))
    _wait_loaded(qtbot, window)
    qtbot.waitUntil(lambda: window.message_bar.level == "error", timeout=20000)
    assert "broken.jpg" in window.message_bar.text and window.document.size == (2100, 2000)
