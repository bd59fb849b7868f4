"""The window on a generation server (offscreen, a real uvicorn on 127.0.0.1): Generate →
Generation Server… tests and keeps the server, the picker lists its models, a remote run gives the
same pixels as the local model, a server that went away is a clear message with the mask and
prompt kept, and Generate works again once the server is back."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from doubles import shown_window
from app.core import imageio
from app.inference.remote import make_ref
from app.server.config import ServerConfig
from serverutil import running_server

TOKEN = "t0ken"


@pytest.fixture
def window(qtbot, tmp_path):
    w = shown_window(qtbot, tmp_path / "settings.ini")
    path = tmp_path / "photo.png"
    imageio.save_image(path, skimage.data.astronaut()[:320, :320])
    w.files.open_path(str(path))
    w.document.fill_rect((120, 120, 70, 50))
    yield w
    w.force_close()


def generate(qtbot, w, params):
    ended = []
    w.generation_finished.connect(ended.append)
    w.generation_failed.connect(lambda title, text: ended.append(f"{title}: {text}"))
    assert w.generation.generate(params)
    qtbot.waitUntil(lambda: bool(ended), timeout=120000)
    assert not isinstance(ended[0], str), ended[0]
    return ended[0]


def connect(w, url: str, token: str) -> tuple[bool, str]:
    dialog = w.open_server_dialog()
    dialog.url.setText(url)
    dialog.token.setText(token)
    ok = dialog.test()
    text = dialog.result.text()
    if ok:
        dialog.save()
    else:
        dialog.reject()
    return ok, text


def test_editor_on_a_server_gives_the_local_pixels_and_survives_the_server_going_away(qtbot, window, tmp_path,
                                                                                       tiny_inpaint_model):
    w = window
    config = ServerConfig(data_dir=tmp_path / "serve", model=str(tiny_inpaint_model), tokens=(TOKEN,))
    with running_server(config) as server:
        ok, text = connect(w, server.url, "wrong")
        assert not ok and "401" in text
        ok, text = connect(w, server.url, TOKEN)
        assert ok and "Connected" in text
        ref = make_ref(server.url)
        assert ref in w.model_picker.model_refs()
        assert w.settings.generation_server() == (server.url, TOKEN)
        w.model_picker.set_current_model(ref)
        params = w.current_params().replace(prompt="a red balloon", steps=2, guidance=1.0, width=256, height=256, seed=7)
        assert params.model == ref
        steps = []
        w.status.progress.valueChanged.connect(lambda v: steps.append(v))
        remote = generate(qtbot, w, params)
        assert remote.backend == ref and steps
    w.menu_actions.discard.trigger()
    local = generate(qtbot, w, params.replace(model=str(tiny_inpaint_model)))
    assert np.array_equal(remote.candidates[0], local.candidates[0]), "remote and local pixels differ"
    w.menu_actions.discard.trigger()

    w.set_params(params)
    mask = w.document.mask.copy()
    assert mask.any()
    with qtbot.waitSignal(w.generation_failed, timeout=30000):  # the server is gone
        assert w.generation.generate(params)
    assert w.message_bar.title == "Generation server unreachable"
    assert np.array_equal(w.document.mask, mask) and w.current_params().prompt == "a red balloon"
    with running_server(config, port=server.port):  # back on the same address
        again = generate(qtbot, w, params)
    assert np.array_equal(again.candidates[0], remote.candidates[0])
