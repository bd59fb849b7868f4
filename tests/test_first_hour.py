"""Issue 14 (first hour with the product) and issue 18's window wiring, driven offscreen."""

from __future__ import annotations

from pathlib import Path

import pytest
import skimage.data
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from app.core import imageio
from app.core.geometry import Bounds
from app.editor.settings import Settings
from app.widgets.main_window import MainWindow
from app.widgets.params_panel import CONTENT_LABELS
from app.widgets import window_dialogs


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(Settings(tmp_path / "settings" / "s.ini"), discover=lambda: [])
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.force_close()


@pytest.fixture
def opened(window, tmp_path):
    path = tmp_path / "astronaut.png"
    imageio.save_image(path, skimage.data.astronaut())
    assert window.files.open_path(path)
    return window


# -- issue 18: UI wiring ----------------------------------------------------------------------------
def test_latent_nothing_is_offered_in_panel_and_cli_help(capsys):
    from app.cli.main import build_parser

    assert CONTENT_LABELS["latent_nothing"] == "Latent nothing"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["inpaint", "--help"])
    assert "latent_nothing" in capsys.readouterr().out


# -- item 2: undo wherever focus is ---------------------------------------------------------------
def test_ctrl_z_undoes_with_focus_in_the_brush_size_box_but_not_in_the_prompt(qtbot, opened):
    w = opened
    w.document.fill_rect(Bounds(10, 10, 50, 50))
    assert w.document.mask.any()
    w.brush_size.setFocus()
    qtbot.waitUntil(lambda: w.brush_size.hasFocus())
    qtbot.keyClick(w.brush_size, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not w.document.mask.any()
    qtbot.keyClick(w.brush_size, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert w.document.mask.any()
    w.params_panel.prompt.setFocus()
    qtbot.waitUntil(lambda: w.params_panel.prompt.hasFocus())
    qtbot.keyClicks(w.params_panel.prompt, "abc")
    qtbot.keyClick(w.params_panel.prompt, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.document.mask.any()  # typing is undone, not the mask
    assert w.params_panel.prompt.toPlainText() != "abc"


# -- item 8: keyboard ---------------------------------------------------------------------------------
def test_x_swaps_brush_and_eraser_and_tools_menu_shows_keys(qtbot, opened):
    w = opened
    w.canvas.setFocus()
    qtbot.waitUntil(lambda: w.canvas.hasFocus())
    w.canvas.set_tool("brush")
    qtbot.keyClick(w.canvas, Qt.Key.Key_X)
    assert w.canvas.tool == "eraser" and w.menu_actions.tools["eraser"].isChecked()
    qtbot.keyClick(w.canvas, Qt.Key.Key_X)
    assert w.canvas.tool == "brush"
    in_menu = set(w.tools_menu.actions())
    for a in [*w.menu_actions.tools.values(), w.menu_actions.swap_tool]:  # every tool entry (options and submenus have none)
        assert a in in_menu and not a.shortcut().isEmpty(), a.text()
    assert w.menu_actions.swap_tool.shortcut() == QKeySequence("X")


def test_typing_x_in_the_prompt_types_it(qtbot, opened):
    w = opened
    w.params_panel.prompt.setFocus()
    qtbot.waitUntil(lambda: w.params_panel.prompt.hasFocus())
    tool = w.canvas.tool
    qtbot.keyClicks(w.params_panel.prompt, "xb")
    assert w.params_panel.prompt.toPlainText() == "xb" and w.canvas.tool == tool


def test_help_lists_every_shortcut_from_the_actions(window):
    texts = [a.text() for a in window.help_menu.actions()]
    assert "&Keyboard Shortcuts" in texts and "&Documentation" in texts
    dialog = window_dialogs.show_shortcuts(window)
    keys = {name: k for k, name in dialog.rows}
    assert keys["Undo"] == QKeySequence(QKeySequence.StandardKey.Undo).toString(QKeySequence.SequenceFormat.NativeText)
    assert "Redo" not in keys["Redo"] and "Ctrl+Y" in keys["Redo"]
    assert keys["Swap Brush and Eraser"] == "X"
    assert keys["Eraser"] == "E"
    assert dialog.table.rowCount() == len(dialog.rows) > 15


# -- item 6: a recalled seed is used once unless locked -------------------------------------------
class InstantBackend:
    name = "test:instant"
    native_resolution = True

    def generate(self, request, progress, cancelled):
        progress(1, 1, None)
        return [request.image.copy() for _ in request.seeds]


@pytest.fixture
def fast_window(qtbot, tmp_path):
    from app.editor.worker import GenerationWorker

    w = MainWindow(Settings(tmp_path / "s.ini"), worker=GenerationWorker(lambda model, options: InstantBackend()),
                   discover=lambda: [])
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    path = tmp_path / "a.png"
    imageio.save_image(path, skimage.data.astronaut())
    assert w.files.open_path(path)
    w.document.fill_rect(Bounds(50, 50, 40, 40))
    yield w
    w.force_close()


def run(qtbot, w):
    with qtbot.waitSignal(w.generation_finished, timeout=20000) as blocker:
        assert w.generation.generate(w.current_params().replace(model="/models/fake-sd15"))
    return blocker.args[0]


def test_recalled_seed_is_used_once_then_random_unless_locked(qtbot, fast_window):
    w = fast_window
    w.params_panel.prompt.setPlainText("a bench")
    w.params_recall.apply(w.current_params().replace(seed=42))
    assert run(qtbot, w).params.seed == 42
    assert w.params_panel.seed.seed() == -1  # back to Random
    assert run(qtbot, w).params.seed != 42
    w.params_panel.seed.setValue(7)
    w.params_panel.lock_seed.setChecked(True)
    assert [run(qtbot, w).params.seed for _ in range(2)] == [7, 7]
    assert w.params_panel.seed.seed() == 7


# -- item 5: classical methods ignore batch, seed, steps and scheduler ------------------------------
def test_classical_run_gives_one_candidate_and_records_no_sampler_fields(qtbot, opened):
    from app.core.params import GenerationParams

    w, d = opened, GenerationParams()
    w.document.fill_rect(Bounds(100, 100, 30, 30))
    w.set_params(w.current_params().replace(model="builtin:telea", batch_size=3, seed=99, steps=40, scheduler="Euler a"))
    panel = w.params_panel
    assert not any(x.isEnabled() for x in (panel.batch, panel.seed, panel.steps, panel.scheduler, panel.schedule, panel.lock_seed))
    with qtbot.waitSignal(w.generation_finished, timeout=20000) as blocker:
        assert w.generation.generate()
    record = blocker.args[0]
    assert len(record.candidates) == 1 and w.candidates_panel.count() == 1
    p = record.params
    assert (p.batch_size, p.seed, p.steps, p.scheduler) == (1, 0, d.steps, d.scheduler)


# -- item 1: missing xcb libraries become one apt-get line --------------------------------------------
FAKE_LDD = """\tlinux-vdso.so.1 (0x00007ffc)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f19)
\tlibxcb-cursor.so.0 => not found
"""


def test_missing_xcb_libraries_print_the_apt_get_line(monkeypatch, capsys):
    from app.widgets import application, xcb_check

    monkeypatch.setattr(xcb_check, "_ldd", lambda path: FAKE_LDD)
    x11 = {"DISPLAY": ":0"}
    message = xcb_check.xcb_problem(x11)
    assert "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4 libxkbcommon-x11-0\n" in message
    assert xcb_check.xcb_problem({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}) is None
    assert xcb_check.xcb_problem({}) is None  # no X display: not xcb's problem
    monkeypatch.setattr(xcb_check.os, "environ", x11)
    assert application.run_gui([]) == 1  # before any QApplication is made
    assert "apt-get install -y libxcb-cursor0" in capsys.readouterr().err
    monkeypatch.setattr(xcb_check, "_ldd", lambda path: FAKE_LDD.replace("not found", "/lib/x.so (0x1)"))
    assert xcb_check.xcb_problem(x11) is None


def test_readme_names_every_package_the_check_knows():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    from app.widgets.xcb_check import XCB_PACKAGES

    assert f"apt-get install -y {' '.join(XCB_PACKAGES)}" in readme


# -- item 4: `inpaint-studio models` lists only what loads --------------------------------------------
def write_safetensors(path: Path, names: dict[str, list[int]]) -> None:
    import json
    import struct

    header = {n: {"dtype": "F16", "shape": shape, "data_offsets": [0, 0]} for n, shape in names.items()}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def test_models_skips_partial_folders_other_families_loras_and_pix2pix(tiny_base_model, tmp_path, monkeypatch, capsys):
    import json
    import shutil

    from app.cli.main import main

    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(tiny_base_model, models / "complete")
    shutil.copytree(tiny_base_model, models / "partial", ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    pix = shutil.copytree(tiny_base_model, models / "pix2pix")
    unet_cfg = json.loads((pix / "unet" / "config.json").read_text())
    (pix / "unet" / "config.json").write_text(json.dumps({**unet_cfg, "in_channels": 8}))
    write_safetensors(models / "xl.safetensors", {"conditioner.embedders.0.transformer.x": [1]})
    write_safetensors(models / "sd2.safetensors", {"cond_stage_model.model.x": [1]})
    write_safetensors(models / "detail.safetensors", {"lora_unet_down_blocks_0_attn2_to_k.lora_down.weight": [4, 768]})
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(models))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    usable, _, skipped = out.partition("Skipped: found but will not load (5):")
    assert "complete  [diffusers folder, SD 1.x, base model" in usable
    for name in ("partial", "pix2pix", "xl", "sd2", "detail"):
        assert f"  {name}  [" not in usable and f"  {name}  [" in skipped
    assert "base model" not in skipped
    assert "incomplete folder" in skipped and "no weights in unet, vae, text_encoder" in skipped
    assert "InstructPix2Pix" in skipped and "Stable Diffusion XL" in skipped and "2.x" in skipped
    assert "a LoRA, not a model" in skipped


# -- item 9: the ETA ignores the warm-up step ---------------------------------------------------------
def test_eta_ignores_the_warm_up_step():
    from app.editor.worker import StepClock

    clock = StepClock()
    # step 1 took 30 s (warm-up), later steps 1 s each; 20 steps
    assert clock.eta(1, 20, 30.0) == -1.0  # unknown until a second step is timed
    assert clock.eta(2, 20, 31.0) == pytest.approx(18.0)
    assert clock.eta(10, 20, 39.0) == pytest.approx(10.0)
    assert clock.eta(20, 20, 49.0) == 0.0
    assert clock.eta(1, 20, 60.0) == -1.0  # the next region's pass starts over


def test_status_shows_how_long_the_result_took(qtbot, opened):
    w = opened
    w.document.fill_rect(Bounds(100, 100, 30, 30))
    with qtbot.waitSignal(w.generation_finished, timeout=20000) as blocker:
        assert w.generation.generate()
    assert f"in {blocker.args[0].elapsed_s:.2f} s" in w.status.message.text()


# -- item 10: small things ----------------------------------------------------------------------------
def test_torchvision_warnings_do_not_reach_the_terminal(monkeypatch, capfd):
    import warnings

    from app.inference.diffusers.loader import quiet_libraries

    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()
        warnings.warn_explicit("Failed to load image Python extension", UserWarning, "io.py", 1, module="torchvision.io.image")
        from transformers.utils import logging as tlog

        tlog.get_logger("transformers.utils.import_utils").warning("`CLIPImageProcessor` requires torchvision (not installed)")
    assert caught == []
    assert "torchvision" not in capfd.readouterr().err


def test_wheel_over_the_canvas_behind_a_dialog_does_not_zoom(qtbot, opened):
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication, QDialog

    w = opened

    def wheel() -> None:
        centre = QPointF(w.canvas.width() / 2, w.canvas.height() / 2)
        QApplication.sendEvent(w.canvas, QWheelEvent(centre, w.canvas.mapToGlobal(centre), QPoint(), QPoint(0, 120),
                                                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                                                     Qt.ScrollPhase.NoScrollPhase, False))

    dialog = QDialog(w)
    dialog.setModal(True)
    dialog.show()
    qtbot.waitUntil(lambda: QApplication.activeModalWidget() is dialog)
    zoom = w.canvas.zoom
    wheel()
    assert w.canvas.zoom == zoom
    dialog.close()
    qtbot.waitUntil(lambda: QApplication.activeModalWidget() is None)
    wheel()
    assert w.canvas.zoom > zoom


def test_model_ready_does_not_replace_the_running_status(qtbot, opened):
    w = opened
    w.document.fill_rect(Bounds(100, 100, 30, 30))
    with qtbot.waitSignal(w.generation_finished, timeout=20000):
        assert w.generation.generate()
        w.session.worker_status.emit("Model ready")
        assert w.status.message.text().startswith("Generating")
    w.session.worker_status.emit("Model ready")
    assert w.status.message.text() == "Model ready"


def test_hold_to_compare_goes_with_the_candidates(qtbot, opened):
    w = opened
    w.document.fill_rect(Bounds(100, 100, 30, 30))
    with qtbot.waitSignal(w.generation_finished, timeout=20000):
        assert w.generation.generate()
    button = w.candidates_panel.compare_button
    assert button.isVisible()
    qtbot.mousePress(button, Qt.MouseButton.LeftButton)
    assert "before this generation" in w.status.message.text()
    w.generation.discard_candidates()
    assert not button.isVisible() and not w.generation.comparing
    assert "before this generation" not in w.status.message.text()


# -- item 3: one Add button for files and folders; the CLI sees what the window added ----------------
def test_add_model_picks_a_folder_and_the_cli_lists_it(qtbot, tiny_base_model, tmp_path, monkeypatch, capsys):
    import shutil

    from PySide6.QtWidgets import QFileDialog

    from app.cli.main import main
    from app.storage import shared_settings

    folder = shutil.copytree(tiny_base_model, tmp_path / "elsewhere" / "my-sd15")
    data = tmp_path / "data"
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(data))
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", "")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))
    w = MainWindow(Settings(data / "window.ini"), discover=lambda: [])  # shared file: data_dir()/settings.json
    qtbot.addWidget(w)
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (asked.append(a), (str(folder / "model_index.json"), ""))[1]))
    w.model_picker.add_button.click()
    assert asked and "model_index.json" in asked[0][3]
    assert w.model_picker.current_model() == str(folder)
    assert shared_settings.SharedSettings().user_models() == [str(folder)]
    assert shared_settings.default_path().parent == data
    w.force_close()

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "my-sd15  [diffusers folder, SD 1.x, base model" in out


def test_a1111_folder_from_the_shared_settings_is_searched(tmp_path, monkeypatch):
    from app.inference.diffusers import catalog
    from app.storage.shared_settings import SharedSettings

    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path))
    monkeypatch.delenv("INPAINT_STUDIO_A1111", raising=False)
    SharedSettings().set_a1111_folder(str(tmp_path / "forge"))
    assert tmp_path / "forge" / "models" / "Stable-diffusion" in catalog.models_dirs()
    (tmp_path / "settings.json").write_text("{damaged")
    assert catalog.a1111_root() is None and SharedSettings().user_models() == []


# -- issue 18: LoRA and embedding pickers, A1111 folder, recall names what is missing ----------------
def test_lora_picker_inserts_a_weighted_tag_and_lists_unusable_files_greyed(qtbot, tmp_path, monkeypatch):
    from app.widgets.params_panel import ParamsPanel

    lora_dir = tmp_path / "data" / "models" / "Lora"
    emb_dir = tmp_path / "data" / "models" / "embeddings"
    lora_dir.mkdir(parents=True)
    emb_dir.mkdir(parents=True)
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("INPAINT_STUDIO_A1111", raising=False)
    write_safetensors(lora_dir / "detail.safetensors", {"lora_unet_down_blocks_0_attn2_to_k.lora_down.weight": [4, 768]})
    write_safetensors(lora_dir / "xl-style.safetensors", {"lora_unet_down_blocks_0_attn2_to_k.lora_down.weight": [4, 2048]})
    write_safetensors(emb_dir / "badhands.safetensors", {"emb_params": [2, 768]})
    panel = ParamsPanel()
    qtbot.addWidget(panel)
    panel.set_model("some/model", classical=False)
    panel.show()
    net = panel.networks
    items = {net.lora.itemData(i): net.lora.model().item(i) for i in range(net.lora.count())}
    assert items["detail"].isEnabled() and not items["xl-style"].isEnabled()
    assert "SDXL" in items["xl-style"].text()
    panel.prompt.setPlainText("a cat")
    panel.prompt.moveCursor(panel.prompt.textCursor().MoveOperation.End)
    net.lora.setCurrentIndex(net.lora.findData("detail"))
    net.weight.setValue(70)
    net.add_lora.click()
    assert panel.params().prompt == "a cat <lora:detail:0.7>"
    net.add_embedding.click()
    assert panel.params().prompt == "a cat <lora:detail:0.7> badhands"
    panel.set_model("builtin:telea", classical=True)
    assert not net.isEnabled()


def test_a1111_folder_field_lists_its_models_and_recall_names_missing_networks(qtbot, tmp_path, monkeypatch, tiny_base_model):
    import os
    import shutil

    from app.core.params import GenerationParams

    forge = tmp_path / "forge"
    shutil.copytree(tiny_base_model, forge / "models" / "Stable-diffusion" / "forge-model")
    (forge / "models" / "Lora").mkdir()
    write_safetensors(forge / "models" / "Lora" / "here.safetensors", {"lora_unet_x_attn2_to_k.lora_down.weight": [4, 768]})
    data = tmp_path / "data"
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(data))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.delenv("INPAINT_STUDIO_A1111", raising=False)
    w = MainWindow(Settings(data / "w.ini"))
    qtbot.addWidget(w)
    w.show()
    w.model_picker.a1111.setText(str(forge))
    w.model_picker.a1111.editingFinished.emit()
    assert os.environ["INPAINT_STUDIO_A1111"] == str(forge)
    forge_model = str(forge / "models" / "Stable-diffusion" / "forge-model")
    qtbot.waitUntil(lambda: forge_model in w.model_picker.model_refs(), timeout=20000)
    assert w.params_panel.networks.lora.findData("here") >= 0
    w.params_recall.apply(GenerationParams(prompt="x <lora:here:0.5> <lora:gone:1>", extra={"TI hashes": "nohands: abc123"}))
    from PySide6.QtWidgets import QLabel

    text = w.message_bar.findChildren(QLabel)
    shown = " ".join(label.text() for label in text)
    assert "LoRA 'gone'" in shown and "embedding 'nohands'" in shown and "'here'" not in shown
    w.force_close()


def test_classical_history_and_status_show_no_seed_but_the_time(qtbot, opened):
    from app.widgets.history_panel import describe

    w = opened
    w.document.fill_rect(Bounds(100, 100, 30, 30))
    with qtbot.waitSignal(w.generation_finished, timeout=20000) as blocker:
        assert w.generation.generate()
    text, tip = describe(blocker.args[0])
    assert "seed" not in text.lower() and "Seed" not in tip and f"{blocker.args[0].elapsed_s:.1f} s" in text
    assert w.status.seed.text() == ""


def test_model_panel_leaves_no_gap_once_models_are_found(qtbot, tmp_path):
    from types import SimpleNamespace

    info = SimpleNamespace(name="sd", ref="/m/sd", kind="diffusers", path="/m/sd", inpainting=True, family="sd1", note="",
                           usable=True)
    w = MainWindow(Settings(tmp_path / "s.ini"), discover=lambda: [info])
    qtbot.addWidget(w)
    w.resize(1200, 1000)
    w.show()
    qtbot.waitExposed(w)
    picker = w.model_picker
    qtbot.waitUntil(lambda: not picker.discovering)
    assert picker.hint.isVisible()  # nothing discovered yet: the "no model" hint takes room
    w.resizeDocks([w.model_dock], [picker.sizeHint().height() + 20], Qt.Orientation.Vertical)
    picker.refresh()
    qtbot.waitUntil(lambda: "/m/sd" in picker.model_refs())
    assert not picker.hint.isVisible()
    qtbot.waitUntil(lambda: picker.height() - picker.sizeHint().height() < 30)
    w.force_close()


def test_multi_frame_file_says_only_its_first_frame_was_opened(qtbot, tmp_path):
    from PIL import Image

    from app.widgets.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    frames = [Image.new("RGB", (32, 24), c) for c in ("red", "green", "blue")]
    path = tmp_path / "pages.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert window.files.open_path(str(path))
    assert "only the first of 3 frames/pages is used" in window.status.message.text()
    window.force_close()


def test_recovery_entries_are_not_cut_off(qtbot, tmp_path):
    from app.storage.autosave import Recovery
    from app.widgets.recovery_dialog import RecoveryDialog

    rec = Recovery(tmp_path / "session-1-abc.inpaint", tmp_path / "session-1-abc.lock", 1, 1.7e9, 10_000_000)
    dialog = RecoveryDialog([rec])
    qtbot.addWidget(dialog)
    item = dialog.list.item(0)
    assert dialog.list.wordWrap() and dialog.list.textElideMode() == Qt.TextElideMode.ElideNone
    assert str(rec.path) in item.toolTip()
