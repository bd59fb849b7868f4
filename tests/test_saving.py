"""Saves run off the GUI thread and keep "modified" honest (app/editor/saving.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.core import imageio
from app.core.params import GenerationParams
from app.editor.session import EditorSession
from app.storage.project import load_project


@pytest.fixture
def session(qtbot):
    s = EditorSession()
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    s.open_image(imageio.LoadedImage(pixels), None, "test")
    yield s
    s.shutdown()


def test_the_file_is_written_on_a_pool_thread(qtbot, session, tmp_path, monkeypatch):
    threads: list[threading.Thread] = []
    real = imageio.save_image
    monkeypatch.setattr(imageio, "save_image", lambda *a, **k: (threads.append(threading.current_thread()), real(*a, **k)))
    session.document.fill_rect((4, 4, 8, 8))
    with qtbot.waitSignal(session.saver.saved, timeout=20000) as saved:
        assert session.save_result(tmp_path / "out.png")
    assert saved.args == [str(tmp_path / "out.png")]
    assert threads and threads[0] is not threading.main_thread()
    assert np.array_equal(imageio.load_image(tmp_path / "out.png").pixels, session.document.pixels)
    assert not session.modified and session.save_path == str(tmp_path / "out.png")


def test_an_edit_made_while_saving_stays_unsaved_and_out_of_the_file(qtbot, session, tmp_path, monkeypatch):
    import app.editor.session as session_module

    gate = threading.Event()
    original_save = session_module.save_project

    def slow_save(path, state):
        assert gate.wait(10)  # hold the writer until the edit below has been made
        original_save(path, state)

    monkeypatch.setattr(session_module, "save_project", slow_save)
    session.document.fill_rect((0, 0, 10, 10))
    path = tmp_path / "work.inpaint"
    with qtbot.waitSignal(session.saver.saved, timeout=20000):
        assert session.save_project(path, GenerationParams(prompt="p"))
        session.document.fill_rect((30, 30, 5, 5))  # after the snapshot: not in this save
        gate.set()
    assert session.modified  # the file does not hold the last edit
    saved = load_project(path)
    assert saved.mask[5, 5] == 255 and saved.mask[32, 32] == 0 and saved.params.prompt == "p"


def test_one_save_at_a_time_and_shutdown_waits_for_it(qtbot, session, tmp_path, monkeypatch):
    gate = threading.Event()
    real = imageio.save_image

    def slow(*args, **kwargs):
        assert gate.wait(10)
        real(*args, **kwargs)

    monkeypatch.setattr(imageio, "save_image", slow)
    assert session.save_result(tmp_path / "a.png")
    assert not session.save_result(tmp_path / "b.png")  # refused, not queued behind the first
    assert session.saver.busy
    threading.Timer(0.2, gate.set).start()
    session.shutdown()  # quitting: the save under way lands first
    assert (tmp_path / "a.png").is_file() and not (tmp_path / "b.png").exists()


def test_a_failed_save_says_which_file_and_why(qtbot, session, tmp_path):
    target = tmp_path / "missing-folder" / "out.png"
    session.document.fill_rect((0, 0, 4, 4))
    with qtbot.waitSignal(session.saver.failed, timeout=20000) as failed:
        assert session.save_result(target)
    path, message = failed.args
    assert path == str(target) and "out.png" in message and "folder" in message
    assert session.modified and session.save_path is None  # nothing was recorded as saved


def test_the_saving_dialog_has_no_cancel_button(qtbot):
    from PySide6.QtWidgets import QPushButton

    from app.editor.background_task import BackgroundTask
    from app.widgets.task_progress import TaskProgressDialog

    save = BackgroundTask(lambda _p: None, "Saving x.png", title="Saving", cancellable=False)
    load = BackgroundTask(lambda _p: None, "Opening x.png")
    saving, opening = TaskProgressDialog(save), TaskProgressDialog(load)
    assert saving.windowTitle() == "Saving" and not saving.findChildren(QPushButton)
    assert [b.text() for b in opening.findChildren(QPushButton)] == ["Cancel"]
    saving.close(), opening.close()
    gate = threading.Event()
    save = BackgroundTask(lambda progress: (gate.wait(5), progress(1, 1), "written")[2], "Saving y.png",
                          title="Saving", cancellable=False)
    with qtbot.waitSignal(save.finished, timeout=10000) as done:
        save.start()
        save.cancel()  # Escape on the dialog: a save runs on, its atomic write lands whole
        gate.set()
    assert done.args == ["written"]


def test_opening_another_image_during_a_save_neither_marks_nor_renames_it(qtbot, session, tmp_path):
    big = np.random.default_rng(1).integers(0, 256, (1500, 1600, 3), dtype=np.uint8)  # a 2.4 MB mask: copied in slices
    session.open_image(imageio.LoadedImage(big), None, "big")
    session.document.fill_rect((0, 0, 100, 100))
    with qtbot.waitSignal(session.saver.saved, timeout=20000):
        assert session.save_result(tmp_path / "big.png")
        assert session.saver.busy and session.saver.task is None  # still copying: the write has not started
        session.open_image(imageio.LoadedImage(np.zeros((10, 10, 3), np.uint8)), None, "other")
        session.document.fill_rect((0, 0, 5, 5))
    assert np.array_equal(imageio.load_image(tmp_path / "big.png").pixels, big)  # the document that was asked for
    assert session.modified and session.save_path is None  # the new document is neither saved nor renamed


def test_a_save_can_follow_as_soon_as_the_last_one_reported(qtbot, session, tmp_path):
    again: list[bool] = []
    session.saver.saved.connect(lambda _p: again.append(session.save_result(tmp_path / "second.png")) if not again else None)
    with qtbot.waitSignals([session.saver.saved, session.saver.saved], timeout=20000):
        assert session.save_result(tmp_path / "first.png")
    assert again == [True]  # not refused as "a save is under way"
    qtbot.waitUntil(lambda: (tmp_path / "second.png").is_file() and not session.saver.busy, timeout=20000)
