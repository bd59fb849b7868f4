"""The job queue and store behind every route: a full queue answers 429 with Retry-After, a
client that disconnects cancels its job, a prediction can be canceled while it runs, a restart
keeps finished jobs and marks interrupted ones failed, and the server refuses unsafe settings.

A gated backend (`serverutil.GatedBackend`: the classical method behind an event) holds jobs
running for as long as a test needs; it goes through the real `GenerationService`."""

from __future__ import annotations

import concurrent.futures
import errno
import shutil
import time

import pytest
import replicate
import requests

from app.cli.main import main as cli_main
from app.server.auth import load_tokens, token_matches
from app.server.config import ConfigError, ServerConfig
from app.server.jobs import JobStore
from serverutil import (WAIT_S, b64, centre_mask, data_uri, decode_png, gated_server, running_server, scene,
                        segmind_body, until)


def test_full_queue_answers_429_with_retry_after(tmp_path):
    backend, server_cm = gated_server(tmp_path, queue_depth=1)
    with server_cm as server, concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = pool.submit(server.post, "/v1/sd1.5-inpainting", json=segmind_body())
        assert backend.started.wait(WAIT_S)
        waiting = pool.submit(server.post, "/getImage", json={"prompt": "x", "imageUrl": b64(scene()),
                                                              "maskUrl": b64(centre_mask())})
        until(lambda: server.app.state.queue.waiting() == 1, "the second job to queue")
        refused = server.post("/v1/sd1.5-inpainting", json=segmind_body())
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "queue is full" in refused.json()["error"]
        r = server.post("/v1/images/generations", json={"prompt": "x", **segmind_body()})
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
        assert "inpaint_queue_depth 1.0" in server.get("/metrics").text
        backend.gate.set()
        assert running.result(WAIT_S).status_code == 200 and waiting.result(WAIT_S).status_code == 200
        assert server.post("/v1/sd1.5-inpainting", json=segmind_body()).status_code == 200  # room again
        metrics = server.get("/metrics").text
        assert 'inpaint_jobs_total{status="succeeded"} 3.0' in metrics and "inpaint_jobs_rejected_total 2.0" in metrics


def test_client_disconnect_cancels_its_job(tmp_path):
    backend, server_cm = gated_server(tmp_path)
    with server_cm as server:
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(server.url + "/v1/sd1.5-inpainting", json=segmind_body(), timeout=0.5)
        store = server.app.state.store
        until(lambda: any(j.status == "canceled" for j in store.all()), "the job to be canceled")
        assert backend.started.is_set()  # it was running, and stopped at the backend's cancel check
        assert 'inpaint_jobs_total{status="canceled"} 1.0' in server.get("/metrics").text
        backend.gate.set()
        assert server.post("/v1/sd1.5-inpainting", json=segmind_body()).status_code == 200


def test_replicate_cancel_stops_a_running_prediction(tmp_path):
    backend, server_cm = gated_server(tmp_path)
    with server_cm as server:
        client = replicate.Client(api_token="unused", base_url=server.url)
        prediction = client.predictions.create(model="stability-ai/stable-diffusion-inpainting",
                                               input={"image": data_uri(scene()), "mask": data_uri(centre_mask())})
        assert backend.started.wait(WAIT_S)
        prediction.reload()
        assert prediction.status == "processing"
        canceled = client.predictions.cancel(prediction.id)
        assert canceled.status == "canceled" and canceled.output is None
        prediction.wait()
        assert prediction.status == "canceled"


def test_restart_keeps_finished_jobs_and_fails_interrupted_ones(tmp_path):
    backend, server_cm = gated_server(tmp_path / "live")
    with server_cm as server:
        backend.gate.set()
        client = replicate.Client(api_token="unused", base_url=server.url)
        inputs = {"image": data_uri(scene()), "mask": data_uri(centre_mask())}
        done = client.predictions.create(model="stability-ai/stable-diffusion-inpainting", input=inputs)
        done.wait()  # (replicate 1.0.7 drops wait= on the model route: it pops it before delegating)
        assert done.status == "succeeded"
        backend.gate.clear()
        backend.started.clear()
        interrupted = client.predictions.create(model="stability-ai/stable-diffusion-inpainting", input=inputs)
        assert backend.started.wait(WAIT_S)
        shutil.copytree(tmp_path / "live", tmp_path / "crashed")  # the disk as a power cut would leave it
        backend.gate.set()
    with running_server(ServerConfig(data_dir=tmp_path / "crashed", model="builtin:telea")) as again:
        client = replicate.Client(api_token="unused", base_url=again.url)
        kept = client.predictions.get(done.id)
        assert kept.status == "succeeded" and kept.output == [o.replace(server.url, again.url) for o in done.output]
        assert decode_png(requests.get(kept.output[0], timeout=10).content).shape == (64, 64, 3)
        lost = client.predictions.get(interrupted.id)
        assert lost.status == "failed" and lost.error == "server restarted"
        assert "server restarted" in lost.logs


def test_store_skips_unreadable_records(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "broken.json").write_text("{not json")
    store = JobStore(tmp_path)
    job = store.create("segmind", {"prompt": "x"})
    assert [j.id for j in JobStore(tmp_path).all()] == [job.id]  # read back; the broken file ignored


def test_refuses_non_loopback_without_tokens(tmp_path, capsys, monkeypatch):
    # Configuration checks only: nothing here binds a socket (the CLI refuses before listening),
    # and a bind would fail the test rather than listen on another address.
    import socket

    def no_bind(self, address):
        raise AssertionError(f"a socket was bound to {address!r}")

    monkeypatch.setattr(socket.socket, "bind", no_bind)
    with pytest.raises(ConfigError, match="without API tokens"):
        ServerConfig(data_dir=tmp_path, host="0.0.0.0").check()
    ServerConfig(data_dir=tmp_path, host="0.0.0.0", tokens=("t",)).check()
    ServerConfig(data_dir=tmp_path, host="::1").check()
    assert cli_main(["serve", "--host", "0.0.0.0", "--data", str(tmp_path)]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err


def test_tokens_from_file_and_environment(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("# team tokens\nalpha\n\n beta \n")
    assert load_tokens(path, {"INPAINT_STUDIO_TOKENS": "gamma, alpha"}) == ("alpha", "beta", "gamma")
    assert load_tokens(None, {}) == ()
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no token"):
        load_tokens(tmp_path / "empty.txt", {})
    assert token_matches("beta", ("alpha", "beta")) and not token_matches("bet", ("alpha", "beta"))


def test_a1111_interrupt_cancels_the_running_job(tmp_path):
    backend, server_cm = gated_server(tmp_path)
    with server_cm as server, concurrent.futures.ThreadPoolExecutor(1) as pool:
        body = {"init_images": [b64(scene())], "mask": b64(centre_mask()), "prompt": "x"}
        pending = pool.submit(server.post, "/sdapi/v1/img2img", json=body)
        assert backend.started.wait(WAIT_S)
        progress = server.get("/sdapi/v1/progress").json()
        assert progress["state"]["job_count"] == 1 and progress["state"]["job"]
        assert server.post("/sdapi/v1/interrupt").status_code == 200
        answer = pending.result(WAIT_S)
        assert answer.status_code == 409 and "canceled" in answer.json()["error"]
        backend.gate.set()
        assert server.post("/sdapi/v1/img2img", json=body).status_code == 200


def test_a_disk_that_cannot_take_records_fails_requests_at_once(tmp_path, monkeypatch):
    def full_disk(path, data, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    with running_server(ServerConfig(data_dir=tmp_path, model="builtin:telea")) as server:
        monkeypatch.setattr("app.server.jobs.atomic_write_bytes", full_disk)
        started = time.monotonic()
        r = server.post("/v1/sd1.5-inpainting", json=segmind_body())
        assert r.status_code == 500 and "No space left on device" in r.json()["error"]
        r = server.post("/v1/predictions", json={"input": segmind_body()})
        assert r.status_code == 500 and "could not be recorded" in r.json()["detail"]
        assert time.monotonic() - started < WAIT_S  # answered, not left waiting for the sync timeout
        monkeypatch.undo()
        assert server.post("/v1/sd1.5-inpainting", json=segmind_body()).status_code == 200
