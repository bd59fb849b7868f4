"""Control layers in the document (app/editor/control_layer.py): painting, undo, expand, projects,
and what a generation gets. QtCore only; the window's panel is in test_control_panel.py."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doubles import SeedBackend
from app.core import imageio, outpaint
from app.core.control_preprocess import PreprocessorModelMissing, preprocess
from app.core.geometry import Bounds
from app.core.guides import ControlUnit
from app.core.params import GenerationParams
from app.editor.document import Document
from app.editor.snapshot import project_state
from app.editor.session import EditorSession
from app.editor.worker import GenerationWorker
from app.storage.project import ProjectError, load_project, load_project_bytes, project_bytes


def photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).integers(0, 60, (h, w, 3), dtype=np.uint8)
    img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] += 150  # a bright square: edges to find
    return img


def document(pixels=None) -> Document:
    doc = Document()
    doc.set_image(photo() if pixels is None else pixels)
    return doc


@pytest.fixture
def session(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))
    s = EditorSession(GenerationWorker(lambda *a: SeedBackend()))
    yield s
    s.shutdown()


def test_paint_and_erase_on_a_control_layer_are_undoable_byte_for_byte(qtbot):
    doc = document()
    layer = doc.controls.add()
    assert layer.image.shape == (40, 56, 3) and not layer.image.any() and doc.controls.active is layer
    mask_before = doc.mask.copy()
    doc.controls.begin_stroke("paint")
    doc.controls.stroke_segment((5, 5), (30, 20), 3)
    assert doc.controls.end_stroke()
    painted = layer.image.copy()
    assert painted[12, 17].tolist() == [255, 255, 255] and painted[35, 50].tolist() == [0, 0, 0]
    assert np.array_equal(doc.mask, mask_before)  # the mask is untouched
    doc.controls.begin_stroke("erase")
    doc.controls.stroke_segment((5, 5), (30, 20), 1.5)
    doc.controls.end_stroke()
    assert layer.image[12, 17].tolist() == [0, 0, 0]
    doc.undo_stack.undo()
    assert np.array_equal(layer.image, painted)
    doc.undo_stack.undo()
    assert not layer.image.any()
    doc.undo_stack.redo()
    assert np.array_equal(layer.image, painted)
    assert [doc.undo_stack.text(i) for i in range(3)] == ["Add control layer 1", "Paint on control layer", "Erase on control layer"]


def test_unit_settings_are_undo_steps_and_a_run_of_ticks_is_one(qtbot):
    doc = document()
    layer = doc.controls.add(model="a")
    doc.mark_saved()
    for weight in (0.9, 0.8, 0.7):  # a spin box's ticks: one step
        doc.controls.update(layer, weight=weight)
    assert doc.modified and doc.undo_stack.count() == 2 and doc.undo_stack.text(1) == "Control layer 1: weight"
    doc.controls.update(layer, opacity=0.2, visible=False)  # the view only: no step
    assert doc.undo_stack.count() == 2 and (layer.opacity, layer.visible) == (0.2, False)
    doc.controls.update(layer, model="b")
    doc.controls.update(layer, model="bc")  # typing a name: one step
    assert doc.undo_stack.count() == 3
    doc.undo_stack.undo()
    assert layer.model == "a" and layer.weight == 0.7
    doc.undo_stack.undo()
    assert layer.weight == 1.0 and not doc.modified
    doc.undo_stack.redo()
    doc.mark_saved()
    doc.controls.update(layer, weight=0.5)  # after a save the saved step stays as it was
    assert doc.undo_stack.count() == 3 and doc.modified
    doc.undo_stack.undo()
    assert layer.weight == 0.7 and not doc.modified


def test_preprocess_sets_the_module_in_the_same_undo_step(qtbot):
    doc = document()
    layer = doc.controls.add()
    doc.controls.preprocess(layer, "canny")
    assert layer.module == "canny" and doc.undo_stack.count() == 2
    doc.undo_stack.undo()
    assert layer.module == "none" and not layer.image.any()
    doc.undo_stack.redo()
    assert layer.module == "canny" and layer.image.any()


def test_add_and_remove_are_undo_steps_that_keep_the_layer(qtbot):
    doc = document()
    first = doc.controls.add(module="scribble", model="m")
    second = doc.controls.add(np.full((10, 10), 200, np.uint8))  # any size and layout: fitted
    assert second.image.shape == (40, 56, 3) and (second.image == 200).all()
    assert doc.controls.remove(first) and doc.controls.layers == [second]
    doc.undo_stack.undo()
    assert doc.controls.layers == [first, second] and first.module == "scribble"
    doc.undo_stack.undo()
    assert doc.controls.layers == [first] and doc.controls.active is first
    doc.undo_stack.undo()
    assert doc.controls.layers == [] and doc.controls.active is None


def test_preprocess_from_the_image_and_from_a_selection(qtbot):
    doc = document()
    layer = doc.controls.add()
    assert doc.controls.preprocess(layer, "canny", low_threshold=50, high_threshold=100)
    assert np.array_equal(layer.image, preprocess("canny", doc.pixels, low_threshold=50, high_threshold=100))
    assert layer.module == "canny"
    doc.undo_stack.undo()
    assert not layer.image.any() and doc.undo_stack.count() == 2
    box = Bounds(0, 0, 28, 20)  # the top-left quarter only
    assert doc.controls.preprocess(layer, "softedge", region=box)
    assert np.array_equal(layer.image[box.slices], preprocess("softedge", doc.pixels[box.slices]))
    assert not layer.image[20:, :].any() and not layer.image[:, 28:].any()
    with pytest.raises(PreprocessorModelMissing):
        doc.controls.preprocess(layer, "depth")


def test_expanding_the_canvas_expands_the_layers_and_undo_restores_them(qtbot):
    doc = document()
    layer = doc.controls.add()
    doc.controls.preprocess(layer, "canny")
    before = layer.image.copy()
    assert doc.expand_canvas(outpaint.Expansion(left=8, bottom=4))
    assert layer.image.shape == (44, 64, 3) == doc.pixels.shape
    assert np.array_equal(layer.image[0:40, 8:64], before) and not layer.image[:, :8].any()
    doc.undo_stack.undo()
    assert np.array_equal(layer.image, before)
    doc.undo_stack.redo()
    assert layer.image.shape == (44, 64, 3)


def test_an_upscale_scales_the_layers_with_the_canvas_and_undo_restores_them(qtbot):
    doc = document()
    layer = doc.controls.add()
    doc.controls.preprocess(layer, "canny")
    before = layer.image.copy()
    big = np.repeat(np.repeat(doc.pixels, 2, axis=0), 2, axis=1)
    assert doc.resize_canvas(big, np.zeros(big.shape[:2], np.uint8), None, (0, 0), "Upscale ×2")
    assert layer.image.shape == (80, 112, 3) == doc.pixels.shape
    doc.undo_stack.undo()
    assert np.array_equal(layer.image, before) and doc.pixels.shape == (40, 56, 3)
    doc.undo_stack.redo()
    assert layer.image.shape == (80, 112, 3)


def test_opening_an_image_drops_the_layers(qtbot):
    doc = document()
    doc.controls.add()
    doc.set_image(photo(seed=1))
    assert len(doc.controls) == 0 and doc.controls.active is None


def test_project_round_trip_is_bit_exact_and_old_projects_open(qtbot, tmp_path):
    doc = document()
    a = doc.controls.add(module="scribble", model="control_v11p_sd15_scribble", weight=0.7, start=0.1, end=0.9, opacity=0.3)
    doc.controls.begin_stroke()
    doc.controls.stroke_segment((3, 3), (40, 30), 2.5, 0.5)  # soft edge: grey levels too
    doc.controls.end_stroke()
    b = doc.controls.add(photo(seed=5), module="none", model="tile", enabled=False, visible=False)
    data = project_bytes(project_state(doc, GenerationParams(prompt="p")))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert {"controls/c0.png", "controls/c1.png"} <= set(names)
    state = load_project_bytes(data)
    other = Document()
    other.load_state(state)
    assert len(other.controls) == 2
    for mine, theirs in zip((a, b), other.controls.layers):
        assert np.array_equal(mine.image, theirs.image)
        assert mine.settings() == theirs.settings()
    # A file written before control layers (no "controls" key, no members) still opens.
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for item in zin.infolist():
            if item.filename.startswith("controls/"):
                continue
            content = zin.read(item.filename)
            if item.filename == "manifest.json":
                manifest = json.loads(content)
                del manifest["controls"]
                content = json.dumps(manifest).encode()
            zout.writestr(item, content)
    assert load_project_bytes(buf.getvalue()).controls == ()


def test_a_hostile_control_entry_is_refused_with_a_message(qtbot):
    doc = document()
    doc.controls.add()
    data = project_bytes(project_state(doc))

    def with_manifest(edit) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(buf, "w") as zout:
            for item in zin.infolist():
                content = zin.read(item.filename)
                if item.filename == "manifest.json":
                    manifest = json.loads(content)
                    edit(manifest)
                    content = json.dumps(manifest).encode()
                zout.writestr(item, content)
        return buf.getvalue()

    cases = [
        (lambda m: m["controls"][0].update(weight=9), "weight"),
        (lambda m: m["controls"][0].update(module="x"), "unknown module"),
        (lambda m: m["controls"][0].update(image="mask.png"), "same image more than once"),
        (lambda m: m["controls"][0].update(image="current.png"), "same image more than once"),
        (lambda m: m.update(controls=[m["controls"][0]] * 5), "control layers are not valid"),
        (lambda m: m["controls"][0].update(enabled="yes"), "true or false"),
    ]
    for edit, message in cases:
        with pytest.raises(ProjectError, match=message):
            load_project_bytes(with_manifest(edit))


def test_generate_sends_the_enabled_layers_as_units_and_images(qtbot, session):
    pixels = photo()
    session.open_image(imageio.LoadedImage(pixels), None, "t")
    doc = session.document
    doc.fill_rect((10, 10, 8, 8))
    on = doc.controls.add(module="canny", model="control_v11p_sd15_canny", weight=0.8, start=0.0, end=0.5)
    doc.controls.preprocess(on, "canny")
    doc.controls.add(model="off", enabled=False)
    inpaint = doc.controls.add(module="inpaint", model="control_v11p_sd15_inpaint")
    submitted: list = []
    real_submit = session.worker.submit
    session.worker.submit = lambda request: (submitted.append(request), real_submit(request))[1]
    assert session.generate(GenerationParams(prompt="x", seed=1)) is None
    # No such ControlNets are installed here: the service refuses the run once it has the request.
    qtbot.waitUntil(lambda: submitted and not session.generating, timeout=20000)
    (request,) = submitted
    assert request.control_maps  # the layers are the finished maps: no preprocessor runs on them again
    assert request.params.controls == (ControlUnit("canny", "control_v11p_sd15_canny", 0.8, 0.0, 0.5),
                                       ControlUnit("inpaint", "control_v11p_sd15_inpaint", 1.0, 0.0, 1.0))
    assert len(request.control_images) == 2
    assert np.array_equal(request.control_images[0], on.image) and request.control_images[0] is not on.image
    assert np.array_equal(request.control_images[1], pixels)  # the picture as it is at the click; the mask marks it
    assert session.run_params.controls == request.params.controls
    assert not inpaint.image.any()  # the layer itself is not rewritten by a run


def test_an_enabled_layer_without_a_model_is_a_clear_problem(qtbot, session):
    session.open_image(imageio.LoadedImage(photo()), None, "t")
    session.document.fill_rect((10, 10, 8, 8))
    session.document.controls.add()
    problem = session.generate(GenerationParams(prompt="x"))
    assert problem is not None and "Control layer 1 has no ControlNet model" in problem.text
    session.document.controls.update(session.document.controls.active, enabled=False)
    with qtbot.waitSignal(session.generation_finished, timeout=20000):
        assert session.generate(GenerationParams(prompt="x")) is None


def test_autosave_includes_the_layers(qtbot, session, tmp_path):
    session.open_image(imageio.LoadedImage(photo()), None, "t")
    recovery = session.install_recovery(lambda: GenerationParams(prompt="p"))
    layer = session.document.controls.add(model="m")
    session.document.controls.preprocess(layer, "scribble")
    assert recovery.dirty
    assert recovery.autosave_now(wait=True)
    state = load_project(recovery.autosaver.path)
    assert len(state.controls) == 1 and np.array_equal(state.controls[0].image, layer.image)


OPS = st.sampled_from(["paint", "erase", "preprocess", "add", "remove", "weight", "undo", "redo", "expand", "save_load"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(OPS, st.integers(0, 10_000)), min_size=1, max_size=12))
def test_random_edits_keep_layers_document_sized_and_undo_exact(qtbot, ops):
    doc = document(pixels=photo(24, 32))
    doc.controls.add()
    history: dict[int, list[bytes]] = {}  # undo index → the layers' bytes there

    def layers_bytes() -> list:
        return [(layer.image.tobytes(), layer.module, layer.weight) for layer in doc.controls.layers]

    history[doc.undo_stack.index()] = layers_bytes()
    for op, n in ops:
        rng = np.random.default_rng(n)
        if op in ("paint", "erase") and doc.controls.active is not None:
            doc.controls.begin_stroke(op)
            p = tuple(rng.uniform(-4, 40, 4))
            doc.controls.stroke_segment(p[:2], p[2:], float(rng.uniform(0.5, 6)), float(rng.uniform(0, 1)))
            doc.controls.end_stroke()
        elif op == "preprocess" and doc.controls.active is not None:
            doc.controls.preprocess(doc.controls.active, ["canny", "scribble", "blur", "softedge"][n % 4])
        elif op == "add" and len(doc.controls) < 4:
            doc.controls.add()
        elif op == "weight" and doc.controls.active is not None:
            doc.controls.update(doc.controls.active, weight=(n % 21) / 10)
        elif op == "remove" and doc.controls.layers:
            doc.controls.remove(doc.controls.layers[n % len(doc.controls)])
        elif op == "undo" and doc.undo_stack.canUndo():
            doc.undo_stack.undo()
        elif op == "redo" and doc.undo_stack.canRedo():
            doc.undo_stack.redo()
        elif op == "expand" and doc.width < 64:
            doc.expand_canvas(outpaint.Expansion(left=n % 3, top=n % 2, right=1))
        elif op == "save_load":
            saved = layers_bytes()
            doc.load_state(load_project_bytes(project_bytes(project_state(doc))))
            assert layers_bytes() == saved
            history.clear()  # loading starts a new history
        for layer in doc.controls.layers:
            assert layer.image.shape == (doc.height, doc.width, 3) and layer.image.dtype == np.uint8
        index = doc.undo_stack.index()
        if op in ("undo", "redo") and index in history:
            assert layers_bytes() == history[index]  # undo/redo give back exactly those bytes
        # A new edit drops the redo branch: forget the states past it.
        history = {k: v for k, v in history.items() if k < index or op in ("undo", "redo")}
        history[index] = layers_bytes()


def test_a_stroke_on_a_control_layer_reruns_live_with_the_layer(qtbot, session):
    from app.service import LoadOptions

    session.open_image(imageio.LoadedImage(photo()), None, "t")
    doc = session.document
    doc.fill_rect((10, 10, 8, 8))
    submitted: list = []
    session.live.start(lambda: (GenerationParams(prompt="grass", model="test"), LoadOptions()))
    worker = session.live._worker
    real_submit = worker.submit
    worker.submit = lambda request: (submitted.append(request), real_submit(request))[1]
    qtbot.waitUntil(lambda: session.live.record is not None and not session.live.busy, timeout=20000)
    # Added after the first run: no such ControlNet is installed here, so runs with it are refused.
    layer = doc.controls.add(module="scribble", model="control_v11p_sd15_scribble")
    doc.controls.begin_stroke()
    doc.controls.stroke_segment((2, 30), (50, 30), 2)
    doc.controls.end_stroke()
    qtbot.waitUntil(lambda: bool(submitted) and not session.live.busy, timeout=20000)
    request = submitted[-1]
    assert request.params.controls == (ControlUnit("scribble", "control_v11p_sd15_scribble"),)
    assert np.array_equal(request.control_images[0], layer.image) and layer.image[30, 20].tolist() == [255, 255, 255]
    session.live.stop()
