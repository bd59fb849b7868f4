"""Probes and the CLI's side of a server: ``/healthz`` (liveness) and ``/readyz`` (readiness: the
default model preloaded) answer at once even while a job holds the model; a failed preload is a
reason without paths; the CLI reaches a server with tokens through ``--token`` or
INPAINT_STUDIO_TOKEN and, without one, says what to give; CLI and plain server give the same
pixels at the same thread count."""

from __future__ import annotations

import base64
import json
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli.main import main
from app.inference.classical import ClassicalBackend
from app.inference.remote import make_ref
from app.server.config import ServerConfig
from app.service.generation import GenerationService
from serverutil import centre_mask, data_uri, decode_png, gated_server, running_server, scene, segmind_body, until

PROBE_S = 0.5  # what a Kubernetes probe may wait, with room


def timed_get(server, path: str):
    t0 = time.monotonic()
    response = server.get(path)
    return response, time.monotonic() - t0


def test_readyz_says_not_ready_until_the_default_model_is_loaded(tmp_path):
    loaded = threading.Event()

    def slow_loader(ref, options):
        assert loaded.wait(20), "the test never let the model load"
        return ClassicalBackend(ref)

    service = GenerationService(loader=slow_loader)
    config = ServerConfig(data_dir=tmp_path, model="builtin:telea", preload=True)
    with running_server(config, service) as server:
        ready, took = timed_get(server, "/readyz")
        assert ready.status_code == 503 and ready.json()["reason"] == "loading the default model" and took < PROBE_S
        assert server.get("/healthz").json()["status"] == "ok"  # alive while loading
        loaded.set()
        until(lambda: server.get("/readyz").status_code == 200, "/readyz after the preload")
        assert server.get("/readyz").json() == {"status": "ready", "model": "builtin:telea"}
        assert service.is_loaded("builtin:telea"), "the preload did not load the default model"


def test_a_failed_preload_is_a_reason_without_paths(tmp_path):
    def broken_loader(ref, options):
        raise OSError("cannot read /srv/secret/models/model.safetensors")

    config = ServerConfig(data_dir=tmp_path, model="builtin:telea", preload=True)
    with running_server(config, GenerationService(loader=broken_loader)) as server:
        until(lambda: server.get("/readyz").json()["reason"] != "loading the default model", "the preload to end")
        answer = server.get("/readyz")
        assert answer.status_code == 503 and "model.safetensors" in answer.json()["reason"]
        assert "/srv/secret" not in answer.text


def test_probes_answer_at_once_while_a_job_holds_the_model(tmp_path):
    backend, server_cm = gated_server(tmp_path, preload=True)
    with server_cm as server:
        until(lambda: server.get("/readyz").status_code == 200, "the preload")
        result = {}
        worker = threading.Thread(target=lambda: result.update(r=server.post("/v1/sd1.5-inpainting",
                                                                             json=segmind_body())))
        worker.start()
        assert backend.started.wait(10), "the job never started"
        for path in ("/healthz", "/readyz"):
            answer, took = timed_get(server, path)
            assert answer.status_code == 200 and took < PROBE_S, (path, took)
        assert server.get("/healthz").json()["running"] is True
        backend.gate.set()
        worker.join(20)
        assert result["r"].status_code == 200


def test_without_preload_the_server_is_ready_at_once(tmp_path):
    with running_server(ServerConfig(data_dir=tmp_path, model="builtin:telea")) as server:
        assert server.get("/readyz").status_code == 200


@pytest.fixture(scope="module")
def token_server(tmp_path_factory, tiny_inpaint_model):
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("serve"), model=str(tiny_inpaint_model),
                          tokens=("s3cret",), preload=True)
    with running_server(config) as running:
        until(lambda: running.get("/readyz").status_code == 200, "the preload", timeout=60)
        yield running


@pytest.fixture
def files(tmp_path):
    Image.fromarray(scene(96)).save(tmp_path / "in.png")
    Image.fromarray(centre_mask(96)).save(tmp_path / "mask.png")
    return tmp_path


def cli(files, model: str, *extra: str) -> int:
    return main(["inpaint", "-i", str(files / "in.png"), "-m", str(files / "mask.png"), "-o", str(files / "out.png"),
                 "--model", model, "-p", "a red brick wall", "--seed", "7", "--steps", "2", "--guidance", "1",
                 "--scheduler", "DDIM", "--width", "256", "--height", "256", *extra])


def test_the_cli_reaches_a_server_with_tokens_by_flag_or_environment(token_server, files, capsys, monkeypatch):
    assert main(["inpaint", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "remote:http://HOST:PORT[#MODEL]" in help_text and "INPAINT_STUDIO_TOKEN" in help_text
    monkeypatch.delenv("INPAINT_STUDIO_TOKEN", raising=False)
    assert cli(files, make_ref(token_server.url)) != 0
    err = capsys.readouterr().err
    assert "401" in err and "--token" in err and "INPAINT_STUDIO_TOKEN" in err
    assert cli(files, make_ref(token_server.url), "--token", "s3cret") == 0
    by_flag = np.asarray(Image.open(files / "out.png").convert("RGB"))
    monkeypatch.setenv("INPAINT_STUDIO_TOKEN", "s3cret")
    assert cli(files, make_ref(token_server.url)) == 0
    assert np.array_equal(by_flag, np.asarray(Image.open(files / "out.png").convert("RGB")))


def test_cli_and_plain_server_give_the_same_pixels_at_the_same_thread_count(tiny_inpaint_model, files, tmp_path):
    """`serve --threads 1` sets the count before the server's threads start, as here (a thread
    that already ran torch keeps its count); docs/API.md says which runs match (same device
    kind, dtype and thread count)."""
    threads = torch.get_num_threads()
    try:
        assert cli(files, str(tiny_inpaint_model), "--threads", "1") == 0
        assert torch.get_num_threads() == 1
        by_cli = np.asarray(Image.open(files / "out.png").convert("RGB"))
        with running_server(ServerConfig(data_dir=tmp_path / "serve", model=str(tiny_inpaint_model))) as server:
            r = server.post("/v1/images/generations", json={
                "model": "dall-e-2", "prompt": "a red brick wall", "size": "256x256", "response_format": "b64_json",
                "image": data_uri(scene(96)), "mask": data_uri(centre_mask(96)), "seed": 7, "steps": 2,
                "guidance": 1.0, "scheduler": "DDIM"})
        assert r.status_code == 200, r.text
    finally:
        torch.set_num_threads(threads)
    by_server = decode_png(base64.b64decode(r.json()["data"][0]["b64_json"]))
    assert by_server.shape == by_cli.shape and np.array_equal(by_server, by_cli)
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "serve" / "jobs").glob("*.json")]
    assert record["runtime"] == {"device": "cpu", "dtype": "float32", "threads": 1}  # what decides the pixels
    assert not np.array_equal(by_cli, scene(96)), "the model changed nothing"
