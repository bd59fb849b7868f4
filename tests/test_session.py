"""The editor session without a window, the document's context box, and the canvas tool table.

The session is QtCore only: these tests drive a whole edit (open, generate, review, apply, save,
project round trip, autosave) with no widget, as another front end would.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from doubles import SeedBackend
from app.core import imageio
from app.core.geometry import Bounds
from app.core.params import GenerationParams
from app.editor.session import EditorSession
from app.editor.worker import GenerationWorker
from app.storage.project import ProjectError, load_project, save_project


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """Recovery files go under tmp_path, never the user's data folder."""
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "recovery"


@pytest.fixture
def session(qtbot):
    s = EditorSession(GenerationWorker(lambda *a: SeedBackend()))
    yield s
    s.shutdown()


def opened(session: EditorSession, shape=(48, 64, 3)) -> np.ndarray:
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    session.open_image(imageio.LoadedImage(pixels), None, "test")
    return pixels


def test_candidate_k_is_saved_as_seed_s_plus_k_batch_1(qtbot, session, tmp_path):
    opened(session)
    session.document.fill_rect((8, 8, 16, 16))
    params = GenerationParams(prompt="a wall", seed=40, batch_size=3)
    with qtbot.waitSignal(session.generation_finished, timeout=20000) as done:
        assert session.generate(params) is None
    record = done.args[0]
    assert record.seeds == [40, 41, 42] and record.params.batch_size == 3
    assert session.candidates is record and record in session.document.generations
    assert session.apply_candidate(2) is True and record.applied == 2 and session.candidates is None
    assert session.document.pixels[10, 10].tolist() == [42, 42, 42]
    path = tmp_path / "result.png"
    with qtbot.waitSignal(session.saver.saved, timeout=20000):
        assert session.save_result(path)
    saved = imageio.load_image(path).params
    assert (saved.seed, saved.batch_size, saved.prompt) == (42, 1, "a wall")
    assert session.save_path == str(path) and not session.modified


def test_session_refuses_what_cannot_run(session):
    assert session.generate(GenerationParams(prompt="x")).title == "No image"
    opened(session)
    assert session.generate(GenerationParams(prompt="x")).title == "Nothing to repaint"
    session.document.fill_rect((0, 0, 4, 4))
    assert session.generate(GenerationParams(prompt="x", steps=0)).title == "Invalid parameter"
    assert not session.generating and not session.document.generations


def test_context_box_is_undoable_and_clamped(qtbot):
    from app.editor.document import Document

    doc = Document()
    doc.set_image(np.zeros((40, 50, 3), np.uint8))
    with qtbot.waitSignal(doc.context_box_changed) as changed:
        assert doc.set_context_box(Bounds(-5, 10, 30, 100))
    assert changed.args == [Bounds(0, 10, 25, 30)] == [doc.context_box]
    assert not doc.set_context_box(Bounds(0, 10, 25, 30))  # unchanged: no undo step
    assert doc.set_context_box(Bounds(60, 60, 5, 5)) and doc.context_box is None  # outside: cleared
    assert doc.undo_stack.count() == 2 and doc.modified
    doc.undo_stack.undo()
    assert doc.context_box == Bounds(0, 10, 25, 30)
    doc.undo_stack.undo()
    assert doc.context_box is None and not doc.modified
    doc.undo_stack.redo()
    assert doc.context_box == Bounds(0, 10, 25, 30)
    doc.set_image(np.zeros((10, 10, 3), np.uint8))
    assert doc.context_box is None


def test_context_box_survives_projects_and_autosave(qtbot, session, tmp_path, data_dir):
    opened(session)
    session.document.fill_rect((4, 4, 8, 8))
    session.document.set_context_box(Bounds(2, 3, 30, 20))
    ctl = session.install_recovery(lambda: GenerationParams(prompt="kept"))
    assert session.install_recovery(lambda: GenerationParams()) is ctl  # once per session
    with qtbot.waitSignal(ctl.saved, timeout=10000) as saved:
        ctl.autosave_now()
    assert load_project(saved.args[0]).context_box == Bounds(2, 3, 30, 20)

    path = tmp_path / "work.inpaint"
    with qtbot.waitSignal(session.saver.saved, timeout=20000):
        assert session.save_project(path, GenerationParams(prompt="kept"))
    assert session.project_path == str(path) and not session.modified
    opened(session)
    assert session.document.context_box is None and session.project_path is None
    state = session.open_project(path)
    assert state.params.prompt == "kept" and session.display_name == "work.inpaint"
    assert session.document.context_box == Bounds(2, 3, 30, 20) and session.document.mask[5, 5] == 255
    session.document.undo_stack.undo()  # opening is not an undo step
    assert session.document.context_box == Bounds(2, 3, 30, 20)
    ctl.shutdown(clean=True)


def _rewrite_manifest(src, dst, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "manifest.json":
                manifest = json.loads(data)
                edit(manifest)
                data = json.dumps(manifest).encode()
            zout.writestr(item, data)


def test_older_projects_load_without_a_box_and_damaged_boxes_are_refused(tmp_path):
    from app.storage.project import ProjectState

    pixels = np.zeros((20, 30, 3), np.uint8)
    path = tmp_path / "boxed.inpaint"
    save_project(path, ProjectState(pixels, pixels, np.zeros((20, 30), np.uint8), context_box=Bounds(1, 2, 10, 5)))
    assert load_project(path).context_box == Bounds(1, 2, 10, 5)
    old = tmp_path / "old.inpaint"
    _rewrite_manifest(path, old, lambda m: m.pop("context_box"))
    assert load_project(old).context_box is None
    for bad in ([1, 2, 3], [0, 0, 31, 5], "box", [0, 0, 0, 5]):
        damaged = tmp_path / "bad.inpaint"
        _rewrite_manifest(path, damaged, lambda m, b=bad: m.__setitem__("context_box", b))
        with pytest.raises(ProjectError, match="context box"):
            load_project(damaged)


def test_opening_an_image_mid_run_never_lets_the_old_result_in(qtbot, session):
    """A new image cancels the run; a result that still arrives is dropped, not recorded."""
    opened(session)
    session.document.fill_rect((0, 0, 8, 8))
    ended = []
    session.generation_cancelled.connect(lambda: ended.append("cancelled"))
    session.generation_dropped.connect(lambda: ended.append("dropped"))
    session.generation_finished.connect(lambda r: ended.append("finished"))
    assert session.generate(GenerationParams(prompt="x", seed=1)) is None
    opened(session, (20, 20, 3))
    qtbot.waitUntil(lambda: bool(ended), timeout=20000)
    assert ended[0] in ("cancelled", "dropped") and not session.generating
    assert not session.document.generations and session.candidates is None


def test_tools_come_from_one_table(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    from app.editor.settings import Settings
    from app.widgets.main_window import MainWindow

    window = MainWindow(Settings(tmp_path / "s.ini"), discover=lambda: [])
    qtbot.addWidget(window)
    canvas = window.canvas
    assert list(window.menu_actions.tools) == list(canvas.tools) == ["brush", "eraser", "rect", "lasso", "context", "wand", "grabcut", "sam"]
    for name, tool in canvas.tools.items():
        assert window.menu_actions.tools[name].text() == tool.label and f"({tool.key})" in window.menu_actions.tools[name].toolTip()
        canvas.set_tool("brush" if name != "brush" else "eraser")
        qtbot.keyClick(canvas, getattr(Qt.Key, f"Key_{tool.key}"))
        assert canvas.tool == name and window.menu_actions.tools[name].isChecked()
    with pytest.raises(ValueError, match="unknown tool"):
        canvas.set_tool("smudge")
    window.force_close()


def test_generate_hands_the_worker_a_snapshot_not_a_copy_made_at_the_click(qtbot, session):
    """Unchanged pixels are the read-only original, shared; a big mask is copied a slice per
    event-loop turn, so a cancel before the copy completes stops the run before it starts."""
    big = np.random.default_rng(2).integers(0, 256, (1500, 1600, 3), dtype=np.uint8)  # 2.4 MB mask: sliced
    session.open_image(imageio.LoadedImage(big), None, "big")
    session.document.fill_rect((100, 100, 50, 50))
    submitted: list = []
    real_submit = session.worker.submit
    session.worker.submit = lambda request: (submitted.append(request), real_submit(request))[1]
    with qtbot.waitSignal(session.generation_cancelled, timeout=10000):
        assert session.generate(GenerationParams(model="builtin:telea")) is None
        assert session.generating and not submitted  # still copying the mask
        session.cancel()
    assert not submitted and not session.generating

    with qtbot.waitSignal(session.generation_finished, timeout=20000):
        assert session.generate(GenerationParams(model="builtin:telea")) is None
        session.document.fill_rect((300, 300, 10, 10))  # painted while the mask is copied: part of this run
    (request,) = submitted
    assert request.image is session.document.original  # shared, read-only: no 7 MB copy at the click
    assert request.mask[305, 305] == 255 and request.mask is not session.document.mask
