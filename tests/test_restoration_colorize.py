"""Colourise (issue 27): the photo keeps its own lightness at full size and takes the colour
model's Lab a, b; 16-bit, alpha and everything outside a mask are kept; DDColor files need the
opt-in package spandrel-extra-arches and say so when it is missing.

spandrel-extra-arches is not in the test environment (it declares torchvision, and its code
carries non-commercial licences), so the colour plumbing runs here with colour functions given
in its place, and "the package is installed" with a stand-in package registering a tiny
architecture named DDColor; the real DDColor network was run through the service by hand
(docs/ARCHITECTURE.md, "Restoration models")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import restoration_models as rm
from app.cli.main import main
from app.core import maskops
from app.inference.engine import Cancelled
from app.inference.restoration import colorize, loader

ROOT = Path(__file__).resolve().parent.parent


def lab(rgb: np.ndarray) -> np.ndarray:
    """Lab of an integer image, or of floats in [0, 1]."""
    scale = np.iinfo(rgb.dtype).max if rgb.dtype.kind in "iu" else 1
    return colorize.rgb_to_lab(rgb.astype(np.float32) / np.float32(scale))


def constant_ab(a: float, b: float, seen: list | None = None):
    def run(gray_rgb: np.ndarray) -> np.ndarray:
        if seen is not None:
            seen.append(gray_rgb)
        return np.broadcast_to(np.float32([a, b]), gray_rgb.shape[:2] + (2,)).copy()
    return run


def smooth_gray16(height: int, width: int) -> np.ndarray:
    gray = cv2.cvtColor(rm.photo(height, width), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return (cv2.GaussianBlur(gray, (0, 0), 1.5) * 257 * 0.8 + 4000).astype(np.uint16)


def test_lightness_stays_the_photos_and_colour_is_the_models_in_16_bit():
    gray = smooth_gray16(45, 70)
    seen = []
    out = colorize.colorize_pixels(constant_ab(18.0, -12.0, seen), 32, gray)
    assert out.shape == (45, 70, 3) and out.dtype == np.uint16  # a gray document comes back as RGB
    before, after = lab(np.repeat(gray[:, :, None], 3, axis=2)), lab(out)
    assert np.abs(after[:, :, 0] - before[:, :, 0]).max() < 0.05  # L at 16-bit precision
    assert np.allclose(after[:, :, 1], 18.0, atol=0.1) and np.allclose(after[:, :, 2], -12.0, atol=0.1)
    view = seen[0]  # the model saw the photo's lightness, small, as gray RGB
    assert view.shape == (32, 32, 3) and view.dtype == np.float32
    assert np.abs(view[:, :, 0] - view[:, :, 2]).max() < 1e-4
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(lab(view)[:, :, 0] - lab(np.repeat(small[:, :, None], 3, 2))[:, :, 0]).max() < 0.5


def test_the_models_colour_is_enlarged_bilinearly_strip_by_strip(monkeypatch):
    monkeypatch.setattr(colorize, "STRIP_ROWS", 7)  # many strips, one of them short
    yy, xx = np.mgrid[0:16, 0:16].astype(np.float32)
    field = np.dstack([xx * 2 - 15, 12 - yy * 1.5]).astype(np.float32)
    gray = np.full((50, 83), 30000, np.uint16)
    out = colorize.colorize_pixels(lambda view: field, 16, gray)
    expected = cv2.resize(field, (83, 50), interpolation=cv2.INTER_LINEAR)
    assert np.abs(lab(out)[:, :, 1:] - expected).max() < 0.1


def test_within_a_mask_only_alpha_and_the_rest_bit_identical():
    rgb = rm.photo(40, 60)
    alpha = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (40, 1))
    image = np.dstack([rgb, alpha])
    mask = np.zeros((40, 60), np.uint8)
    mask[12:25, 20:41] = 255
    out = colorize.colorize_pixels(constant_ab(30.0, 25.0), 16, image, mask, blur=3)
    assert out.shape == image.shape and out.dtype == np.uint8
    outside = maskops.feather_full(mask, 3) == 0
    assert np.array_equal(out[outside], image[outside]) and np.array_equal(out[:, :, 3], alpha)
    inside = lab(out[12:25, 20:41, :3])
    assert np.abs(inside[:, :, 1] - 30).max() < 3 and np.abs(inside[:, :, 2] - 25).max() < 3  # 8-bit rounding
    with pytest.raises(Cancelled):
        colorize.colorize_pixels(constant_ab(0, 0), 16, image, mask, cancelled=lambda: True)


def test_a_gray_pixel_outside_the_mask_keeps_its_value_in_each_channel():
    gray = smooth_gray16(30, 30)
    mask = np.zeros((30, 30), np.uint8)
    mask[5:10, 5:10] = 255
    out = colorize.colorize_pixels(constant_ab(40.0, 40.0), 16, gray, mask, blur=2)
    outside = maskops.feather_full(mask, 2) == 0
    assert all(np.array_equal(out[:, :, c][outside], gray[outside]) for c in range(3))
    assert not np.array_equal(out[7, 7, 0], out[7, 7, 2])  # coloured inside


@pytest.fixture
def ddcolor_without_the_package(tmp_path, monkeypatch):
    """A file with DDColor's tensor names in a DDColor/ folder, and the extra package absent."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "models" / "DDColor"
    folder.mkdir(parents=True)
    save_file({"refine_net.0.0.weight_orig": torch.zeros(2, 11, 1, 1), "mean": torch.zeros(3), "std": torch.ones(3)},
              str(folder / "ddcolor_modelscope.safetensors"))
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv("INPAINT_STUDIO_A1111", raising=False)
    monkeypatch.setattr(loader, "extra_arches_installed", lambda: False)
    return folder / "ddcolor_modelscope.safetensors"


def test_colorize_without_the_extra_package_names_it_and_writes_nothing(ddcolor_without_the_package, tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(rm.photo(20, 30)).save(src)
    assert main(["colorize", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a DDColor model" in err and "pip install --no-deps spandrel-extra-arches" in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["models", "--json"]) == 0
    rows = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)["restoration"]}
    row = rows["ddcolor_modelscope.safetensors"]
    assert row["usable"] is False and "spandrel-extra-arches" in row["note"]


STAND_IN = '''
"""A stand-in for spandrel-extra-arches: registers an architecture named DDColor (a 1×1
convolution giving a, b from the gray view) the way the real package registers its own."""
import torch
from spandrel import ArchSupport, Architecture, ImageModelDescriptor, ModelTiling, MAIN_REGISTRY
from spandrel.util import KeyCondition


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.input_size = (16, 16)
        self.colour = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x):
        assert x.shape[2:] == self.input_size
        return self.colour(x)


class Arch(Architecture):
    def __init__(self):
        super().__init__(id="DDColor", detect=KeyCondition.has_all("colour.weight", "colour.bias"))

    def load(self, state_dict):
        return ImageModelDescriptor(Net(), state_dict, architecture=self, purpose="Restoration", tags=[],
                                    supports_half=False, supports_bfloat16=True, scale=1, input_channels=1,
                                    output_channels=3, tiling=ModelTiling.INTERNAL)


def install(*, ignore_duplicates=False):
    return MAIN_REGISTRY.add(ArchSupport.from_architecture(Arch()), ignore_duplicates=ignore_duplicates)
'''

PROBE = '''
import json, sys
import numpy as np, torch
from safetensors.torch import save_file
from app.inference.restoration import loader
from app.inference.restoration.spandrel_import import extra_arches_installed, spandrel
from app.service.restoration import RestorationService
spandrel()
path = sys.argv[1]
save_file({"colour.weight": torch.full((2, 3, 1, 1), 0.01), "colour.bias": torch.tensor([20.0, -10.0])}, path)
summary = loader.detect(path)
result = RestorationService().colorize(np.full((24, 40), 128, np.uint8), model=path)
print(json.dumps({"installed": extra_arches_installed(), "purpose": summary.purpose,
                  "architecture": result.architecture, "shape": list(result.pixels.shape),
                  "pixel": result.pixels[5, 5].tolist()}))
'''


@pytest.mark.slow
def test_with_the_extra_package_a_ddcolor_file_is_a_colorize_model(tmp_path):
    package = tmp_path / "site" / "spandrel_extra_arches"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(STAND_IN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "tiny-ddcolor.safetensors")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["installed"] is True and result["purpose"] == "colorize" and result["architecture"] == "DDColor"
    assert result["shape"] == [24, 40, 3]
    r, g, b = result["pixel"]
    assert r > g and b < r  # a ≈ +20, b ≈ −10 on mid gray: a warm, pinkish tone
    lightness = lab(np.uint8([[result["pixel"]]]))[0, 0, 0]
    assert abs(lightness - lab(np.uint8([[[128] * 3]]))[0, 0, 0]) < 1.0


def test_the_editor_says_a_gray_image_cannot_hold_colour_before_loading_a_model():
    """A document keeps its layout through undo and projects, and colour needs RGB: the
    editor's Colourise refuses a gray image in one message (the command line writes RGB)."""
    from app.editor.restore_task import COLORIZE, RestoreChoice, RestoreFailure, run_restoration

    class NoService:
        def run(self, *args, **kwargs):
            raise AssertionError("no model may be loaded for a refused run")

    gray = np.zeros((8, 8), np.uint16)
    outcome = run_restoration(NoService(), RestoreChoice(COLORIZE), gray, np.zeros((8, 8), np.uint8), 0,
                              lambda done, total: None, lambda: False)
    assert isinstance(outcome, RestoreFailure) and not outcome.missing_model
    assert "grayscale" in outcome.message and "inpaint-studio colorize IN -o OUT" in outcome.message


def test_colorize_with_no_model_says_what_it_needs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv("INPAINT_STUDIO_A1111", raising=False)
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(rm.photo(20, 30)).save(src)
    assert main(["colorize", str(src), "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "no colorize model found" in err and "DDColor" in err and "spandrel-extra-arches" in err
    assert err.count("\n") == 1 and not out.exists()
