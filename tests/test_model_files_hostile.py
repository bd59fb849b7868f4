"""Hostile or malformed model files: a sharded index that points at a pickle is refused before
anything is unpickled; one malformed file never breaks the listing of the others."""

import json
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from app.inference.diffusers.catalog import discover_models
from app.inference.registry import LoadOptions, load_backend
from app.inference.errors import ModelLoadError, PickleRefusedError

ROOT = Path(__file__).resolve().parent.parent


class _Marker:
    """Unpickling this writes a file: proof that a pickle ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path(self.path).write_text, ("pwned",))


def _sharded_to_pickle(src: Path, dest: Path) -> Path:
    folder = shutil.copytree(src, dest)
    unet = folder / "unet"
    (unet / "diffusion_pytorch_model.safetensors").unlink()
    marker = dest.parent / "marker.txt"
    (unet / "diffusion_pytorch_model-00001-of-00001.bin").write_bytes(pickle.dumps(_Marker(str(marker))))
    index = {"metadata": {}, "weight_map": {"conv_in.weight": "diffusion_pytorch_model-00001-of-00001.bin"}}
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_sharded_index_pointing_at_a_pickle_is_refused(tiny_inpaint_model, tmp_path):
    folder = _sharded_to_pickle(tiny_inpaint_model, tmp_path / "evil")
    with pytest.raises(PickleRefusedError, match="pickle"):
        load_backend(str(folder), LoadOptions(device="cpu"))
    assert not (tmp_path / "marker.txt").exists()


def test_index_naming_a_file_outside_the_folder_is_refused(tiny_inpaint_model, tmp_path):
    folder = shutil.copytree(tiny_inpaint_model, tmp_path / "escape")
    index = {"weight_map": {"conv_in.weight": "../../elsewhere.safetensors"}}
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="not a file in unet/"):
        load_backend(str(folder), LoadOptions(device="cpu"))


def _safetensors_with_header(path: Path, header) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


@pytest.fixture
def messy_models(tiny_inpaint_model, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(tiny_inpaint_model, models / "good")
    _safetensors_with_header(models / "string-entry.safetensors", {"model.diffusion_model.x": "oops"})
    _safetensors_with_header(models / "list-header.safetensors", [1, 2, 3])
    _safetensors_with_header(models / "flat-shape.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": {"shape": [4]}})
    bad_config = shutil.copytree(tiny_inpaint_model, models / "list-config")
    (bad_config / "unet" / "config.json").write_text("[1, 2]")
    bad_index = shutil.copytree(tiny_inpaint_model, models / "string-index")
    (bad_index / "model_index.json").write_text('"StableDiffusionPipeline"')
    return models


def test_one_malformed_file_never_hides_the_others(messy_models):
    found = {Path(m.ref).name: m for m in discover_models([messy_models]) if m.kind != "classical"}
    assert found["good"].usable
    for name in ("string-entry.safetensors", "list-header.safetensors", "flat-shape.safetensors", "list-config", "string-index"):
        assert not found[name].usable, name
        assert found[name].note, name


def test_cli_lists_the_rest_and_refuses_each_bad_model_in_one_line(messy_models, tmp_path):
    env = {"INPAINT_STUDIO_MODELS": str(messy_models), "PYTHONPATH": str(ROOT)}
    import os

    full = {**os.environ, **env}
    listing = subprocess.run([sys.executable, "-m", "app", "models", "--json"], cwd=ROOT, env=full,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    rows = {Path(r["ref"]).name: r for r in json.loads(listing.stdout)["models"]}
    assert rows["good"]["usable"] and not rows["string-entry.safetensors"]["usable"]
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "in.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    for name in ("string-entry.safetensors", "list-config", "string-index"):
        run = subprocess.run([sys.executable, "-m", "app", "inpaint", "-i", str(tmp_path / "in.png"), "-m", str(tmp_path / "mask.png"),
                              "-o", str(tmp_path / "out.png"), "--model", str(messy_models / name), "--prompt", "x"],
                             cwd=ROOT, env=full, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, (name, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1, (name, run.stderr)
        assert "internal error" not in run.stderr


# -- issue 32: entries that used to make `models` exit 1 and list nothing ---------------------------
def _deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


@pytest.fixture
def hostile_models(tiny_inpaint_model, tmp_path, monkeypatch):
    """A models folder and a Hugging Face cache holding one good model and every entry of issue 32."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("INPAINT_STUDIO_A1111", raising=False)
    models = tmp_path / "models"
    models.mkdir()
    (models / "good").symlink_to(tiny_inpaint_model, target_is_directory=True)
    for name, index in (("class-null", '{"_class_name": null}'), ("class-five", '{"_class_name": 5}'),
                        ("deep-index", _deep(100_000))):
        (models / name).mkdir()
        (models / name / "model_index.json").write_text(index)
    deep_config = shutil.copytree(tiny_inpaint_model, models / "deep-config", symlinks=True)
    (deep_config / "unet" / "config.json").write_text(_deep(5_000))
    raw = _deep(200_000).encode()
    (models / "deep-header.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    (models / "loop.safetensors").symlink_to(models / "loop.safetensors")
    (models / "loopdir").symlink_to(models / "loopdir")
    (models / "\x1b]0;pwned\x07\x1b[2J").mkdir()
    (models / "\x1b]0;pwned\x07\x1b[2J" / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    cache = tmp_path / "hf"
    no_ref = cache / "models--org--noref" / "snapshots" / "abc123"
    no_ref.parent.mkdir(parents=True)
    no_ref.symlink_to(tiny_inpaint_model, target_is_directory=True)
    (no_ref.parent / "dangling").symlink_to(tmp_path / "nowhere")
    escape = cache / "models--org--escape"
    (escape / "refs").mkdir(parents=True)
    (escape / "snapshots").mkdir()
    (escape / "refs" / "main").write_text("../../../../outside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(models))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return models


def test_bad_entries_are_skipped_with_their_reason_and_the_rest_listed(hostile_models):
    found = {m.name: m for m in discover_models() if m.kind != "classical"}
    assert found["good"].usable and found["org/noref"].usable  # no refs/main: the newest snapshot
    for name, reason in (("class-null", "_class_name is None"), ("class-five", "_class_name is 5"),
                         ("deep-index", "nested deeper"), ("deep-config", "nested deeper"),
                         ("deep-header", "nested deeper"), ("loop", "link loop"), ("org/escape", "not a commit hash")):
        assert not found[name].usable and reason in found[name].note, (name, found[name].note)
    assert all(str(m.path).startswith(str(hostile_models.parent)) and "outside" not in str(m.path)
               for m in found.values())


def test_models_command_exits_0_and_escapes_control_characters(hostile_models, capsys):
    from app.cli.main import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out
    assert "good" in out and "org/noref" in out and "skipped: " in out
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert any(r["name"] == "\x1b]0;pwned\x07\x1b[2J" for r in rows)  # JSON keeps the exact name, escaped


def test_a_bad_embedding_file_only_matters_to_prompts_that_name_it(tmp_path, monkeypatch):
    from app.inference.diffusers import network_files

    emb = tmp_path / "models" / "embeddings"
    (emb / "sub").mkdir(parents=True)
    raw = _deep(200_000).encode()
    (emb / "broken.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    (emb / "sub" / "loop").symlink_to(emb)  # a folder link back up: walked once
    _safetensors_with_header(emb / "sub" / "good.safetensors", {"emb_params": {"dtype": "F32", "shape": [2, 768],
                                                                              "data_offsets": [0, 6144]}})
    monkeypatch.setattr(network_files, "embedding_dirs", lambda: [emb])
    assert network_files.embeddings_in("a photo of a cat", "") == []
    [good] = network_files.embeddings_in("good, a cat")
    assert good.usable and good.context_dim == 768
    [broken] = network_files.embeddings_in("broken")
    assert not broken.usable and "nested deeper" in broken.note
    assert sorted(i.name for i in network_files.discover_embeddings()) == ["broken", "good"]


def test_pickle_shards_are_refused_before_torch_is_imported(tiny_inpaint_model, tmp_path):
    """Issue 32: the refusal came after ~8 s, once torch had been imported."""
    folder = _sharded_to_pickle(tiny_inpaint_model, tmp_path / "evil")
    code = ("import sys\nfrom app.inference.diffusers.loader import preflight\nfrom app.inference.errors import PickleRefusedError\n"
            f"try:\n    preflight({str(folder)!r}, allow_pickle=False)\nexcept PickleRefusedError:\n"
            "    print('refused', 'torch' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "refused False", run.stderr
    assert not (tmp_path / "marker.txt").exists()
