"""Issue 29: the same bad value is refused the same way by every front end. Each case runs
through the CLI, every HTTP API shape (A1111, OpenAI, Segmind, Appypie, Replicate-style
predictions, the remote editor's backend route) and the window's panel → session path; each
answer must name that front end's own field (its `FrontEnd` name map) and carry the status of a
bad input from the service's one table (`app.service.errors.OUTCOMES`): CLI exit code, HTTP status.

All of them check with the same model: an SD 1.5 folder as far as its configs tell (a diffusion
model, so a prompt is required); every case is refused before any weight would load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli.generate import CLI
from app.cli.main import main
from app.core.errors import BAD_INPUT
from app.editor.session import EditorSession
from app.editor.worker import GenerationWorker
from app.server import a1111, appypie, backend_route, openai, predictions, segmind
from app.server.config import ServerConfig
from app.service.errors import BACKEND, HTTP, OUTCOMES
from app.service.fields import build
from app.widgets.panel_names import PANEL
from doubles import SeedBackend
from serverutil import b64, centre_mask, running_server, scene

#: GenerationParams field → a value every front end must refuse (None: the field left out).
CASES = {
    "steps": 0,
    "guidance": 99.0,
    "strength": 0.0,
    "seed": -5,
    "batch_size": 9,
    "width": 100,
    "scheduler": "Euler b",
    "prompt": None,  # missing, with a diffusion model
}
GOOD = {"prompt": "a cat"}


@pytest.fixture(scope="module")
def sd15(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "sd15"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": 9, "cross_attention_dim": 768}))
    return folder


@pytest.fixture(scope="module")
def server(sd15, tmp_path_factory):
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("serve"), model=str(sd15))
    with running_server(config) as running:
        yield running


def _given(field: str) -> dict:
    """The good fields with ``field`` set to its bad value (or left out)."""
    fields = dict(GOOD)
    fields.pop(field, None)
    if CASES[field] is not None:
        fields[field] = CASES[field]
    return fields


def _keyed(front, fields: dict) -> dict:
    return {front.of(k): v for k, v in fields.items()}


def _a1111(fields):
    return "/sdapi/v1/img2img", {"init_images": [b64(scene())], "mask": b64(centre_mask()), **_keyed(a1111.NAMES, fields)}


def _openai(fields):
    body = _keyed(openai.NAMES, {k: v for k, v in fields.items() if k != "width"})
    if "width" in fields:
        body["size"] = f"{fields['width']}x512"
    return "/v1/images/generations", body


def _segmind(fields):
    return "/v1/sd1.5-inpainting", {"image": b64(scene()), "mask": b64(centre_mask()), **_keyed(segmind.NAMES, fields)}


def _appypie(fields):
    return "/getImage", {"imageUrl": b64(scene()), "maskUrl": b64(centre_mask()), **_keyed(appypie.NAMES, fields)}


def _predictions(fields):
    return "/v1/predictions", {"input": {"image": b64(scene()), "mask": b64(centre_mask()),
                                         **_keyed(predictions.NAMES, fields)}}


def _backend(fields):
    return "/v1/backend/generate", {"image": b64(scene()), "mask": b64(centre_mask()), "seeds": [1], "params": fields}


#: API shape → (its names, how it sends the fields, the table's column, fields it has no way to send).
SHAPES = {
    "a1111": (a1111.NAMES, _a1111, HTTP, ()),
    "openai": (openai.NAMES, _openai, HTTP, ()),
    "segmind": (segmind.NAMES, _segmind, HTTP, ()),
    "appypie": (appypie.NAMES, _appypie, HTTP, ("batch_size",)),  # one image per request
    "predictions": (predictions.NAMES, _predictions, HTTP, ()),
    "backend": (backend_route.NAMES, _backend, BACKEND, ()),
}


@pytest.mark.parametrize("field", sorted(CASES))
def test_every_api_shape_names_its_own_field_with_the_tables_status(server, field):
    answered = {}
    for shape, (names, send, column, unsendable) in SHAPES.items():
        if field in unsendable:
            continue
        path, body = send(_given(field))
        response = server.post(path, json=body)
        error = response.json()
        message = error["error"]["message"] if shape == "openai" else error.get("detail", error.get("error"))
        answered[shape] = (response.status_code, error.get("field"), names.of(field) in message)
        assert answered[shape] == (OUTCOMES[BAD_INPUT][column], names.of(field), True), (shape, error)
    assert len(answered) >= 5


def _cli_args(field: str, sd15: Path, tmp_path: Path) -> list[str]:
    option_value = {"batch_size": "--samples"}
    args = ["inpaint", "-i", str(tmp_path / "in.png"), "-m", str(tmp_path / "mask.png"), "-o", str(tmp_path / "out.png"),
            "--model", str(sd15)]
    for name, value in _given(field).items():
        args += [option_value.get(name, CLI.of(name)), str(value)]
    return args


@pytest.mark.parametrize("field", sorted(CASES))
def test_the_cli_names_its_option_with_the_tables_exit_code(field, sd15, tmp_path, capsys):
    Image.fromarray(scene()).save(tmp_path / "in.png")
    Image.fromarray(centre_mask()).save(tmp_path / "mask.png")
    code = main(_cli_args(field, sd15, tmp_path))
    err = capsys.readouterr().err
    assert code == OUTCOMES[BAD_INPUT]["cli"]
    assert err.startswith(f"inpaint-studio: error: {CLI.of(field)} "), err
    assert not (tmp_path / "out.png").exists()


@pytest.fixture
def session(qtbot):
    s = EditorSession(GenerationWorker(lambda *a: SeedBackend()))
    yield s
    s.shutdown()


def test_the_window_names_its_panel_label(session, sd15):
    from app.core.imageio import LoadedImage

    session.open_image(LoadedImage(scene()), None, "test")
    session.document.fill_rect((8, 8, 16, 16))
    for field in sorted(CASES):
        params = build(PANEL, _given(field) | {"model": str(sd15)})
        problem = session.check(params, PANEL)
        assert problem is not None and problem.level == "error", field
        assert problem.text.startswith((f"{PANEL.of(field)} = ", f"{PANEL.of(field)} is missing")), (field, problem.text)
    assert session.check(build(PANEL, GOOD | {"model": str(sd15)}), PANEL) is None
    assert not session.generating and np.array_equal(session.document.pixels, scene())
