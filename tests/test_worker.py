"""GenerationWorker on its own QThread: results, throttled progress, cancel, errors, backend cache."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.inference.engine import Cancelled
from app.inference.errors import GpuOutOfMemory, ModelLoadError
from app.inference.registry import LoadOptions
from app.core.params import GenerationParams, ParamError
from app.editor.worker import PROGRESS_INTERVAL_S, GenerationWorker, error_text
from app.service import GenerationRequest
from worker_recorder import Recorder


class FakeBackend:
    """Native-resolution backend: ``steps`` steps of ``delay`` s each; fills the mask with grey."""

    name = "test:fake"
    native_resolution = True

    def __init__(self, steps=5, delay=0.0, error: BaseException | None = None):
        self.steps, self.delay, self.error = steps, delay, error
        self.threads: set[int] = set()

    def generate(self, request, progress, cancelled):
        self.threads.add(threading.get_ident())
        if self.error is not None:
            raise self.error
        for i in range(self.steps):
            if cancelled():
                raise Cancelled()
            if self.delay:
                time.sleep(self.delay)
            progress(i + 1, self.steps, np.zeros((8, 8, 3), np.uint8))
        out = request.image.copy()
        out[request.mask > 0] = 128
        return [out for _ in request.seeds]


@pytest.fixture
def image_and_mask():
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    mask = np.zeros((96, 128), np.uint8)
    mask[30:60, 40:90] = 255
    return image, mask


def start(qtbot, backend=None, loader=None):
    """A started worker whose service loads ``backend`` (or calls ``loader``), with its recorder."""
    calls = []

    def factory(model, options):
        calls.append((model, options))
        return backend if loader is None else loader(model, options)

    worker = GenerationWorker(factory)
    worker.start()
    rec = Recorder(worker)
    return worker, rec, calls


def request(image, mask, **params):
    return GenerationRequest(GenerationParams(**params), image, mask)


def test_runs_on_the_worker_thread_and_caches_the_backend(qtbot, image_and_mask):
    image, mask = image_and_mask
    backend = FakeBackend()
    worker, rec, calls = start(qtbot, backend)
    try:
        for seed in (1, 2):
            assert worker.submit(request(image, mask, seed=seed, batch_size=2))
            qtbot.waitUntil(lambda n=seed: len(rec.finished) == n, timeout=5000)
        record = rec.finished[-1]
        assert record.seeds == [2, 3] and record.params.batch_size == 2
        assert np.all(record.candidates[0][40, 50] == 128) and np.array_equal(record.candidates[0][0], image[0])
        assert backend.threads and threading.main_thread().ident not in backend.threads  # ran off the GUI thread
        assert len(calls) == 1, "the same model must not be loaded twice"
        assert not worker.busy
        assert rec.threads == {threading.main_thread().ident}  # signals delivered on the GUI thread
    finally:
        worker.shutdown()


def test_progress_is_throttled_but_first_and_last_steps_arrive(qtbot, image_and_mask):
    image, mask = image_and_mask
    worker, rec, _ = start(qtbot, FakeBackend(steps=60, delay=0.005))
    try:
        t0 = time.perf_counter()
        worker.submit(request(image, mask, seed=1))
        qtbot.waitUntil(lambda: bool(rec.finished), timeout=10000)
        elapsed = time.perf_counter() - t0
        steps = [p[0] for p in rec.progress]
        assert steps[0] == 1 and steps[-1] == 60 and all(p[1] == 60 for p in rec.progress)
        assert len(steps) <= elapsed / PROGRESS_INTERVAL_S + 3, f"{len(steps)} signals in {elapsed:.2f} s"
        assert rec.progress[-1][2] == pytest.approx(0.0, abs=1e-6)  # ETA 0 at the end
        assert isinstance(rec.progress[0][3], np.ndarray)  # preview travels with the signal
    finally:
        worker.shutdown()


def test_cancel_stops_within_a_step_and_worker_stays_usable(qtbot, image_and_mask):
    image, mask = image_and_mask
    backend = FakeBackend(steps=500, delay=0.01)
    worker, rec, _ = start(qtbot, backend)
    try:
        worker.submit(request(image, mask, seed=1))
        qtbot.waitUntil(lambda: bool(rec.progress), timeout=5000)
        t0 = time.perf_counter()
        worker.cancel()
        qtbot.waitUntil(lambda: bool(rec.cancelled), timeout=5000)
        assert time.perf_counter() - t0 < 1.0
        assert not rec.finished and not worker.busy
        backend.steps = 2
        worker.submit(request(image, mask, seed=1))
        qtbot.waitUntil(lambda: bool(rec.finished), timeout=5000)
    finally:
        worker.shutdown()


def test_one_run_at_a_time(qtbot, image_and_mask):
    image, mask = image_and_mask
    worker, rec, _ = start(qtbot, FakeBackend(steps=50, delay=0.01))
    try:
        assert worker.submit(request(image, mask, seed=1))
        assert not worker.submit(request(image, mask, seed=2))
        qtbot.waitUntil(lambda: bool(rec.finished), timeout=5000)
        assert len(rec.finished) == 1 and rec.finished[0].params.seed == 1
    finally:
        worker.shutdown()


@pytest.mark.parametrize(
    "error,title,oom",
    [
        (GpuOutOfMemory("cuda", low_memory_active=False), "Out of memory", True),
        (ModelLoadError("model.safetensors: missing file unet/config.json"), "Cannot load the model", False),
        (RuntimeError("boom"), "Generation failed", False),
    ],
)
def test_errors_reach_the_gui_as_messages(qtbot, image_and_mask, error, title, oom):
    image, mask = image_and_mask
    worker, rec, _ = start(qtbot, FakeBackend(error=error))
    try:
        worker.submit(request(image, mask, seed=1))
        qtbot.waitUntil(lambda: bool(rec.failed), timeout=5000)
        assert rec.failed[0][0] == title and str(error) in rec.failed[0][1]
        assert bool(rec.oom) == oom and not worker.busy
    finally:
        worker.shutdown()


def test_empty_mask_and_bad_params_fail_cleanly(qtbot, image_and_mask):
    image, mask = image_and_mask
    worker, rec, _ = start(qtbot, FakeBackend())
    try:
        worker.submit(request(image, np.zeros_like(mask), seed=1))
        qtbot.waitUntil(lambda: bool(rec.failed), timeout=5000)
        assert rec.failed[0][0] == "Nothing to repaint"
        worker.submit(request(image, mask, seed=1, steps=0))
        qtbot.waitUntil(lambda: len(rec.failed) == 2, timeout=5000)
        assert rec.failed[1][0] == "Invalid parameter" and "steps" in rec.failed[1][1]
    finally:
        worker.shutdown()


def test_factory_failure_is_reported_and_retried_next_time(qtbot, image_and_mask):
    image, mask = image_and_mask
    attempts = []

    def factory(*args):
        attempts.append(args)
        if len(attempts) == 1:
            raise ModelLoadError("weights missing")
        return FakeBackend()

    worker, rec, _ = start(qtbot, loader=factory)
    try:
        worker.submit(request(image, mask, seed=1))
        qtbot.waitUntil(lambda: bool(rec.failed), timeout=5000)
        worker.submit(request(image, mask, seed=1))
        qtbot.waitUntil(lambda: bool(rec.finished), timeout=5000)
        assert len(attempts) == 2
    finally:
        worker.shutdown()


def test_error_text_comes_from_the_typed_errors():
    assert error_text(ParamError("steps", 0, "from 1 to 150"))[0] == "Invalid parameter"
    from app.inference.errors import DeviceError, MissingDependencyError, PickleRefusedError

    assert error_text(DeviceError("cuda is not available")) == ("Device not available", "cuda is not available")
    assert error_text(PickleRefusedError("model.ckpt: pickle refused"))[0] == "Cannot load the model"
    title, message = error_text(MissingDependencyError("No module named 'diffusers'"))
    assert "diffusion" in title.lower() and "classical" in message
    assert error_text(RuntimeError("boom")) == ("Generation failed", "RuntimeError: boom")


def test_memory_and_import_errors_become_typed_errors(qtbot, image_and_mask):
    """A MemoryError while running and an ImportError while loading reach the window typed."""
    image, mask = image_and_mask
    worker, rec, _ = start(qtbot, FakeBackend(error=MemoryError("no room")))
    try:
        worker.submit(request(image, mask, seed=1))
        qtbot.waitUntil(lambda: bool(rec.failed), timeout=5000)
        assert rec.failed[0][0] == "Out of memory" and "no room" in rec.failed[0][1] and rec.oom
    finally:
        worker.shutdown()

    def missing(model, options):
        raise ImportError("No module named 'diffusers'")

    worker, rec, _ = start(qtbot, loader=missing)
    try:
        worker.submit(request(image, mask, seed=1))
        qtbot.waitUntil(lambda: bool(rec.failed), timeout=5000)
        assert rec.failed[0][0] == "Diffusion support is not installed" and "builtin:telea" in rec.failed[0][1]
    finally:
        worker.shutdown()


def test_options_reach_the_factory_and_change_the_cache_key(qtbot, image_and_mask):
    image, mask = image_and_mask
    calls = []

    def factory(model, options):
        calls.append((model, options))
        return FakeBackend()

    worker = GenerationWorker(factory)
    rec = Recorder(worker)
    worker.start()
    try:
        p = GenerationParams(seed=1, model="m")
        safe = LoadOptions(device="cpu", low_memory=True, safety_checker=True)
        plain = LoadOptions(device="cpu")
        for n, options in enumerate([safe, safe, plain], 1):
            worker.submit(GenerationRequest(p, image, mask, options=options))
            qtbot.waitUntil(lambda n=n: len(rec.finished) == n, timeout=5000)
        assert calls == [("m", safe), ("m", plain)]
    finally:
        worker.shutdown()
