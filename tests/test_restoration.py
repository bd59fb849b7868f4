"""Restoration models through spandrel (issue 27): discovery, detection, the pickle rule, tiling,
bit depth and alpha, cancel, and the ``upscale``/``denoise``/``models`` commands.

Tiny random-weight models of spandrel's own architectures are written as .safetensors and
weights-only .pth files into the folders users keep them in, then found and loaded through the
real discovery and loader (tests/restoration_models.py). LaMa: tests/test_restoration_lama.py."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

import restoration_models as rm
from app.cli.main import main
from app.core import maskops
from app.inference.engine import Cancelled
from app.inference.errors import PickleRefusedError, UnsupportedModelError
from app.inference.restoration import files, loader, process, tiling


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A models folder and an A1111 install holding restoration models in their usual folders."""
    base = tmp_path_factory.mktemp("restoration")
    models, a1111 = base / "models", base / "a1111"
    paths = {
        "esrgan": rm.save(rm.esrgan_x2(), models / "ESRGAN" / "tiny-esrgan-x2.safetensors"),
        "compact": rm.save(rm.compact_x4(), models / "upscale_models" / "4x" / "tiny-compact-x4.pth"),
        "dncnn": rm.save(rm.dncnn(), models / "denoise" / "tiny-dncnn.pth"),
        "a1111": rm.save(rm.compact_x4(seed=5), a1111 / "models" / "RealESRGAN" / "a1111-compact-x4.safetensors"),
        "hostile": rm.save_pickle_with_code(models / "GFPGAN" / "hostile.pth", base / "code-ran"),
        "faces": rm.save(rm.restoreformer(), models / "facerestore_models" / "tiny-restoreformer.safetensors"),
    }
    (a1111 / "models" / "Stable-diffusion").mkdir(parents=True)
    (models / "ESRGAN" / "notes.txt").write_text("not a model")
    rm.save(rm.dncnn(), models / "ESRGAN" / "a" / "b" / "too-deep.pth")
    (models / "ESRGAN" / "moved-away.pth").symlink_to(base / "nowhere.pth")  # dangling: skipped
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INPAINT_STUDIO_MODELS", str(models))
        mp.setenv("INPAINT_STUDIO_A1111", str(a1111))
        yield {**paths, "base": base}


def test_discovery_finds_the_conventional_folders_and_an_a1111_install(library):
    found = {f.path: f.folder_purpose for f in files.discover()}
    assert found == {
        library["esrgan"]: "upscale",
        library["compact"]: "upscale",  # one level of nesting is searched
        library["dncnn"]: "restore",
        library["a1111"]: "upscale",  # <A1111>/models/RealESRGAN
        library["hostile"]: "face",
        library["faces"]: "face",  # ComfyUI's folder name
    }
    assert files.resolve(None, "upscale") == library["esrgan"]  # the first found of that purpose
    assert files.resolve("tiny-dncnn", "restore") == library["dncnn"]  # by name


@pytest.mark.parametrize("key, arch, purpose, scale", [
    ("esrgan", "ESRGAN", "upscale", 2),
    ("compact", "Compact", "upscale", 4),
    ("dncnn", "DnCNN", "restore", 1),
    ("a1111", "Compact", "upscale", 4),
    ("faces", "RestoreFormer", "face", 1),
])
def test_detection_finds_architecture_purpose_and_scale_from_the_tensors(library, key, arch, purpose, scale):
    summary = loader.detect(library[key])  # shapes on the meta device: no weights built
    assert (summary.architecture, summary.purpose, summary.scale) == (arch, purpose, scale)
    assert loader.summarise(loader.load(library[key]), library[key]) == summary  # same as a real load


def test_a_file_that_needs_more_than_the_weights_only_unpickler_is_refused(library):
    for read in (loader.detect, loader.load):
        with pytest.raises(PickleRefusedError, match="only .safetensors or weights-only"):
            read(library["hostile"])
    assert not (library["base"] / "code-ran").exists()  # its code never ran


def test_a_torchscript_archive_is_refused_as_a_program(tmp_path):
    import torch

    path = tmp_path / "big-lama.pt"
    torch.jit.script(torch.nn.Conv2d(3, 3, 3)).save(str(path))
    with pytest.raises(PickleRefusedError, match="TorchScript"):
        loader.load(path)


def test_lama_reference_refuses_a_model_of_another_kind(library):
    from app.inference.restoration import lama

    with pytest.raises(UnsupportedModelError, match="not an inpainting model"):
        lama.load_lama_backend(f"lama:{library['esrgan']}", "cpu")


def _steps():
    calls = []
    return calls, lambda i, n: calls.append((i, n))


def test_tiled_upscale_equals_the_untiled_one_and_overlap_is_what_makes_it_so(library):
    model = loader.load(library["esrgan"])
    image = rm.photo(40, 56)
    whole = process.apply_image_model(model, image, tile=1000)
    calls, step = _steps()
    tiled = process.apply_image_model(model, image, tile=16, overlap=16, progress=step)
    assert calls[-1] == (12, 12)  # 3 × 4 tiles
    assert tiled.shape == whole.shape == (80, 112, 3)
    assert np.abs(tiled.astype(int) - whole).max() <= 1
    # without overlap the tile borders show: the comparison above can see seams
    seams = process.apply_image_model(model, image, tile=16, overlap=0)
    assert np.abs(seams.astype(int) - whole).max() > 8


def test_no_seam_line_in_a_flat_image(library):
    model = loader.load(library["esrgan"])
    flat = np.full((64, 64, 3), 128, np.uint8)
    out = process.apply_image_model(model, flat, tile=16, overlap=16).astype(int)
    inner = out[24:-24, 24:-24]  # away from the image's own edges (zero padding of the convolutions)
    assert np.ptp(inner, axis=(0, 1)).max() <= 1  # flat: no line where tiles meet (16, 32, 48 → ×2)


def test_sixteen_bit_and_alpha_are_kept(library):
    model = loader.load(library["esrgan"])
    rgb = rm.photo(24, 32).astype(np.uint16) * 256 + np.arange(32, dtype=np.uint16)[:, None]  # values 8 bits cannot hold
    alpha = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (24, 1))
    rgba = np.dstack([rgb, alpha])
    out = process.apply_image_model(model, rgba, tile=1000)
    assert out.dtype == np.uint16 and out.shape == (48, 64, 4)
    assert np.array_equal(out[:, :, 3], cv2.resize(alpha, (64, 48), interpolation=cv2.INTER_CUBIC))
    direct = process.model_function(model)(rgb.astype(np.float32) / 65535)
    assert np.array_equal(out[:, :, :3], np.rint(direct * 65535).astype(np.uint16))  # never through 8 bits
    assert (out[:, :, :3] % 257 != 0).mean() > 0.5

    same_size = process.apply_image_model(loader.load(library["dncnn"]), rgba, tile=1000)
    assert same_size.shape == rgba.shape and np.array_equal(same_size[:, :, 3], alpha)  # bit-exact at ×1
    gray = process.apply_image_model(model, rgb[:, :, 0].astype(np.uint8), tile=1000)
    assert gray.shape == (48, 64) and gray.dtype == np.uint8


def test_cancel_stops_between_tiles(library):
    model = loader.load(library["esrgan"])
    calls, step = _steps()
    with pytest.raises(Cancelled):
        process.apply_image_model(model, rm.photo(40, 40), tile=16, progress=step, cancelled=lambda: len(calls) >= 1)
    assert len(calls) == 1  # one tile ran, then it stopped


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_the_tile_from_a_memory_budget_never_exceeds_it(scale):
    previous = None
    for budget in (256 << 20, 1 << 30, 4 << 30, 16 << 30):
        tile = tiling.tile_for_budget(budget, scale, multiple=8)
        assert tile % 8 == 0 and tiling.estimate_bytes(tile, scale) <= budget
        assert tiling.estimate_bytes(tile + 8, scale) > budget or tile == tiling.MAX_TILE  # the largest that fits
        assert previous is None or tile >= previous
        previous = tile


# -- the command line -------------------------------------------------------------------------
def test_upscale_command_writes_the_image_with_its_profile(library, tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rm.photo(20, 30)).save(src, icc_profile=icc)
    assert main(["upscale", str(src), "-o", str(out), "--model", "tiny-compact-x4", "--tile", "16"]) == 0
    assert "Compact ×4" in capsys.readouterr().out
    with Image.open(out) as result:
        assert result.size == (120, 80) and result.info.get("icc_profile") == icc


def test_a_model_of_the_wrong_kind_is_one_line_and_writes_nothing(library, tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(rm.photo(20, 30)).save(src)
    assert main(["denoise", str(src), "-o", str(out), "--model", str(library["esrgan"])]) == 2
    err = capsys.readouterr().err
    assert "a ESRGAN model for upscale (×2); denoise needs a restore model" in err and err.count("\n") == 1
    assert main(["upscale", str(src), "-o", str(out), "--model", str(library["hostile"])]) == 2
    assert "weights-only" in capsys.readouterr().err
    assert not out.exists()


def test_models_lists_restoration_models_with_what_was_detected(library, capsys):
    assert main(["models", "--json"]) == 0
    rows = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)["restoration"]}
    assert {k: (r["architecture"], r["purpose"], r["scale"]) for k, r in rows.items() if r["usable"]} == {
        "tiny-esrgan-x2.safetensors": ("ESRGAN", "upscale", 2),
        "tiny-compact-x4.pth": ("Compact", "upscale", 4),
        "tiny-dncnn.pth": ("DnCNN", "restore", 1),
        "a1111-compact-x4.safetensors": ("Compact", "upscale", 4),
        "tiny-restoreformer.safetensors": ("RestoreFormer", "face", 1),
    }
    assert rows["hostile.pth"]["usable"] is False and "weights-only" in rows["hostile.pth"]["note"]
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "tiny-esrgan-x2  [ESRGAN, upscale, ×2]" in text and "skipped: hostile.pth holds more than weights" in text



def test_a_same_size_model_within_a_selection_leaves_everything_outside_it_untouched(library):
    model = loader.load(library["dncnn"])
    rgb = rm.photo(40, 48).astype(np.uint16) * 257
    rgba = np.dstack([rgb, np.full((40, 48), 40000, np.uint16)])
    mask = np.zeros((40, 48), np.uint8)
    mask[12:22, 14:30] = 255
    calls, step = _steps()
    out = process.apply_in_mask(model, rgba, mask, blur=4, tile=1000, progress=step)
    outside = maskops.feather_full(mask, 4) == 0
    assert np.array_equal(out[outside], rgba[outside]) and np.array_equal(out[:, :, 3], rgba[:, :, 3])
    whole = process.apply_image_model(model, rgba, tile=1000)
    assert np.abs(out[12:22, 14:30].astype(int) - whole[12:22, 14:30]).max() <= 1  # inside: the model's result
    assert not np.array_equal(out[12:22, 14:30], rgba[12:22, 14:30])
    with pytest.raises(ValueError, match="changes the image's size"):
        process.apply_in_mask(loader.load(library["esrgan"]), rgba, mask)


# -- the service (what the CLI calls; the editor's Restore panel and the server next) ----------
class _SmallDeviceModel:
    """The real model on a device that holds at most ``limit``² input pixels: larger inputs raise
    the out-of-memory error torch raises (a RuntimeError subclass named OutOfMemoryError)."""

    def __init__(self, descriptor, limit: int):
        self._descriptor, self._limit, self.sizes = descriptor, limit, []

    def __getattr__(self, name):
        return getattr(self._descriptor, name)

    def __call__(self, tensor):
        self.sizes.append(tuple(tensor.shape[-2:]))
        if tensor.shape[-1] * tensor.shape[-2] > self._limit ** 2:
            raise type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self._descriptor(tensor)


def test_the_service_halves_the_tile_until_it_fits_and_gives_the_same_pixels(library, monkeypatch):
    from app.service.restoration import RestorationRequest, RestorationService

    real = loader.load(library["esrgan"])
    small = _SmallDeviceModel(real, limit=100)
    monkeypatch.setattr(loader, "load", lambda path, device="cpu": small)
    image = rm.photo(130, 130)
    result = RestorationService().run(RestorationRequest("upscale", image, model="tiny-esrgan-x2", tile=128))
    assert result.tile == 64 and (result.architecture, result.scale) == ("ESRGAN", 2)
    assert small.sizes[0] == (130, 130) and max(h * w for h, w in small.sizes[1:]) <= 100 ** 2
    assert np.abs(result.pixels.astype(int) - process.apply_image_model(real, image, tile=1000)).max() <= 1


def test_the_service_refuses_a_model_of_another_purpose_and_applies_a_mask(library):
    from app.service.restoration import RestorationRequest, RestorationService

    service = RestorationService()
    with pytest.raises(UnsupportedModelError, match="denoise needs a restore model"):
        service.run(RestorationRequest("denoise", rm.photo(16, 16), model="tiny-esrgan-x2"))
    image, mask = rm.photo(32, 32), np.zeros((32, 32), np.uint8)
    mask[10:14, 10:14] = 255
    out = service.run(RestorationRequest("denoise", image, mask=mask, model="tiny-dncnn")).pixels
    outside = maskops.feather_full(mask, 4) == 0
    assert np.array_equal(out[outside], image[outside]) and not np.array_equal(out, image)


def test_models_that_need_the_whole_image_get_it_when_the_budget_allows(library):
    from types import SimpleNamespace

    model = loader.load(library["dncnn"])
    as_told = lambda kind: SimpleNamespace(tiling=SimpleNamespace(name=kind), scale=1,  # noqa: E731
                                           size_requirements=model.size_requirements)
    big = tiling.estimate_bytes(600, 1, 0)
    assert process.choose_tile(as_told("SUPPORTED"), 600, 400, big) < 600
    assert process.choose_tile(as_told("DISCOURAGED"), 600, 400, big) == 600  # whole: fits the budget
    assert process.choose_tile(as_told("DISCOURAGED"), 600, 400, big // 4) < 600  # else tiled after all
    assert process.choose_tile(as_told("INTERNAL"), 600, 400, big // 4) == 600  # the model tiles itself


def test_faces_painted_in_the_mask_are_restored_and_blended_by_strength(library, monkeypatch):
    from app.inference.restoration import faces

    monkeypatch.setattr(faces, "FACE_SIZE", 64)  # the tiny model's working size (real ones: 512)
    model = loader.load(library["faces"])
    rgb = rm.photo(80, 96).astype(np.uint16) * 257
    rgba = np.dstack([rgb, np.full((80, 96), 30000, np.uint16)])
    mask = np.zeros((80, 96), np.uint8)
    cv2.ellipse(mask, (30, 40), (12, 16), 0, 0, 360, 255, -1)  # two faces
    cv2.ellipse(mask, (72, 36), (10, 12), 0, 0, 360, 255, -1)
    assert len(faces.face_boxes(mask)) == 2
    full = faces.restore_faces_in_mask(model, rgba, mask, strength=1.0)
    half = faces.restore_faces_in_mask(model, rgba, mask, strength=0.5)
    outside = maskops.feather_full(mask, 8) == 0
    for out in (full, half):
        assert out.dtype == np.uint16 and np.array_equal(out[outside], rgba[outside])
        assert np.array_equal(out[:, :, 3], rgba[:, :, 3])
    inside = mask > 0
    assert not np.array_equal(full[inside], rgba[inside])
    expected = rgba[:, :, :3].astype(float) + 0.5 * (full[:, :, :3].astype(float) - rgba[:, :, :3])
    assert np.abs(half[:, :, :3][inside] - expected[inside]).max() <= 1
    assert np.array_equal(faces.restore_faces_in_mask(model, rgba, mask, strength=0.0), rgba)


def test_restore_faces_command_without_a_mask_or_detector_says_what_to_install(library, tmp_path, monkeypatch,
                                                                             capsys):
    from app.inference.restoration import faces

    monkeypatch.setattr(faces, "FACE_SIZE", 64)
    image, mask = rm.photo(48, 48), np.zeros((48, 48), np.uint8)
    mask[14:34, 16:32] = 255
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "faces.png")
    out = tmp_path / "out.png"
    assert main(["restore-faces", str(tmp_path / "in.png"), "-o", str(out)]) == 2  # which faces? no detector here (a missing model: exit 2, app/service/errors.py)
    err = capsys.readouterr().err
    assert "no face detector: select the faces, or put face_detection_yunet_2023mar.onnx" in err
    assert "facedetection" in err and err.count("\n") == 1 and not out.exists()
    assert main(["restore-faces", str(tmp_path / "in.png"), "-o", str(out), "-m", str(tmp_path / "faces.png"),
                 "--strength", "0.8"]) == 0, capsys.readouterr().err
    result = np.asarray(Image.open(out))
    outside = maskops.feather_full(mask, 4) == 0
    assert np.array_equal(result[outside], image[outside]) and not np.array_equal(result, image)
