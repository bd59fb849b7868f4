"""Live painting (issue 31) on the session, without a window: superseding runs, a live layer
outside the history until Apply, Apply equal to a normal run, few-step recommendations."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from doubles import paint_seeds
from app.core import imageio
from app.core.errors import EmptyMaskError
from app.core.few_step import few_step_kind, recommended
from app.core.params import GenerationParams
from app.editor.session import EditorSession
from app.editor.worker import GenerationWorker
from app.inference.engine import Cancelled
from app.inference.registry import LoadOptions


class GatedBackend:
    """Four steps, each waiting until the test opens the gate (or the run is cancelled), so the
    test decides when a run is in flight; paints the seed into the mask."""

    name = "test:gated"
    native_resolution = True

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()

    def generate(self, request, progress, cancelled):
        self.entered.set()
        for step in range(1, 5):
            while not self.gate.wait(0.005):
                if cancelled():
                    raise Cancelled()
            if cancelled():
                raise Cancelled()
            progress(step, 4, None)
        return paint_seeds(request)


def opened(session: EditorSession, shape=(48, 64, 3)) -> np.ndarray:
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    session.open_image(imageio.LoadedImage(pixels), None, "test")
    return pixels


def stroke(session: EditorSession, x: float, y: float = 20.0) -> None:
    doc = session.document
    doc.begin_stroke()
    doc.stroke_segment((x, y), (x + 6, y), 4.0)
    doc.end_stroke()


@pytest.fixture
def gated(qtbot):
    backend = GatedBackend()
    s = EditorSession(GenerationWorker(lambda *a: backend))
    yield s, backend
    backend.gate.set()
    s.shutdown()


def test_a_burst_of_strokes_supersedes_and_stays_out_of_history(qtbot, gated):
    session, backend = gated
    live = session.live
    opened(session)
    live.start(lambda: (GenerationParams(prompt="grass", model="test", seed=-1, batch_size=3), LoadOptions()))
    assert live.seed >= 0  # fixed for the whole Live session
    stroke(session, 4)
    qtbot.waitUntil(backend.entered.is_set, timeout=20000)  # a run is in flight, blocked at its first step
    for i in range(9):  # the rest of a burst of 10 strokes, each while a run is in flight
        stroke(session, 8 + 4 * i)
    started_at_last_stroke = live.started
    backend.gate.set()
    qtbot.waitUntil(lambda: live.record is not None and not live.busy, timeout=20000)
    assert live.started - started_at_last_stroke <= 2  # the superseded runs were cancelled, not queued
    assert live.cancelled >= 1
    # the live result is of the last stroke's mask, at the fixed seed, one candidate
    rec = live.record
    assert rec.params.seed == live.seed and len(rec.candidates) == 1
    assert (rec.candidates[0][20, 38:50] == live.seed % 256).all()  # the last stroke's pixels are repainted
    # never in the history or the generations until Apply
    doc = session.document
    assert doc.undo_stack.count() == 10 and doc.generations == []
    assert session.generate(GenerationParams(prompt="x", model="test")).title == "Live mode is on"
    before = doc.pixels.copy()
    assert live.apply() is True
    assert doc.undo_stack.count() == 11 and doc.generations == [rec] and rec.applied == 0
    assert doc.undo_stack.text(10) == f"Apply live result (seed {live.seed})"
    assert live.record is None and not live.busy  # Apply is no edit to regenerate from
    doc.undo_stack.undo()
    assert np.array_equal(doc.pixels, before)


def test_live_off_cancels_and_drops_the_layer(qtbot, gated):
    session, backend = gated
    live = session.live
    opened(session)
    session.document.fill_rect((8, 8, 16, 16))
    shown = []
    live.updated.connect(shown.append)
    live.start(lambda: (GenerationParams(prompt="grass", model="test"), LoadOptions()))
    qtbot.waitUntil(backend.entered.is_set, timeout=20000)
    live.stop()
    qtbot.waitUntil(lambda: not live.busy, timeout=20000)
    assert live.cancelled == 1 and live.record is None and shown == []
    assert live.apply() is None and session.document.undo_stack.count() == 1
    backend.gate.set()
    assert session.generate(GenerationParams(prompt="grass", model="test", seed=5)) is None  # Generate is back


def test_a_run_for_a_replaced_image_is_dropped(qtbot, gated):
    session, backend = gated
    live = session.live
    opened(session)
    session.document.fill_rect((8, 8, 16, 16))
    failures = []
    live.failed.connect(lambda title, text: failures.append(title))
    live.start(lambda: (GenerationParams(prompt="grass", model="test"), LoadOptions()))
    qtbot.waitUntil(backend.entered.is_set, timeout=20000)
    opened(session, (32, 40, 3))  # another image while the run is in flight; it has no mask yet
    backend.gate.set()
    qtbot.waitUntil(lambda: not live.busy and bool(failures), timeout=20000)
    assert live.record is None and live.cancelled == 1 and set(failures) == {EmptyMaskError.title}


def test_few_step_recommendations_by_lora_tag_or_model_name():
    assert recommended(GenerationParams(prompt="a cat <lora:lcm-lora-sdv1-5:1>")).scheduler == "LCM"
    hyper = few_step_kind(GenerationParams(prompt="x <lora:Hyper-SD15-4steps-lora:1>"))
    assert (hyper.kind, hyper.scheduler, hyper.steps, hyper.guidance) == ("Hyper-SD", "TCD", 4, 1.0)
    assert few_step_kind(GenerationParams(prompt="x", model="models/TCD-merged.safetensors")).scheduler == "TCD"
    assert few_step_kind(GenerationParams(prompt="x <lora:film:1> <lora:lcm:0>")) is None  # weight 0 is off
    done = recommended(GenerationParams(prompt="<lora:lcm-lora:1>"))
    assert recommended(done) is None  # already applied: nothing to change
    recalled = GenerationParams(prompt="<lora:lcm-lora:1>", scheduler="LCM Karras", steps=8, guidance=1.0)
    assert recommended(recalled) is None  # a recalled few-step run keeps its own steps and guidance


@pytest.fixture(scope="module")
def lcm_models(tmp_path_factory):
    """A models folder with a random LCM-style LoRA for the tiny model (its name is what counts)."""
    from tinymodels import save_diffusers_lora

    root = tmp_path_factory.mktemp("live_models")
    (root / "Lora" / "lcm-lora-tiny").mkdir(parents=True)
    save_diffusers_lora(root / "Lora" / "lcm-lora-tiny", seed=5)
    return root


def test_apply_of_the_live_result_equals_a_normal_run_bit_exact(qtbot, tiny_inpaint_model, lcm_models, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(lcm_models))
    session = EditorSession(GenerationWorker())
    try:
        opened(session, (64, 64, 3))
        params = recommended(GenerationParams(prompt="a stone wall <lora:lcm-lora-tiny:1>", model=str(tiny_inpaint_model)))
        assert (params.scheduler, params.steps, params.guidance) == ("LCM", 6, 1.5)
        params = params.replace(steps=2, width=256, height=256)  # the smallest model size: quick on a CPU
        options = LoadOptions(device="cpu")
        live = session.live
        stroke(session, 20, 30)
        live.start(lambda: (params, options))
        qtbot.waitUntil(lambda: live.record is not None and not live.busy, timeout=60000)
        rec = live.record
        assert rec.params.seed == live.seed and rec.params.scheduler == "LCM"
        doc = session.document
        assert live.apply() is True and doc.generations == [rec]
        applied = doc.pixels.copy()
        doc.undo_stack.undo()
        live.stop()
        assert session.generate(rec.params, options) is None
        with qtbot.waitSignal(session.generation_finished, timeout=60000) as done:
            pass
        normal = done.args[0]
        assert normal.params == rec.params
        assert np.array_equal(normal.candidates[0], rec.candidates[0]) and np.array_equal(normal.candidates[0], applied)
    finally:
        session.shutdown()


def test_tcd_sampler_runs_on_the_tiny_model(tiny_inpaint_model):
    from app.inference.engine import BackendRequest
    from app.inference.registry import load_backend

    backend = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    params = GenerationParams(prompt="a wall", scheduler="TCD", steps=2, guidance=1.5, seed=3)
    (out,) = backend.generate(BackendRequest(image, mask, params, (3,)), lambda *a: None, lambda: False)
    assert out.shape == image.shape and not np.array_equal(out[16:48, 16:48], image[16:48, 16:48])


def test_live_runs_on_a_generation_server(qtbot, tmp_path, tiny_inpaint_model):
    """The remote backend is just another service backend: Live needs nothing of its own."""
    from app.inference.remote import make_ref
    from app.server.config import ServerConfig
    from serverutil import running_server

    config = ServerConfig(data_dir=tmp_path / "serve", model=str(tiny_inpaint_model), tokens=("t0ken",))
    with running_server(config) as server:
        session = EditorSession(GenerationWorker())
        try:
            opened(session, (64, 64, 3))
            stroke(session, 20, 30)
            params = GenerationParams(prompt="moss", model=make_ref(server.url), scheduler="LCM", steps=2, guidance=1.5,
                                      width=256, height=256)
            session.live.start(lambda: (params, LoadOptions(server_token="t0ken")))
            qtbot.waitUntil(lambda: session.live.record is not None and not session.live.busy, timeout=120000)
            rec = session.live.record
            assert rec.backend == make_ref(server.url) and rec.params.seed == session.live.seed
            assert session.document.undo_stack.count() == 1 and session.document.generations == []
        finally:
            session.shutdown()
