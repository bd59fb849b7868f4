"""Catalogue entries that do not go into the models folder's root: few-step LoRAs land in ``Lora/``
under the name their ``<lora:…>`` tag uses (and few_step recognises), restoration models in the
sub-folder the restoration discovery searches; a pickle-only file still needs --allow-pickle.
Served by the fake hub on 127.0.0.1, the catalogue's repo ids and file names unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
import pytest
from safetensors.numpy import save

from app.cli.main import main
from app.core.few_step import few_step_kind
from app.core.params import GenerationParams
from app.inference.diffusers import catalog, network_files
from app.storage import download_catalogue, downloads
from fake_hub import FakeHub, FakeRepo, hub_env, running  # noqa: F401 (fixtures)

#: A tiny SD 1.x LoRA in the diffusers/peft naming (network_files.inspect_lora reads the 768-wide key).
LORA = save({"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight":
             np.zeros((4, 768), np.float32),
             "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight":
             np.zeros((320, 4), np.float32)})
UPSCALER = save({"conv_first.weight": np.zeros((8, 3, 3, 3), np.float32)})
LAMA = save({"model.model.1.bn_l.running_mean": np.zeros(64, np.float32)})
GFPGAN_PTH = b"PK\x03\x04 stands in for a torch zip file"
DDCOLOR_PTH = b"PK\x03\x04 stands in for DDColor's torch zip file"
#: What each catalogue file is served as (its published SHA256 becomes that of these bytes).
SERVED = {"RealESRGAN_x4plus.safetensors": UPSCALER, "RealESRGAN_x2plus.safetensors": UPSCALER,
          "fooocus_lama.safetensors": LAMA, "GFPGANv1.4.pth": GFPGAN_PTH, "ddcolor_modelscope.pth": DDCOLOR_PTH}


@pytest.fixture
def fake(hub_env, monkeypatch):
    """The catalogue's repos on a fake hub (with other files beside the one wanted), GFPGAN's
    release URL pointed at it; published SHA256s swapped for those of the fake bytes."""
    hub = FakeHub()
    hub.repos["latent-consistency/lcm-lora-sdv1-5"] = FakeRepo({"pytorch_lora_weights.safetensors": LORA,
                                                                "README.md": b"card"})
    hub.repos["h1t/TCD-SD15-LoRA"] = FakeRepo({"pytorch_lora_weights.safetensors": LORA})
    hub.repos["ByteDance/Hyper-SD"] = FakeRepo({"Hyper-SD15-8steps-lora.safetensors": LORA,
                                                "Hyper-SDXL-8steps-lora.safetensors": b"other"})
    hub.repos["Comfy-Org/Real-ESRGAN_repackaged"] = FakeRepo({"RealESRGAN_x4plus.safetensors": UPSCALER,
                                                              "RealESRGAN_x2plus.safetensors": UPSCALER})
    hub.repos["lllyasviel/fooocus_inpaint"] = FakeRepo({"fooocus_lama.safetensors": LAMA,
                                                        "inpaint_v26.fooocus.patch": b"an SDXL patch"})
    hub.repos["piddnad/DDColor-models"] = FakeRepo({"ddcolor_modelscope.pth": DDCOLOR_PTH,
                                                    "ddcolor_artistic.pth": b"another"})
    hub.plain_files["GFPGANv1.4.pth"] = GFPGAN_PTH
    with running(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)

        def local(entry):
            hashes = {name: hashlib.sha256(LORA if entry.folder == "Lora" else SERVED.get(name, b"")).hexdigest()
                      for name in entry.sha256}
            return dataclasses.replace(entry, sha256=hashes, url=entry.url and f"{url}/files/GFPGANv1.4.pth")

        monkeypatch.setattr(download_catalogue, "CATALOGUE", tuple(map(local, download_catalogue.CATALOGUE)))
        yield hub


@pytest.mark.parametrize("key, name, where, kind, steps", [
    ("lcm-lora-sdv1-5", "lcm-lora-sdv1-5", "lcm-lora-sdv1-5/pytorch_lora_weights.safetensors", "LCM", 6),
    ("tcd-sd15-lora", "tcd-sd15-lora", "tcd-sd15-lora/pytorch_lora_weights.safetensors", "TCD", 4),
    ("hyper-sd15-8steps", "Hyper-SD15-8steps-lora", "Hyper-SD15-8steps-lora.safetensors", "Hyper-SD", 8),
])
def test_a_few_step_lora_lands_in_lora_under_its_tag_name_and_is_recognised(fake, capsys, key, name, where, kind,
                                                                              steps):
    assert main(["download", key]) == 0
    assert f"<lora:{name}:1>" in capsys.readouterr().out
    found = {info.name: info for info in network_files.discover_loras()}
    assert found[name].path == downloads.models_dir() / "Lora" / where
    assert found[name].path.read_bytes() == LORA and found[name].note == "" and found[name].context_dim == 768
    assert network_files.find_lora(name).path == found[name].path
    assert not list(downloads.models_dir().glob("*.safetensors"))  # nothing in the models root
    rec = few_step_kind(GenerationParams(prompt=f"a cup <lora:{name}:1>", model="test"))
    assert (rec.kind, rec.steps) == (kind, steps)


def test_the_diffusers_lora_file_goes_in_a_folder_named_by_the_key(fake):
    got = downloads.get_model("lcm-lora-sdv1-5")
    assert got.path == downloads.models_dir() / "Lora" / "lcm-lora-sdv1-5" and got.folder == "Lora"
    assert sorted(p.name for p in got.path.iterdir()) == ["pytorch_lora_weights.safetensors"]
    assert downloads.get_model("lcm-lora-sdv1-5").already_present
    assert not (downloads.models_dir() / downloads.STAGING).exists()


def test_restoration_models_land_in_their_sub_folders(fake, capsys):
    assert main(["download", "realesrgan-x4plus"]) == 0
    target = downloads.models_dir() / "RealESRGAN" / "RealESRGAN_x4plus.safetensors"
    assert target.read_bytes() == UPSCALER
    assert "restoration" in capsys.readouterr().out
    assert downloads.get_model("realesrgan-x2plus").path == target.with_name("RealESRGAN_x2plus.safetensors")
    assert {m.ref for m in catalog.discover_models() if m.kind != "classical"} == set()  # not taken for checkpoints


def test_big_lama_lands_where_the_lama_backend_finds_it(fake, capsys):
    from app.inference.restoration import lama

    assert main(["download", "big-lama"]) == 0
    target = downloads.models_dir() / "LaMa" / "fooocus_lama.safetensors"
    assert target.read_bytes() == LAMA and "--model lama" in capsys.readouterr().out
    assert lama.resolve("lama") == target
    assert fetched(fake) == {"fooocus_lama.safetensors"}  # not the SDXL patch beside it


def fetched(hub: FakeHub) -> set[str]:
    return {p.rsplit("/", 1)[1] for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p}


def test_a_weights_only_pth_entry_needs_no_allow_pickle_but_its_published_hash(fake, capsys, monkeypatch):
    """GFPGAN 1.4 and DDColor are published only as torch .pth files: the restoration loader
    reads them with torch's weights-only unpickler, so they download without --allow-pickle,
    but only as the very file whose SHA256 the catalogue publishes."""
    entry = download_catalogue.catalogue_entry("gfpgan-1.4")
    monkeypatch.setattr(download_catalogue, "CATALOGUE",
                        (dataclasses.replace(entry, sha256={"GFPGANv1.4.pth": "0" * 64}),))
    assert main(["download", "gfpgan-1.4"]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (downloads.models_dir() / "GFPGAN").exists()

    monkeypatch.setattr(download_catalogue, "CATALOGUE", (dataclasses.replace(entry, url=entry.url.replace("GFPGANv1.4", "GFPGANv1.3")),))
    fake.plain_files["GFPGANv1.3.pth"] = GFPGAN_PTH
    assert main(["download", "gfpgan-1.4"]) == 1  # the published hash would not be checked
    assert "not the file the catalogue knows" in capsys.readouterr().err

    monkeypatch.setattr(download_catalogue, "CATALOGUE", (entry,))
    assert main(["download", "gfpgan-1.4"]) == 0
    assert (downloads.models_dir() / "GFPGAN" / "GFPGANv1.4.pth").read_bytes() == GFPGAN_PTH
    fake.plain_files["other.pth"] = GFPGAN_PTH
    elsewhere = os.environ["HF_ENDPOINT"].replace("127.0.0.1", "localhost")  # a web server, not the hub
    assert main(["download", f"{elsewhere}/files/other.pth"]) == 1  # any other .pth still needs the flag
    assert "pickle" in capsys.readouterr().err


def test_ddcolor_lands_in_its_folder_and_says_it_needs_the_extra(fake, capsys):
    assert main(["download", "ddcolor"]) == 0
    assert (downloads.models_dir() / "DDColor" / "ddcolor_modelscope.pth").read_bytes() == DDCOLOR_PTH
    assert fetched(fake) == {"ddcolor_modelscope.pth"}
    assert main(["download", "--list"]) == 0
    assert "colouriser (needs spandrel-extra-arches), into DDColor/" in capsys.readouterr().out


def test_a_downloaded_weights_only_pth_is_detected_and_loaded_without_running_code(fake, monkeypatch):
    """What the user gets after downloading GFPGAN 1.4: a face model the loader reads
    weights-only (here a tiny RestoreFormer in GFPGAN's ``{"params_ema": …}`` layout)."""
    import io

    import torch

    import restoration_models as rm
    from app.inference.restoration import loader

    buffer = io.BytesIO()
    torch.save({"params_ema": rm.restoreformer().state_dict()}, buffer)
    fake.plain_files["GFPGANv1.4.pth"] = buffer.getvalue()
    entry = download_catalogue.catalogue_entry("gfpgan-1.4")
    monkeypatch.setattr(download_catalogue, "CATALOGUE", (dataclasses.replace(
        entry, sha256={"GFPGANv1.4.pth": hashlib.sha256(buffer.getvalue()).hexdigest()}),))
    assert main(["download", "gfpgan-1.4"]) == 0
    summary = loader.detect(downloads.models_dir() / "GFPGAN" / "GFPGANv1.4.pth")
    assert (summary.architecture, summary.purpose, summary.scale) == ("RestoreFormer", "face", 1)


def test_the_list_shows_kind_and_folder(capsys):
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    assert "few-step LoRA, into Lora/" in out and "upscaler ×4, into RealESRGAN/" in out
    assert "face restorer, into GFPGAN/" in out and "prompt-free inpainting (LaMa), into LaMa/" in out


def test_the_dialog_says_a_lora_arrived_so_the_lora_list_refreshes(qtbot, fake, tmp_path):
    from app.widgets.download_dialog import DownloadDialog

    dialog = DownloadDialog(dest=tmp_path / "models")
    qtbot.addWidget(dialog)
    keys = [dialog.catalogue.item(i).text() for i in range(dialog.catalogue.count())]
    assert any("few-step LoRA" in k for k in keys) and any("face restorer" in k for k in keys)
    models = []
    dialog.model_downloaded.connect(models.append)
    dialog.source.setText("hyper-sd15-8steps")
    with qtbot.waitSignal(dialog.lora_downloaded, timeout=30_000) as done:
        dialog.download_button.click()
    assert done.args == [str(tmp_path / "models" / "Lora" / "Hyper-SD15-8steps-lora.safetensors")]
    assert models == [] and "LoRA list" in dialog.status.text()


def test_the_dialog_fetches_gfpgans_pth_which_has_no_allow_pickle_box(qtbot, fake, tmp_path):
    from app.widgets.download_dialog import DownloadDialog

    dialog = DownloadDialog(dest=tmp_path / "models")
    qtbot.addWidget(dialog)
    dialog.source.setText("gfpgan-1.4")
    dialog.download_button.click()
    qtbot.waitUntil(lambda: not dialog.busy and dialog.status.text().startswith(("Downloaded", "Failed")),
                    timeout=30_000)
    target = tmp_path / "models" / "GFPGAN" / "GFPGANv1.4.pth"
    assert dialog.status.text() == f"Downloaded: {target}" and target.read_bytes() == GFPGAN_PTH


def test_the_window_lists_a_lora_the_dialog_fetched(qtbot, hub_env, tmp_path):
    from app.editor.settings import Settings
    from app.widgets.main_window import MainWindow

    window = MainWindow(Settings(tmp_path / "settings" / "s.ini"), discover=lambda: [])
    qtbot.addWidget(window)
    lora_list = window.params_panel.networks.lora
    window.params_panel.networks.refresh()
    assert lora_list.findText("lcm-lora-sdv1-5") == -1
    dialog = window.model_picker.get_models()
    target = downloads.models_dir() / "Lora" / "lcm-lora-sdv1-5" / "pytorch_lora_weights.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(LORA)
    dialog._on_finished(downloads.Downloaded(target.parent, len(LORA), folder="Lora"))  # as the worker reports
    assert lora_list.findText("lcm-lora-sdv1-5") != -1
    dialog.close()
    window.force_close()
