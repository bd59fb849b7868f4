"""The real main window driven offscreen: open, paint, generate, apply, undo, cancel, errors.

Every test uses its own INI settings file (never the user's) and a fake model discovery, so the
suite neither reads nor writes anything outside tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QApplication

from app.core import imageio, maskops, metadata
from app.inference.engine import Cancelled
from app.core.params import GenerationParams
from app.editor.settings import Settings
from app.editor.qimage import qimage_to_array
from app.widgets.main_window import MainWindow
from app.editor.worker import GenerationWorker
from app.inference.registry import load_backend
from app.widgets import window_dialogs
from app.editor.snapshot import project_state

ROOT = Path(__file__).resolve().parent.parent


class SlowBackend:
    """Native-resolution backend that takes ``steps × delay`` seconds and returns the input with the
    masked pixels inverted: slow enough to cancel, cheap enough to measure event-loop stalls."""

    name = "test:slow"
    native_resolution = True

    def __init__(self, steps: int = 200, delay: float = 0.01) -> None:
        self.steps, self.delay = steps, delay

    def generate(self, request, progress, cancelled):
        for i in range(self.steps):
            if cancelled():
                raise Cancelled()
            time.sleep(self.delay)
            progress(i + 1, self.steps, request.image if i % 10 == 0 else None)
        out = request.image.copy()
        out[request.mask > 0] = 255 - out[request.mask > 0]
        return [out for _ in request.seeds]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "astronaut.png"
    imageio.save_image(path, skimage.data.astronaut())
    return path


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(tmp_path / "settings" / "inpaint-studio.ini")


def make_window(qtbot, settings, factory=None) -> MainWindow:
    window = MainWindow(settings, worker=GenerationWorker(factory) if factory else None, discover=lambda: [])
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.fixture
def window(qtbot, settings):
    w = make_window(qtbot, settings)
    yield w
    w.force_close()


@pytest.fixture
def slow_window(qtbot, settings):
    w = make_window(qtbot, settings, lambda model, options: SlowBackend())
    yield w
    w.force_close()


def widget_point(canvas, x: float, y: float) -> QPoint:
    p = canvas.map_from_image(QPointF(x, y))
    return QPoint(round(p.x()), round(p.y()))


def paint_stroke(qtbot, canvas, points) -> None:
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_point(canvas, *points[0]))
    for p in points[1:]:
        qtbot.mouseMove(canvas, widget_point(canvas, *p))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_point(canvas, *points[-1]))


def generate_and_wait(qtbot, window, params=None, timeout=20000):
    with qtbot.waitSignal(window.generation_finished, timeout=timeout) as blocker:
        assert window.generation.generate(params)
    return blocker.args[0]


# ------------------------------------------------------------------------------------------------
def test_open_paint_generate_apply_undo_redo(qtbot, window, photo):
    original = skimage.data.astronaut()
    assert window.files.open_path(str(photo))
    doc = window.document
    assert doc.size == (512, 512) and np.array_equal(doc.pixels, original)
    assert "512 × 512" in window.status.size.text()
    assert photo.name in window.windowTitle()

    window.canvas.set_tool("brush")
    window.canvas.set_brush_size(24)
    window.canvas.set_hardness(1.0)
    paint_stroke(qtbot, window.canvas, [(200, 300), (240, 300), (280, 310)])
    assert doc.mask[300, 240] == 255 and doc.mask[302, 210] == 255  # under the stroke
    assert doc.mask[100, 100] == 0 and doc.mask[300, 320] == 0  # far from it
    assert doc.undo_stack.count() == 1

    record = generate_and_wait(qtbot, window)
    assert record in doc.generations and record.backend == "builtin:telea"
    assert window.candidates_panel.count() == 1 and window.canvas.candidate_shown
    assert window.status.seed.text() == ""  # a classical method has no seed to show
    assert np.array_equal(doc.pixels, original), "a generation must not touch the document before Apply"

    assert window.generation.apply_candidate(0)
    changed = np.any(doc.pixels != original, axis=2)
    assert changed[300, 240]
    far = maskops.grow(doc.mask, 8) == 0  # beyond the feather (mask blur 4): bit-identical
    assert np.array_equal(doc.pixels[far], original[far])
    assert not window.canvas.candidate_shown and record.applied == 0

    window.menu_actions.undo.trigger()
    assert doc.pixels.tobytes() == original.tobytes()
    window.menu_actions.redo.trigger()
    assert np.array_equal(doc.pixels, record.candidates[0])
    window.menu_actions.undo.trigger()
    window.menu_actions.undo.trigger()  # the stroke too
    assert not doc.mask.any()


def test_tiny_diffusion_model_generates_with_progress(qtbot, window, photo, tiny_inpaint_model):
    window.files.open_path(str(photo))
    window.document.fill_rect((200, 200, 80, 60))
    window.model_picker.add_model_path(str(tiny_inpaint_model))
    assert window.model_picker.current_model() == str(tiny_inpaint_model)
    assert window.params_panel.steps.isEnabled()  # diffusion fields enabled
    params = window.current_params().replace(prompt="a red balloon", steps=2, guidance=1.0, width=256, height=256, seed=7)
    steps = []
    window.status.progress.valueChanged.connect(lambda v: steps.append((v, window.status.progress.maximum())))
    record = generate_and_wait(qtbot, window, params, timeout=120000)
    assert record.seeds == [7] and len(record.candidates) == 1 and record.params.model == str(tiny_inpaint_model)
    assert steps and steps[-1][0] == steps[-1][1]  # the bar reached "step M/M"
    assert window.candidates_panel.count() == 1 and window.canvas.candidate_shown
    before = window.document.pixels.copy()
    assert window.generation.apply_candidate(0)
    assert np.array_equal(window.document.pixels, record.candidates[0])
    changed = np.any(window.document.pixels != before, axis=-1)
    assert changed[200:260, 200:280].any() and not changed[:150].any()  # only around the mask


def test_cancel_mid_run_leaves_document_untouched(qtbot, slow_window, photo):
    w = slow_window
    w.files.open_path(str(photo))
    w.document.fill_rect((10, 10, 40, 40))
    before = w.document.pixels.copy()
    assert w.generation.generate()
    qtbot.waitUntil(lambda: "Step" in w.status.progress.format(), timeout=5000)
    assert w.generating and w.menu_actions.cancel.isEnabled() and w.status.progress.isVisible()
    with qtbot.waitSignal(w.generation_cancelled, timeout=3000):
        w.menu_actions.cancel.trigger()
    assert not w.generating and not w.status.progress.isVisible()
    assert np.array_equal(w.document.pixels, before) and not w.document.generations
    assert "cancelled" in w.status.message.text().lower()
    w.session.worker.set_service(lambda *a: SlowBackend(steps=5, delay=0.001))
    record = generate_and_wait(qtbot, w, w.current_params().replace(batch_size=3, seed=10))  # usable after a cancel
    assert record.backend == "test:slow" and record.seeds == [10, 11, 12]
    assert w.candidates_panel.count() == 3
    for i in range(3):
        w.candidates_panel.select(i)
        assert w.canvas.candidate_shown and w.status.seed.text() == f"Seed {10 + i}"


def test_event_loop_stays_responsive_during_generation(qtbot, slow_window, photo):
    """A 5 ms timer keeps ticking while the worker runs: the longest gap is the worst freeze."""
    w = slow_window
    w.files.open_path(str(photo))
    w.document.fill_rect((100, 100, 300, 300))
    gaps, last = [], [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    try:
        generate_and_wait(qtbot, w)
    finally:
        timer.stop()
    assert len(gaps) > 50
    assert max(gaps) < 0.25, f"event loop stalled {max(gaps) * 1000:.0f} ms"


def test_empty_mask_and_broken_model_are_reported_and_document_untouched(qtbot, window, photo, tmp_path, tiny_inpaint_model):
    window.files.open_path(str(photo))
    before = window.document.pixels.copy()
    assert not window.generation.generate()
    assert window.message_bar.isVisible() and "mask is empty" in window.message_bar.text
    config_only = tmp_path / "configs-only"
    config_only.mkdir()
    (config_only / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    assert not window.model_picker.add_model_path(str(config_only))  # told when added: unet/config.json is missing
    assert "config.json" in window.model_picker.detail.text()
    broken = shutil.copytree(tiny_inpaint_model, tmp_path / "broken-model")
    for weights in (broken / "unet").glob("*.safetensors"):  # whole as far as a header look can tell: the load finds out
        weights.unlink()
    (broken / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not a torch file")
    window.document.fill_rect((20, 20, 30, 30))
    assert window.model_picker.add_model_path(str(broken))
    params = window.current_params().replace(prompt="a cat", steps=2)
    with qtbot.waitSignal(window.generation_failed, timeout=60000) as blocker:
        assert window.generation.generate(params)
    title, message = blocker.args
    assert title == "Cannot load the model" and "broken-model" in message
    assert window.message_bar.level == "error" and "Cannot load the model" in window.message_bar.text
    assert np.array_equal(window.document.pixels, before) and not window.document.generations
    assert not window.generating and not window.menu_actions.cancel.isEnabled()


def test_out_of_memory_offers_low_memory_mode(qtbot, settings, photo):
    from app.inference.errors import GpuOutOfMemory

    class OomBackend(SlowBackend):
        def generate(self, request, progress, cancelled):
            raise GpuOutOfMemory("cuda", low_memory_active=False)

    w = make_window(qtbot, settings, lambda *a: OomBackend())
    try:
        w.files.open_path(str(photo))
        w.document.fill_rect((20, 20, 30, 30))
        with qtbot.waitSignal(w.generation_failed, timeout=5000):
            w.generation.generate()
        assert w.message_bar.title == "Out of memory"
        button = w.message_bar.button("Use low-memory mode and retry")
        assert button is not None
        button.click()
        assert w.model_picker.low_memory and settings.low_memory()
    finally:
        w.force_close()


def test_bad_image_file_keeps_the_open_document(window, photo, tmp_path):
    window.files.open_path(str(photo))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    assert not window.files.open_path(str(bad))
    assert window.message_bar.level == "error" and "broken.png" in window.message_bar.text
    assert window.document.path == str(photo) and window.document.size == (512, 512)


def test_png_with_parameters_offers_recall(qtbot, window, tmp_path):
    params = GenerationParams(prompt="a lighthouse at dusk", negative_prompt="blurry", scheduler="Euler a", steps=33,
                              guidance=6.0, seed=1234, mode="img2img", strength=0.6, model="stable-diffusion-v1-5")
    path = tmp_path / "with-params.png"
    imageio.save_image(path, skimage.data.chelsea(), params=params)
    assert window.files.open_path(str(path))
    button = window.message_bar.button("Recall parameters")
    assert button is not None and window.message_bar.isVisible()
    assert window.params_panel.params().prompt != params.prompt  # nothing changes until asked
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    got = window.current_params()
    assert (got.prompt, got.negative_prompt, got.scheduler, got.steps, got.guidance, got.seed, got.mode, got.strength) == (
        "a lighthouse at dusk", "blurry", "Euler a", 33, 6.0, 1234, "img2img", 0.6)
    assert not window.message_bar.isVisible()
    window.show_message("warning", "Next", "a message without actions")
    assert window.message_bar.buttons() == [] and not button.isVisible()


def test_recall_changes_only_what_the_file_holds_and_nothing_for_a_screenshot(qtbot, window, tmp_path):
    """A file holding only prompt and seed leaves the other fields as the user set them; a
    screenshot whose EXIF comment is "Screenshot" is not a prompt and offers nothing."""
    from PIL import Image

    window.set_params(window.current_params().replace(negative_prompt="my negative", steps=41))
    sparse = tmp_path / "sparse.png"
    info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
    info.add_text("parameters", "a red barn\nSteps: 12, Sampler: Euler a, Seed: 17123564234, CFG scale: 7, Size: 64x64")
    Image.fromarray(skimage.data.chelsea()[:64, :64]).save(sparse, pnginfo=info)
    assert window.files.open_path(str(sparse))
    qtbot.mouseClick(window.message_bar.button("Recall parameters"), Qt.MouseButton.LeftButton)
    got = window.current_params()
    assert (got.prompt, got.seed, got.steps, got.scheduler) == ("a red barn", 17123564234, 12, "Euler a")
    assert got.negative_prompt == "my negative"  # the file has none: the user's stays

    shot = tmp_path / "shot.jpg"
    exif = Image.Exif()
    exif[0x9286] = b"ASCII\x00\x00\x00Screenshot"
    Image.fromarray(skimage.data.chelsea()[:64, :64]).save(shot, exif=exif)
    window.message_bar.dismiss()
    assert window.files.open_path(str(shot))
    assert window.message_bar.button("Recall parameters") is None
    assert window.current_params().prompt == "a red barn"


def test_save_result_carries_applied_parameters(qtbot, window, photo, tmp_path):
    window.files.open_path(str(photo))
    window.document.fill_rect((50, 50, 40, 40))
    record = generate_and_wait(qtbot, window)
    window.generation.apply_candidate(0)
    assert window.document.modified
    out = tmp_path / "result.png"
    with qtbot.waitSignal(window.session.saver.saved, timeout=20000):
        assert window.files.save_result(out)  # started: written off the GUI thread
    assert not window.document.modified
    assert np.array_equal(imageio.load_image(out).pixels, window.document.pixels)
    assert metadata.read_params(out) == record.params
    assert window.menu_actions.save.isEnabled()
    readonly = tmp_path / "no-such-dir" / "x" / "result.bmp"
    with qtbot.waitSignal(window.session.saver.failed, timeout=20000):
        assert window.files.save_result(readonly)
    assert window.message_bar.level == "error" and "result.bmp" in window.message_bar.text


def test_history_recall_rerun_and_new_seed(qtbot, slow_window, photo):
    w = slow_window
    w.session.worker.set_service(lambda *a: SlowBackend(steps=3, delay=0.001))
    w.files.open_path(str(photo))
    w.document.fill_rect((50, 50, 40, 40))
    first = generate_and_wait(qtbot, w, w.current_params().replace(seed=42))
    assert w.history_panel.records() == [first]
    w.params_panel.seed.setValue(5)
    w.history_panel.recall_button.click()
    assert w.params_panel.seed.seed() == 42
    with qtbot.waitSignal(w.generation_finished, timeout=10000) as blocker:
        w.history_panel.rerun_button.click()
    second = blocker.args[0]
    assert second.params == first.params  # same seed: exactly the same run
    w.history_panel.select(first)
    with qtbot.waitSignal(w.generation_finished, timeout=10000) as blocker:
        w.history_panel.new_seed_button.click()
    third = blocker.args[0]
    assert third.params.replace(seed=0) == first.params.replace(seed=0) and third.params.seed not in (-1, 42)
    assert w.history_panel.records() == [third, second, first]
    assert not w.history_panel.list.item(0).icon().isNull()
    assert "seed" in w.history_panel.list.item(0).text() and "Prompt" in w.history_panel.list.item(0).toolTip()


def test_candidates_compare_and_discard(qtbot, window, photo):
    window.files.open_path(str(photo))
    window.document.fill_rect((50, 50, 40, 40))
    generate_and_wait(qtbot, window)
    assert window.canvas.candidate_shown
    qtbot.keyPress(window.canvas, Qt.Key.Key_Backslash)
    assert not window.canvas.candidate_shown  # "before"
    qtbot.keyRelease(window.canvas, Qt.Key.Key_Backslash)
    assert window.canvas.candidate_shown
    window.candidates_panel.compare_button.pressed.emit()
    assert not window.canvas.candidate_shown
    window.candidates_panel.compare_button.released.emit()
    assert window.canvas.candidate_shown
    before = window.document.pixels.copy()
    window.candidates_panel.discard_button.click()
    assert not window.canvas.candidate_shown and window.candidates_panel.count() == 0
    assert np.array_equal(window.document.pixels, before)


def test_drop_paste_copy_and_recent_files(qtbot, window, photo, settings):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo))])
    pos = QPointF(window.canvas.mapTo(window, QPoint(50, 50)))
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()
    assert window.document.path == str(photo)
    text_only = QMimeData()
    text_only.setText("just words")
    refused = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, text_only, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, refused)
    assert not refused.isAccepted()
    assert settings.recent_files() == [str(photo.resolve())]
    assert window.recent_menu.actions()[0].toolTip() == str(photo.resolve())

    assert window.files.copy_image()
    copied = qimage_to_array(QGuiApplication.clipboard().image())
    assert np.array_equal(copied[..., :3], skimage.data.astronaut())

    chelsea = np.ascontiguousarray(skimage.data.chelsea())
    image = QImage(chelsea.data, chelsea.shape[1], chelsea.shape[0], chelsea.strides[0], QImage.Format.Format_RGB888).copy()
    QGuiApplication.clipboard().setImage(image)
    assert window.menu_actions.paste.isEnabled()
    window.menu_actions.paste.trigger()
    assert window.document.size == (chelsea.shape[1], chelsea.shape[0])
    assert np.array_equal(window.document.pixels[..., :3], chelsea)
    assert window.document.path is None


def test_mask_menu_operations_and_export_import(qtbot, window, photo, tmp_path):
    window.files.open_path(str(photo))
    doc = window.document
    doc.fill_rect((100, 100, 50, 50))
    window.menu_actions.invert_mask.trigger()
    assert doc.mask[0, 0] == 255 and doc.mask[120, 120] == 0
    window.menu_actions.invert_mask.trigger()
    dialog = window.adjust_mask("grow")
    assert window.canvas.mask_overlay.preview_active
    dialog.amount.setValue(5)
    dialog.accept()
    assert not window.canvas.mask_overlay.preview_active
    assert doc.mask[97, 120] == 255 and doc.mask[90, 120] == 0
    out = tmp_path / "mask.png"
    with qtbot.waitSignal(window.session.saver.saved, timeout=20000):
        assert window.files.export_mask(out)
    window.menu_actions.clear_mask.trigger()
    assert not doc.mask.any()
    assert window.files.import_mask(out)
    assert doc.mask[97, 120] == 255
    wrong = tmp_path / "small-mask.png"
    imageio.save_image(wrong, np.zeros((10, 10), np.uint8))
    assert not window.files.import_mask(wrong)
    assert "mask" in window.message_bar.text.lower()


def test_settings_persist_params_and_preferences(qtbot, settings, tmp_path):
    w = make_window(qtbot, settings)
    params = w.current_params().replace(prompt="persist me", steps=40, mask_blur=9, width=512, height=384)
    w.set_params(params)
    w.mask_view.set_opacity(0.8)
    w.model_picker.set_device_choice("cpu")
    w.force_close()
    again = Settings(settings.path)
    assert again.last_params().prompt == "persist me" and again.device() == "cpu"
    w2 = make_window(qtbot, again)
    try:
        got = w2.current_params()
        assert (got.prompt, got.steps, got.mask_blur, got.width, got.height) == ("persist me", 40, 9, 512, 384)
        assert w2.canvas.mask_overlay.opacity == pytest.approx(0.8) and w2.model_picker.device_choice() == "cpu"
    finally:
        w2.force_close()
    assert str(tmp_path) in settings.path  # the test never touched the user's settings


def test_first_launch_without_models_says_how_to_add_one(qtbot, window):
    picker = window.model_picker
    picker.refresh()
    qtbot.waitUntil(lambda: not picker.discovering, timeout=5000)
    assert picker.hint.isVisible() and "Add model" in picker.hint.text()
    assert picker.current_model() == "builtin:telea" and window.params_panel.generate_button.text() == "Generate"


def test_about_dialog_lists_versions_without_importing_torch(window):
    dialog = window_dialogs.show_about(window)
    text = dialog.text()
    for name in ("Python", "torch", "diffusers", "PySide6", "Qt", "Device", "Licence"):
        assert name in text
    dialog.close()


def test_window_starts_without_torch_in_a_fresh_process(tmp_path):
    code = (
        "import os, sys, time; t=time.perf_counter();"
        "from app.widgets.application import create_app; app=create_app();"
        "from app.editor.settings import Settings; from app.widgets.main_window import MainWindow;"
        f"w=MainWindow(Settings({str(tmp_path / 's.ini')!r}), discover=lambda: []); w.show(); app.processEvents();"
        "print(sorted(m for m in ('torch','diffusers','transformers') if m in sys.modules), round(time.perf_counter()-t, 2));"
        "w.force_close()"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded, seconds = out.stdout.split("]")[0] + "]", float(out.stdout.split("]")[1])
    assert loaded == "[]", f"heavy modules imported at start-up: {loaded}"
    assert seconds < 8.0


def test_default_loader_serves_classical_without_torch():
    backend = load_backend("builtin:ns")
    assert backend.name == "builtin:ns" and backend.native_resolution


def test_run_gui_opens_command_line_path_and_exits_cleanly(tmp_path, photo):
    """The real entry point in a fresh process: window up, the path opened, clean exit."""
    code = f"import sys; from app.widgets.application import run_gui; sys.exit(run_gui([{str(photo)!r}]))"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), INPAINT_STUDIO_SETTINGS=str(tmp_path / "s.ini"),
               INPAINT_STUDIO_QUIT_AFTER="1.5", XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Settings(tmp_path / "s.ini").recent_files() == [str(photo.resolve())]


def test_standard_shortcuts_reach_the_actions(qtbot, window, photo):
    window.files.open_path(str(photo))
    window.activateWindow()
    qtbot.waitActive(window)
    window.canvas.setFocus()
    window.document.fill_rect((10, 10, 20, 20))
    assert window.menu_actions.undo.shortcut() == QKeySequence(QKeySequence.StandardKey.Undo)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not window.document.mask.any()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.document.mask[15, 15] == 255
    zoom = window.canvas.zoom
    qtbot.keyClick(window.canvas, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.canvas.zoom == 1.0 != zoom and window.status.zoom.text() == "100 %"
    with qtbot.waitSignal(window.generation_finished, timeout=10000):
        qtbot.keyClick(window.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def test_settings_survive_a_damaged_file(tmp_path):
    s = Settings(tmp_path / "s.ini")
    s.qsettings.setValue("generation/last_params", '{"steps": 9999, "prompt": 3')
    s.qsettings.setValue("files/recent", "not json")
    s.qsettings.setValue("models/device", "quantum")
    assert s.last_params() == GenerationParams() and s.recent_files() == [] and s.device() == "auto"
    s.qsettings.setValue("generation/last_params", '{"steps": 9999}')  # valid JSON, out of range
    assert s.last_params() == GenerationParams()
    with pytest.raises(ValueError):
        s.set_device("quantum")


def test_open_path_opens_a_project_file(qtbot, window, photo, settings, tmp_path):
    """File ▸ Open, drag and drop and the command line all go through open_path: a .inpaint
    project opens there with its pixels, mask and parameters, and a damaged one changes nothing."""
    from app.storage.project import save_project

    window.files.open_path(str(photo))
    window.document.fill_rect((100, 120, 40, 30))
    params = GenerationParams(prompt="restore the sleeve", seed=42, steps=31)
    project = tmp_path / "session.inpaint"
    save_project(project, project_state(window.document, params))

    other = make_window(qtbot, settings)
    try:
        assert other.files.open_path(str(project))  # loads on a pool thread
        qtbot.waitUntil(lambda: not other.files.loading.running, timeout=10000)
        assert np.array_equal(other.document.pixels, window.document.pixels)
        assert np.array_equal(other.document.mask, window.document.mask)
        got = other.current_params()
        assert (got.prompt, got.seed, got.steps) == ("restore the sleeve", 42, 31)
        assert "session.inpaint" in other.windowTitle()

        damaged = tmp_path / "damaged.inpaint"
        damaged.write_bytes(project.read_bytes()[:200])
        assert other.files.open_path(str(damaged))
        qtbot.waitUntil(lambda: not other.files.loading.running, timeout=10000)
        assert other.message_bar.level == "error"
        assert np.array_equal(other.document.mask, window.document.mask)
    finally:
        other.force_close()


def test_first_start_fits_the_screen(qtbot, settings):
    """No saved layout: 1440×900 where the screen holds it, else the screen's free area (a
    1366×768 laptop saw the right-hand panels cut off)."""
    from PySide6.QtGui import QGuiApplication

    window = MainWindow(settings, discover=lambda: [])
    qtbot.addWidget(window)
    free = QGuiApplication.primaryScreen().availableGeometry()
    assert free.contains(window.geometry()), (free, window.geometry())
    assert window.width() == min(1440, free.width()) and window.height() == min(900, free.height())
    window.force_close()


def test_a_truncated_download_added_by_hand_is_marked_incomplete_not_offered(window, tiny_inpaint_model, tmp_path):
    """Issue 25: a diffusers folder whose UNet download stopped half way was listed as a normal
    model and failed only when chosen; now it is marked when added and never selected."""
    model = tmp_path / "half-downloaded"
    shutil.copytree(tiny_inpaint_model, model)
    unet = next((model / "unet").glob("*.safetensors"))
    with open(unet, "r+b") as fh:
        fh.truncate(unet.stat().st_size // 2)
    before = window.model_picker.current_model()
    assert not window.model_picker.add_model_path(str(model))
    assert window.model_picker.current_model() == before
    row = window.model_picker.combo.findData(str(model))
    assert row >= 0 and window.model_picker.combo.itemText(row) == "half-downloaded (incomplete)"
    assert "truncated" in window.model_picker.detail.text() and "unet/" in window.model_picker.detail.text()


def test_the_compiled_step_is_a_remembered_choice_that_reaches_the_run(qtbot, settings):
    """Generate ▸ Compiled UNet Step: off by default; on, every run's load options ask for the
    background-compiled step (issue 34), and the choice survives a restart."""
    w = make_window(qtbot, settings)
    try:
        assert w.menu_actions.compile in w.generate_menu.actions()
        assert not w.menu_actions.compile.isChecked() and not w.run_options().compile
        w.menu_actions.compile.setChecked(True)
        assert w.run_options().compile
    finally:
        w.force_close()
    again = make_window(qtbot, settings)
    try:
        assert again.menu_actions.compile.isChecked() and again.run_options().compile
    finally:
        again.force_close()
