"""The parameters panel and model picker: every field round-trips, invalid input is impossible or
flagged, mode switching moves the strength default, and nothing here imports torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt

from app.core.schedulers import SAMPLER_NAMES
from app.core.sigma_schedules import SCHEDULE_TYPES
from app.core.params import SEED_MAX, GenerationParams
from app.widgets.model_picker import ModelPicker
from app.widgets.params_panel import ParamsPanel

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def panel(qtbot):
    p = ParamsPanel()
    qtbot.addWidget(p)
    p.set_model("some/model", classical=False)
    return p


def test_every_field_round_trips(panel):
    params = GenerationParams(
        prompt="a stone wall\nwith ivy", negative_prompt="text, watermark", mode="img2img", model="some/model",
        scheduler="Euler a", steps=42, guidance=11.5, strength=0.35, seed=SEED_MAX, batch_size=6, width=640,
        height=384, mask_blur=12, mask_grow=7, inpaint_area="whole", padding=96, masked_content="latent_noise",
        color_match="off",
    )
    panel.set_params(params)
    assert panel.params() == params
    assert panel.validation_message() == ""


def test_sampler_and_schedule_lists_are_the_inference_tables(panel):
    assert [panel.scheduler.itemData(i) for i in range(panel.scheduler.count())] == list(SAMPLER_NAMES)
    assert [panel.schedule.itemData(i) for i in range(panel.schedule.count())] == list(SCHEDULE_TYPES)
    panel.set_params(GenerationParams(scheduler="K_EULER_ANCESTRAL"))  # an alias recalled from a PNG: its pair
    assert (panel.scheduler.currentText(), panel.schedule.currentText()) == ("Euler a", "Automatic")
    assert panel.params().scheduler == "Euler a"


def test_the_pair_picked_is_the_pair_carried_and_recalled(panel):
    panel.set_model("sd15.safetensors", classical=False)
    panel.scheduler.setCurrentIndex(panel.scheduler.findData("Euler a"))
    panel.schedule.setCurrentIndex(panel.schedule.findData("Karras"))
    assert panel.params().scheduler == "Euler a Karras"
    panel.set_params(GenerationParams(scheduler="DPM++ 2M SGM Uniform"))
    assert (panel.scheduler.currentText(), panel.schedule.currentText()) == ("DPM++ 2M", "SGM Uniform")
    assert panel.params().scheduler == "DPM++ 2M SGM Uniform" and panel.schedule.isEnabled()
    panel.scheduler.setCurrentIndex(panel.scheduler.findData("PNDM"))  # PLMS: its own schedule only
    assert not panel.schedule.isEnabled() and panel.params().scheduler == "PNDM"


def test_out_of_range_values_cannot_be_entered(qtbot, panel):
    panel.steps.setValue(500)
    panel.guidance.setValue(99)
    panel.strength.setValue(0)
    panel.batch.setValue(20)
    panel.padding.setValue(-5)
    p = panel.params()
    assert (p.steps, p.guidance, p.strength, p.batch_size, p.padding) == (150, 30.0, 0.01, 8, 0)
    panel.auto_size.setChecked(False)
    panel.width_box.selectAll()
    qtbot.keyClicks(panel.width_box, "501")
    panel.width_box.editingFinished.emit()
    assert panel.params().width == 504  # snapped to a multiple of 8
    panel.auto_size.setChecked(True)
    assert panel.params().width is None and not panel.width_box.isEnabled()


def test_missing_prompt_is_flagged_for_diffusion_only(panel):
    panel.prompt.setPlainText("")
    assert "prompt" in panel.validation_message().lower()
    assert panel.validation.isVisibleTo(panel) and not panel.generate_button.isEnabled()
    panel.set_model("builtin:telea", classical=True)
    assert panel.validation_message() == "" and panel.generate_button.isEnabled()
    assert not panel.steps.isEnabled()  # fields a classical method ignores are greyed out


def test_mode_switch_sets_strength_default_unless_user_changed_it(panel):
    assert panel.params().strength == 1.0
    panel.mode.setCurrentIndex(panel.mode.findData("img2img"))
    assert panel.params().strength == 0.75
    panel.mode.setCurrentIndex(panel.mode.findData("inpaint"))
    assert panel.params().strength == 1.0
    panel.strength.setValue(0.5)
    panel.mode.setCurrentIndex(panel.mode.findData("img2img"))
    assert panel.params().strength == 0.5


def test_seed_random_and_reuse_last(qtbot, panel):
    assert panel.seed.text() == "Random" and panel.params().seed == -1
    assert not panel.reuse_seed.isEnabled()
    panel.set_last_seed(4_000_000_000)  # beyond a 32-bit signed spin box
    qtbot.mouseClick(panel.reuse_seed, Qt.MouseButton.LeftButton)
    assert panel.params().seed == 4_000_000_000
    qtbot.mouseClick(panel.random_seed, Qt.MouseButton.LeftButton)
    assert panel.params().seed == -1


def test_changed_signal_fires_on_edit(qtbot, panel):
    with qtbot.waitSignal(panel.changed, timeout=1000):
        panel.steps.setValue(30)


def test_model_picker_lists_discovered_models_off_the_gui_thread(qtbot, tmp_path):
    found = [SimpleNamespace(name="builtin:telea", ref="builtin:telea", kind="classical", path=None, inpainting=True, family="classical", note="", usable=True),
             SimpleNamespace(name="My SD 1.5 inpainting", ref=str(tmp_path / "m1"), kind="diffusers", path=tmp_path / "m1",
                             inpainting=True, family="sd1", note="", usable=True),
             SimpleNamespace(name="An SDXL model", ref=str(tmp_path / "xl"), kind="single_file", path=tmp_path / "xl",
                             inpainting=False, family="sdxl", note="SDXL is not supported", usable=False)]
    picker = ModelPicker(discover=lambda: found)
    qtbot.addWidget(picker)
    picker.set_current_model(str(tmp_path / "m1"))  # remembered until discovery lists it
    with qtbot.waitSignal(picker.discovery_finished, timeout=5000):
        picker.refresh()
    refs = picker.model_refs()
    assert refs[:2] == ["builtin:telea", "builtin:ns"] and str(tmp_path / "m1") in refs
    assert picker.current_model() == str(tmp_path / "m1") and not picker.hint.isVisibleTo(picker)
    xl_row = picker.combo.findData(str(tmp_path / "xl"))
    assert not picker.combo.model().item(xl_row).isEnabled()  # listed, with the reason, not selectable
    assert "unsupported" in picker.combo.itemText(xl_row)


def test_model_picker_survives_a_failing_discovery(qtbot):
    def boom():
        raise OSError("cache unreadable")

    picker = ModelPicker(discover=boom)
    qtbot.addWidget(picker)
    with qtbot.waitSignal(picker.discovery_finished, timeout=5000):
        picker.refresh()
    assert picker.current_model() == "builtin:telea" and "cache unreadable" in picker.detail.text()
    assert picker.hint.isVisibleTo(picker)


def test_widgets_import_without_torch():
    code = ("import sys; import app.widgets.main_window, app.widgets.params_panel, app.widgets.model_picker, app.widgets.application, app.editor.worker;"
            "print([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_img2img_with_a_classical_method_is_flagged(panel):
    panel.set_model("builtin:telea", classical=True)
    panel.mode.setCurrentIndex(panel.mode.findData("img2img"))
    assert "diffusion model" in panel.validation_message() and not panel.generate_button.isEnabled()
