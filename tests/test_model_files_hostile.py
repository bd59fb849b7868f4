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
