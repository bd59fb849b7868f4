"""LaMa as an inpainting backend (issue 27): found in a models folder's LaMa/ sub-folder,
detected by spandrel, run through the same service and engine as every backend, so pixels
outside the mask stay bit-identical (alpha and 16-bit included).

spandrel builds only big-lama's shape, so the random-weight model is full size (51 M
parameters): it is written once per module and loaded once."""

from __future__ import annotations

import numpy as np
import pytest

import restoration_models as rm
from app.core import maskops
from app.core.params import GenerationParams
from app.inference import registry
from app.inference.engine import Cancelled
from app.inference.restoration import loader
from app.service import GenerationRequest, GenerationService


@pytest.fixture(scope="module")
def lama_file(tmp_path_factory):
    models = tmp_path_factory.mktemp("lama-models")
    path = rm.save(rm.lama(), models / "LaMa" / "big-lama.safetensors")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INPAINT_STUDIO_MODELS", str(models))
        mp.delenv("INPAINT_STUDIO_A1111", raising=False)
        yield path


@pytest.fixture(scope="module")
def service(lama_file):
    return GenerationService()


def test_lama_is_found_detected_and_asks_for_no_prompt_or_seed(lama_file):
    summary = loader.detect(lama_file)
    assert (summary.architecture, summary.purpose, summary.scale) == ("LaMa", "inpaint", 1)
    caps = registry.capabilities("lama")
    assert caps.kind == registry.RESTORATION
    assert (caps.prompts, caps.seeds, caps.schedulers, caps.img2img, caps.native_resolution) == (False, False, (), False, True)


@pytest.mark.slow
def test_pixels_outside_the_mask_are_untouched_in_16_bit_rgba(service, lama_file):
    rgb = rm.photo(48, 64).astype(np.uint16) * 257
    alpha = np.tile(np.linspace(1000, 65000, 64).astype(np.uint16), (48, 1))
    image = np.dstack([rgb, alpha])
    mask = np.zeros((48, 64), np.uint8)
    mask[18:30, 20:36] = 255
    params = GenerationParams(model="lama", prompt="ignored", seed=1234, mask_blur=4)
    record = service.run(GenerationRequest(params, image, mask))
    out = record.candidates[0]
    assert out.dtype == np.uint16 and out.shape == image.shape
    outside = maskops.feather_full(mask, 4) == 0
    assert np.array_equal(out[outside], image[outside])  # bit-identical, alpha included
    assert not np.array_equal(out[18:30, 20:36, :3], image[18:30, 20:36, :3])  # the model painted the hole
    assert record.params.prompt == "" and record.params.seed == 0  # LaMa takes neither


def test_cancel_before_the_model_runs(service, lama_file):
    params = GenerationParams(model=f"lama:{lama_file}")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16] = 255
    with pytest.raises(Cancelled):
        service.run(GenerationRequest(params, rm.photo(32, 32), mask), cancelled=lambda: True)


@pytest.mark.slow
def test_inpaint_command_takes_lama_as_any_backend(lama_file, tmp_path, capsys):
    from PIL import Image

    from app.cli.main import main

    image, mask = rm.photo(40, 40), np.zeros((40, 40), np.uint8)
    mask[10:20, 12:26] = 255
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    assert main(["inpaint", "-i", str(tmp_path / "in.png"), "-m", str(tmp_path / "mask.png"), "-o", str(out),
                 "--model", "lama"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == f"wrote {out}"  # no seed: LaMa has none
    with Image.open(out) as png:
        result, infotext = np.asarray(png), png.info["parameters"]
    assert "Model: lama" in infotext and "Seed:" not in infotext and "Steps:" not in infotext  # nothing sampled
    outside = maskops.feather_full(mask, 4) == 0
    assert np.array_equal(result[outside], image[outside])
    assert not np.array_equal(result[10:20, 12:26], image[10:20, 12:26])


@pytest.mark.slow
def test_a_region_larger_than_one_pass_is_inpainted_window_by_window(lama_file, monkeypatch):
    from app.inference.engine import Engine, Job
    from app.inference.restoration import lama

    monkeypatch.setattr(lama, "MAX_AREA", 40 * 40)  # so a small image needs windows (24 MP scans do)
    monkeypatch.setattr(lama, "WINDOW_CORE", 32)
    monkeypatch.setattr(lama, "WINDOW_CONTEXT", 8)
    backend = lama.load_lama_backend("lama", "cpu")
    seen = []
    model = backend.descriptor
    backend.descriptor = type("Recording", (), {
        "size_requirements": model.size_requirements,
        "__call__": lambda self, image, mask: (seen.append(tuple(image.shape[-2:])), model(image, mask))[1]})()
    image, mask = rm.photo(48, 96), np.zeros((48, 96), np.uint8)
    mask[20:24, 4:92] = 255  # a long scratch
    out = Engine(backend).run(Job(GenerationParams(model="lama"), image, mask)).candidates[0].image
    assert len(seen) == 3 and max(h * w for h, w in seen) <= 48 * 48  # three windows along the scratch, each small
    outside = maskops.feather_full(mask, 4) == 0
    assert np.array_equal(out[outside], image[outside]) and not np.array_equal(out[20:24], image[20:24])


@pytest.mark.slow
def test_lamas_full_resolution_layers_in_strips_give_the_whole_forwards_result(lama_file):
    """The backend runs big-lama's outer layers on strips of rows with a halo (its memory then
    follows the bottleneck: docs/PERFORMANCE.md); the halo must make every kept row exact."""
    import torch

    from app.inference.restoration import lama_strips

    generator = loader.load(lama_file, "cpu").model.model
    assert lama_strips.supported(generator)
    torch.manual_seed(0)
    x = torch.rand(1, 4, 72, 40)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: 30× faster than two threads waiting on each other under load
    try:
        with torch.inference_mode():
            whole = generator.model(x)
            for rows in (16, 32):  # 5 and 3 strips (the last one short), halos wider than the strips
                assert torch.allclose(lama_strips.forward(generator, x, rows=rows), whole, rtol=0, atol=1e-5)
    finally:
        torch.set_num_threads(threads)
    assert not torch.allclose(whole[:, :, :8], whole[:, :, 8:16])  # not a flat result any stitching gives


def test_a_lama_generator_saved_without_its_prefix_is_still_lama(lama_file):
    """Converting IOPaint's TorchScript big-lama.pt to safetensors gives keys ``model.N…``
    (no ``generator.``): spandrel alone would not know it."""
    import torch

    state = loader.read_state_dict(lama_file, meta=True)
    bare = {k[len("model."):]: v for k, v in state.items()}
    assert set(loader.canonical(bare)) == set(state)
    with torch.device("meta"):
        descriptor = loader.build(loader.canonical(bare), lama_file, "meta")
    assert descriptor.architecture.id == "LaMa"


def test_models_offers_the_lama_file_as_an_inpainting_model(lama_file, capsys):
    from app.cli.main import main

    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "big-lama  [LaMa, inpaint, ×1]" in text and f"--model lama:{lama_file}" in text


def test_a_square_only_inpainter_like_mat_gets_square_padded_input():
    """MAT (spandrel-extra-arches) accepts only squares of 512·n: the backend pads the crop to a
    square of the model's multiple and crops the answer back."""
    from types import SimpleNamespace

    from app.inference.restoration import lama

    seen = []

    def model(image, mask):
        seen.append((tuple(image.shape), tuple(mask.shape)))
        return image.flip(-1)

    requirements = SimpleNamespace(minimum=16, multiple_of=16, square=True)
    square = type("Square", (), {"size_requirements": requirements, "__call__": lambda self, i, m: model(i, m)})()
    backend = lama.LamaBackend("lama", square)
    image = rm.photo(20, 40)
    out = backend._inpaint(image, np.zeros((20, 40), np.uint8))
    assert seen == [((1, 3, 48, 48), (1, 1, 48, 48))]
    assert out.shape == (20, 40, 3) and out.dtype == np.uint8
