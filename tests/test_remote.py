"""A `remote:` model: the engine plans and composites here, the tiny diffusion model runs on a real
uvicorn on 127.0.0.1. Same seed → the same pixels as a local run; progress and previews stream
back; cancel stops the server's run; a server that goes away is a typed error and the next run
works once it is back; no torch in a client process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from app.core.params import GenerationParams
from app.inference.engine import Cancelled
from app.inference.registry import LoadOptions, capabilities
from app.inference.remote import RemoteGenerationError, ServerUnreachable, make_ref
from app.server.config import ServerConfig
from app.service.generation import GenerationRequest, GenerationService
from serverutil import centre_mask, running_server, scene

PARAMS = dict(prompt="a red brick wall", seed=1234, steps=2, guidance=1.0, scheduler="DDIM", width=256, height=256)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_inpaint_model):
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("serve"), model=str(tiny_inpaint_model), tokens=("s3cret",))
    with running_server(config) as running:
        yield running


def request(model: str, token: str | None = "s3cret", **changes) -> GenerationRequest:
    params = GenerationParams(model=model, **(PARAMS | changes))
    return GenerationRequest(params, scene(96), centre_mask(96), options=LoadOptions(server_token=token))


def test_remote_run_gives_the_local_pixels(server, tiny_inpaint_model):
    seen = []
    local = GenerationService().run(request(str(tiny_inpaint_model), batch_size=2))
    remote = GenerationService().run(request(make_ref(server.url), batch_size=2), seen.append)
    assert remote.seeds == local.seeds == [1234, 1235]
    for a, b in zip(local.candidates, remote.candidates):
        assert np.array_equal(a, b)
    assert not np.array_equal(remote.candidates[0], scene(96)), "the model changed nothing"
    steps = [p.step for p in seen]
    assert steps == sorted(set(steps)) and steps[-1] == seen[-1].total and len(steps) >= 2
    assert remote.backend == make_ref(server.url)


def test_capabilities_come_from_the_server(server):
    caps = capabilities(make_ref(server.url), LoadOptions(server_token="s3cret"))
    assert caps.kind == "diffusion" and caps.max_batch == 8 and "DDIM" in caps.schedulers
    assert capabilities(make_ref(server.url, "builtin:telea"), LoadOptions(server_token="s3cret")).native_resolution


def test_wrong_token_and_unknown_model_are_refused_with_a_reason(server):
    with pytest.raises(RemoteGenerationError, match="401.*token"):
        GenerationService().run(request(make_ref(server.url), token="wrong"))
    with pytest.raises(RemoteGenerationError, match="not a model this server has"):
        GenerationService().run(request(make_ref(server.url, "/etc/passwd")))


def test_cancel_stops_the_servers_run(server):
    flag = threading.Event()

    def progress(p):
        flag.set()

    with pytest.raises(Cancelled):
        GenerationService().run(request(make_ref(server.url), steps=20), progress, flag.is_set)
    # the server's lock is free again: a short run goes through at once
    t0 = time.monotonic()
    GenerationService().run(request(make_ref(server.url)))
    assert time.monotonic() - t0 < 30


def test_a_server_that_is_gone_is_a_typed_error_and_the_next_run_works(tmp_path, tiny_inpaint_model):
    config = ServerConfig(data_dir=tmp_path, model=str(tiny_inpaint_model))
    service = GenerationService()
    with running_server(config) as running:
        ref = make_ref(running.url)
        first = service.run(request(ref, token=None))
    with pytest.raises(ServerUnreachable) as info:
        service.run(request(ref, token=None))
    assert info.value.title == "Generation server unreachable" and "unchanged" in info.value.message
    port = int(ref.rsplit(":", 1)[1])
    with running_server(config, port=port) as running:  # the server is back on the same address
        again = service.run(request(ref, token=None))
    assert np.array_equal(first.candidates[0], again.candidates[0])


def test_remote_mode_imports_no_torch():
    code = ("import sys; from app.inference import registry; from app.service.generation import GenerationService;"
            "b = registry.load_backend('remote:http://127.0.0.1:9#x'); assert b.native_resolution is False;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
