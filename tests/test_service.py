"""The generation service under every front end: checks before loading, one rule for classical
records and for candidates, typed errors, the backend cache, and pixels that re-run exactly from
a saved candidate's PNG whether the window's worker or the CLI saved it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from doubles import paint_seeds
from app.cli.main import main as cli_main
from app.core.errors import EmptyMaskError, UserError
from app.core.maskops import MaskError
from app.core.metadata import A1111_KEY, read_params
from app.core.sdmeta.a1111 import parse_fields
from app.core.params import GenerationParams, ParamError
from app.editor.worker import GenerationWorker
from app.inference.engine import Cancelled
from app.inference.errors import GpuOutOfMemory, ModelLoadError, PickleRefusedError
from app.inference.registry import CLASSICAL, DIFFUSION, Capabilities, LoadOptions
from app.service import GenerationRequest, GenerationService, candidate_params, save_candidate
from test_cli import small_photo
from worker_recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent
SAMPLING = {"Seed", "Steps", "Sampler", "CFG scale", "Denoising strength"}


@pytest.fixture
def photo():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    mask = np.zeros((64, 96), np.uint8)
    mask[20:44, 30:70] = 255
    return image, mask


class FakeBackend:
    """Counts its runs and notes overlapping ones; paints each seed's own grey into the mask."""

    name = "test:fake"
    native_resolution = True

    def __init__(self, delay: float = 0.0, error: BaseException | None = None):
        self.delay, self.error = delay, error
        self.running = 0
        self.overlapped = False

    def generate(self, request, progress, cancelled):
        self.running += 1
        self.overlapped |= self.running > 1
        try:
            if self.error is not None:
                raise self.error
            time.sleep(self.delay)
            if cancelled():
                raise Cancelled()
            progress(1, 1, None)
            return paint_seeds(request)
        finally:
            self.running -= 1


def counting_loader(backend):
    calls = []

    def loader(model, options):
        calls.append((model, options))
        return backend

    return loader, calls


# -- check(): refusals before anything loads ---------------------------------------------------------
def test_check_refuses_what_the_backend_cannot_do_before_loading(photo, tmp_path):
    image, mask = photo
    loader, calls = counting_loader(FakeBackend())
    service = GenerationService(loader=None)
    with pytest.raises(ParamError) as err:  # classical: no img2img
        service.check(GenerationRequest(GenerationParams(mode="img2img", model="builtin:ns"), image, mask))
    assert (err.value.field, err.value.value) == ("mode", "img2img") and "diffusion model" in err.value.allowed
    assert err.value.title == "Invalid parameter" and isinstance(err.value, UserError)

    narrow = Capabilities(DIFFUSION, img2img=False, max_batch=2, seeds=True, schedulers=("Euler", "DDIM"),
                          prompts=True, native_resolution=False, input_channels=4)
    limited = GenerationService(loader, capabilities=lambda ref, options=None: narrow)
    fits = GenerationParams(model="m", prompt="x", scheduler="Euler")
    for changes, field in (({"batch_size": 3}, "batch_size"), ({"scheduler": "UniPC"}, "scheduler"),
                           ({"mode": "img2img"}, "mode")):
        with pytest.raises(ParamError) as err:
            limited.check(GenerationRequest(fits.replace(**changes), image, mask))
        assert err.value.field == field
    with pytest.raises(ParamError) as err:  # an unknown name lists the valid ones
        limited.check(GenerationRequest(GenerationParams(model="m", scheduler="Euler b"), image, mask))
    assert err.value.field == "scheduler" and "DDIM" in err.value.allowed
    # aliases become the canonical name
    assert limited.check(GenerationRequest(GenerationParams(model="m", scheduler="k_euler"), image, mask)).params.scheduler == "Euler"

    assert limited.check(GenerationRequest(fits.replace(batch_size=2), image, mask)).params == fits.replace(batch_size=2)
    with pytest.raises(EmptyMaskError):
        limited.check(GenerationRequest(fits, image, np.zeros_like(mask)))
    with pytest.raises(EmptyMaskError):
        limited.check(GenerationRequest(fits, image, None))
    with pytest.raises(MaskError, match="same size"):
        limited.check(GenerationRequest(fits, image, mask[:10]))
    with pytest.raises(ParamError) as err:
        limited.check(GenerationRequest(fits, image.astype(np.float32), mask))
    assert err.value.field == "image"
    with pytest.raises(ModelLoadError, match="model not found"):
        service.check(GenerationRequest(GenerationParams(model=str(tmp_path / "none"), prompt="x"), image, mask))
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not opened")
    with pytest.raises(PickleRefusedError):
        service.check(GenerationRequest(GenerationParams(model=str(ckpt), prompt="x"), image, mask))
    assert calls == []  # nothing was loaded for any of these


def test_the_one_pixel_limit_is_checked_before_running(photo, monkeypatch):
    image, mask = photo
    import app.service.generation as generation

    monkeypatch.setattr(generation, "MAX_PIXELS", image.shape[0] * image.shape[1] - 1)
    with pytest.raises(ParamError) as err:
        GenerationService().check(GenerationRequest(GenerationParams(), image, mask))
    assert err.value.field == "image" and "pixels" in err.value.allowed


def test_classical_params_are_stripped_and_its_record_carries_no_seed(photo, tmp_path):
    image, mask = photo
    asked = GenerationParams(model="builtin:telea", prompt="a cat", negative_prompt="dog", seed=42, steps=60,
                             scheduler="Euler a", guidance=12.0, strength=0.5, batch_size=4, width=512, height=512)
    service = GenerationService()
    assert service.capabilities("builtin:telea").kind == CLASSICAL
    checked = service.check(GenerationRequest(asked, image, mask)).params
    defaults = GenerationParams()
    assert (checked.seed, checked.batch_size, checked.prompt, checked.negative_prompt) == (0, 1, "", "")
    assert (checked.steps, checked.scheduler, checked.guidance, checked.strength) == (
        defaults.steps, defaults.scheduler, defaults.guidance, 1.0)
    assert (checked.width, checked.height, checked.mask_blur) == (None, None, asked.mask_blur)
    record = service.run(GenerationRequest(asked, image, mask))
    assert record.params == checked and record.seeds == [0] and len(record.candidates) == 1
    path = save_candidate(tmp_path / "telea.png", record, 0)
    text = Image.open(path).info[A1111_KEY]
    assert not SAMPLING & set(parse_fields(text)), text
    assert read_params(path) == candidate_params(record, 0)


def test_candidate_k_is_seed_s_plus_k_batch_1(photo):
    image, mask = photo
    service = GenerationService(counting_loader(FakeBackend())[0])
    record = service.run(GenerationRequest(GenerationParams(model="m", seed=2**64 - 2, batch_size=3), image, mask))
    assert record.params.batch_size == 3 and record.seeds == [2**64 - 2, 2**64 - 1, 0]  # 64-bit, wraps past 2**64 - 1
    for k, seed in enumerate(record.seeds):
        alone = candidate_params(record, k)
        assert (alone.seed, alone.batch_size) == (seed, 1) and alone.replace(seed=0, batch_size=3) == record.params.replace(seed=0)
        rerun = service.run(GenerationRequest(alone, image, mask))
        assert np.array_equal(rerun.candidates[0], record.candidates[k])
    with pytest.raises(IndexError):
        candidate_params(record, 3)


# -- running: cache, lock, typed errors ------------------------------------------------------------
def test_one_backend_is_cached_per_model_and_options(photo):
    image, mask = photo
    loader, calls = counting_loader(FakeBackend())
    service = GenerationService(loader)
    request = GenerationRequest(GenerationParams(model="m", seed=1), image, mask, options=LoadOptions(device="auto"))
    service.run(request)
    service.run(GenerationRequest(request.params, image, mask, options=LoadOptions()))  # "auto" is the default device
    assert len(calls) == 1 and service.is_loaded("m", LoadOptions(device=None))
    service.run(GenerationRequest(request.params, image, mask, options=LoadOptions(low_memory=True)))
    assert len(calls) == 2 and calls[1][1].low_memory
    service.release()
    assert not service.is_loaded("m", LoadOptions(low_memory=True))
    service.preload("m", LoadOptions(low_memory=True))
    assert len(calls) == 3


def test_runs_from_several_threads_are_serialised(photo):
    image, mask = photo
    backend = FakeBackend(delay=0.05)
    service = GenerationService(counting_loader(backend)[0])
    records = []

    def run(seed):
        records.append(service.run(GenerationRequest(GenerationParams(model="m", seed=seed), image, mask)))

    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(records) == 4 and not backend.overlapped
    assert sorted(r.seeds[0] for r in records) == [0, 1, 2, 3]


def test_memory_errors_become_typed_and_free_the_backend(photo):
    image, mask = photo
    loader, calls = counting_loader(FakeBackend(error=MemoryError("no room")))
    service = GenerationService(loader)
    with pytest.raises(GpuOutOfMemory) as err:
        service.run(GenerationRequest(GenerationParams(model="m", seed=1), image, mask))
    assert err.value.title == "Out of memory" and not err.value.bad_input
    assert not service.is_loaded("m")
    cancelled = GenerationService(counting_loader(FakeBackend())[0])
    with pytest.raises(Cancelled):
        cancelled.run(GenerationRequest(GenerationParams(model="m", seed=1), image, mask), cancelled=lambda: True)


def test_importing_the_service_loads_no_torch_and_no_qt(tmp_path):
    """Even checking a diffusion request (configs and headers only) imports neither."""
    folder = tmp_path / "sd15"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": 9, "cross_attention_dim": 768}))
    code = """
import json, sys
import numpy as np
import app.service
from app.service import GenerationRequest, GenerationService, LoadOptions, save_candidate, candidate_params
from app.core.params import GenerationParams
image = np.zeros((32, 32, 3), np.uint8); mask = np.zeros((32, 32), np.uint8); mask[8:16, 8:16] = 255
service = GenerationService()
caps = service.capabilities(sys.argv[1])
service.check(GenerationRequest(GenerationParams(model=sys.argv[1], prompt="x"), image, mask, options=LoadOptions()))
service.run(GenerationRequest(GenerationParams(), image, mask))
print(json.dumps({"channels": caps.input_channels,
                  "heavy": sorted(m for m in ("torch", "diffusers", "transformers", "PySide6") if m in sys.modules)}))
"""
    out = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"channels": 9, "heavy": []}


# -- the "done when" of the issue: saved candidates re-run to the same pixels ----------------------------
def _rerun_from_png(service: GenerationService, path: Path, image, mask) -> np.ndarray:
    recalled = read_params(path)
    assert recalled is not None and recalled.batch_size == 1
    record = service.run(GenerationRequest(recalled, image, mask, options=LoadOptions(device="cpu")))
    return record.candidates[0]


def test_window_and_cli_saved_candidates_rerun_to_identical_pixels(qtbot, tiny_inpaint_model, tmp_path):
    image_path, mask_path, image, mask = small_photo(tmp_path)
    params = GenerationParams(prompt="a red cup", model=str(tiny_inpaint_model), scheduler="Euler", steps=2,
                              seed=7, batch_size=2, width=256, height=256)
    k = 1

    # the window's way: the worker thread runs the service; the candidate is saved from the record
    service = GenerationService()  # shared with the re-runs below: the model loads once
    worker = GenerationWorker(service)
    rec = Recorder(worker)
    worker.start()
    try:
        assert worker.submit(GenerationRequest(params, image, mask, options=LoadOptions(device="cpu")))
        qtbot.waitUntil(lambda: bool(rec.finished) or bool(rec.failed), timeout=60000)
        assert not rec.failed, rec.failed
    finally:
        worker.shutdown()
    record = rec.finished[0]
    window_png = save_candidate(tmp_path / "window.png", record, k)
    assert (read_params(window_png).seed, read_params(window_png).batch_size) == (8, 1)
    assert np.array_equal(np.asarray(Image.open(window_png)), record.candidates[k])

    # the CLI's way: --samples 2 writes out-0.png and out-1.png
    assert cli_main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(tmp_path / "out.png"),
                     "--model", str(tiny_inpaint_model), "--prompt", "a red cup", "--scheduler", "Euler", "--steps", "2",
                     "--seed", "7", "--samples", "2", "--width", "256", "--height", "256", "--device", "cpu"]) == 0
    cli_png = tmp_path / f"out-{k}.png"
    assert read_params(cli_png) == read_params(window_png)  # one rule, two front ends

    for png in (window_png, cli_png):
        assert np.array_equal(_rerun_from_png(service, png, image, mask), np.asarray(Image.open(png)))
    assert np.array_equal(np.asarray(Image.open(cli_png)), record.candidates[k])


def test_a_service_that_compiles_loads_every_model_with_the_compiled_step(tmp_path):
    """`serve --compile` (and a Ray replica of such a server): whatever a request's options say,
    the model is loaded — and found loaded — with the compiled step; the CLI flag reaches it."""
    from app.cli.main import build_parser
    from app.inference.registry import LoadOptions
    from app.server.app import create_app
    from app.server.config import ServerConfig
    from app.service.generation import GenerationService

    loaded = []

    def loader(ref, options):
        loaded.append(options)
        return object()

    service = GenerationService(loader, compile_step=True)
    service.preload("some-model", LoadOptions())
    assert [o.compile for o in loaded] == [True]
    assert service.is_loaded("some-model", LoadOptions())  # a plain request finds the compiled model
    assert not GenerationService(loader).compile_step
    ns = build_parser().parse_args(["serve", "--compile", "--data", str(tmp_path)])
    assert ns.compile
    app = create_app(ServerConfig(data_dir=tmp_path, model="builtin:telea", compile=True))
    try:
        assert app.state.service.compile_step
    finally:
        app.state.queue.stop()
