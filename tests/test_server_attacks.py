"""Issue 33's attack rows replayed against a real uvicorn on 127.0.0.1 (loopback only, every loop
bounded). The server runs in a thread of this process, so where a row is about memory the
resident size of this process is the server's (psutil)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import http.server
import json
import socket
import struct
import threading
import time
import zlib

import psutil
import pytest
import requests

from app.core.params import SEED_MAX
from app.server.config import ServerConfig
from app.server.dispatch import MAX_PROMPT_CHARS
from app.server.errors import ApiError, scrub_paths
from app.server.fetch import FETCHES_AT_ONCE, FetchPolicy, fetch_url
from app.server.jobs import JobStore, new_id
from app.server.launch import HeadDeadlineProtocol
from app.server.shapes import MAX_JSON_DEPTH
from serverutil import WAIT_S, b64, centre_mask, data_uri, gated_server, png_bytes, running_server, scene, until

ALICE, BOB = "alice-token-1", "bob-token-2"
A, B = {"Authorization": f"Bearer {ALICE}"}, {"Authorization": f"Bearer {BOB}"}
#: Memory a refused request may add to the server, at most (the attacks cost GBs before).
MEMORY_SLACK = 150 * 2**20


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """Loopback, no tokens: the single-user default."""
    with running_server(ServerConfig(data_dir=tmp_path_factory.mktemp("local"), model="builtin:telea")) as running:
        yield running


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Two tokens, two tenants."""
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("shared"), model="builtin:telea", tokens=(ALICE, BOB))
    with running_server(config) as running:
        yield running


def png_declaring(width: int, height: int, bit_depth: int = 8, colour: int = 2, rows: bytes | None = None) -> bytes:
    """A valid PNG header declaring ``width`` × ``height``; ``rows`` (compressed) or a token IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows or zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def b64_of(data: bytes) -> str:
    return base64.b64encode(data).decode()


def region_body(image: str | None = None, mask: str | None = None, **changes) -> dict:
    body = {"model": "", "image": image or b64(scene()), "mask": mask or b64(centre_mask()),
            "params": {"prompt": "x", "steps": 4}, "seeds": [1]}
    return body | changes


def rss() -> int:
    return psutil.Process().memory_info().rss


def raw_exchange(port: int, head: bytes, body: bytes = b"", timeout: float = 20) -> bytes:
    """Send ``head`` (and ``body``) on a raw socket; the first bytes of the answer ("" if closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(head + body)
        except (ConnectionResetError, BrokenPipeError):  # refused while still sending
            pass
        try:
            return sock.recv(65536)
        except ConnectionResetError:
            return b""


# -- high: the backend route decodes nothing before its budget -----------------------------------
def test_png_declaring_60000_squared_is_refused_from_its_header(local):
    bomb = png_declaring(60000, 60000)
    assert len(bomb) < 140
    before, started = rss(), time.monotonic()
    r = local.post("/v1/backend/generate", json=region_body(image=b64_of(bomb)))
    assert r.status_code == 413 and r.json()["field"] == "image", r.text
    assert "60000×60000" in r.json()["error"]
    assert time.monotonic() - started < 5 and rss() - before < MEMORY_SLACK
    assert local.get("/healthz").json()["status"] == "ok"


def one_bit_bomb(side: int) -> bytes:
    return png_declaring(side, side, bit_depth=1, colour=0, rows=zlib.compress(b"\0" * ((side // 8 + 1) * side), 9))


@pytest.mark.parametrize("route, side", [("/v1/backend/generate", 12000), ("/sdapi/v1/png-info", 20000)])
def test_one_bit_bomb_within_pillows_guard_costs_no_memory(local, route, side):
    """Hundreds of MP of 1-bit pixels in tens of KB (as RGB: GBs), over each route's budget
    (the region's 2048², the loader's 268 MP): refused from the header."""
    bomb = one_bit_bomb(side)
    assert len(bomb) < 100_000
    before = rss()
    r = local.post(route, json=region_body(mask=b64_of(bomb)) if "backend" in route else {"image": b64_of(bomb)})
    assert r.status_code == 413 and f"{side}×{side}" in r.json()["error"], r.text
    assert rss() - before < MEMORY_SLACK


def test_backend_route_queues_counts_and_refuses_when_full(tmp_path):
    backend, server_cm = gated_server(tmp_path, queue_depth=1)
    with server_cm as server, concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(server.post, "/v1/backend/generate", json=region_body())
        assert backend.started.wait(WAIT_S)
        second = pool.submit(server.post, "/v1/backend/generate", json=region_body())
        until(lambda: server.app.state.queue.waiting() == 1, "the second region to queue")
        refused = server.post("/v1/backend/generate", json=region_body())
        assert refused.status_code == 429 and refused.headers["Retry-After"].isdigit(), refused.text
        assert server.post("/v1/sd1.5-inpainting", json={"prompt": "x", "image": b64(scene()),
                                                         "mask": b64(centre_mask())}).status_code == 429
        backend.gate.set()
        for future in (first, second):
            lines = [json.loads(line) for line in future.result().text.splitlines()]
            assert lines[-1]["type"] == "result", lines[-1]
        metrics = server.get("/metrics").text
        assert 'inpaint_jobs_total{status="succeeded"} 2.0' in metrics
        assert "inpaint_jobs_rejected_total 2.0" in metrics


def test_full_queue_refuses_before_fetching(tmp_path, drip_host):
    backend, server_cm = gated_server(tmp_path, queue_depth=1, allow_fetch=frozenset({"127.0.0.1"}))
    with server_cm as server, concurrent.futures.ThreadPoolExecutor(2) as pool:
        body = {"prompt": "x", "image": b64(scene()), "mask": b64(centre_mask())}
        first = pool.submit(server.post, "/v1/sd1.5-inpainting", json=body)
        assert backend.started.wait(WAIT_S)
        second = pool.submit(server.post, "/v1/sd1.5-inpainting", json=body)
        until(lambda: server.app.state.queue.waiting() == 1, "the second job to queue")
        url = f"http://127.0.0.1:{drip_host.port}/hold"
        r = server.post("/v1/sd1.5-inpainting", json={**body, "image": url})
        assert r.status_code == 429 and drip_host.seen == 0
        backend.gate.set()
        assert first.result().status_code == second.result().status_code == 200


def test_a_refused_input_gives_its_place_back(local):
    depth = local.app.state.config.queue_depth
    for _ in range(depth + 4):
        r = local.post("/v1/sd1.5-inpainting", json={"prompt": "x", "image": b64_of(b"not an image"),
                                                     "mask": b64(centre_mask())})
        assert r.status_code == 400 and r.json()["field"] == "image"
    assert local.post("/v1/sd1.5-inpainting", json={"prompt": "x", "image": b64(scene()),
                                                    "mask": b64(centre_mask())}).status_code == 200


# -- medium: the token before the body; bounded parsing -------------------------------------------
def test_no_token_is_refused_before_the_body_is_read(shared):
    head = (b"POST /v1/backend/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 130000000\r\n\r\n")
    before = rss()
    answer = raw_exchange(shared.port, head, b"{" + b" " * 1000)  # 130 MB promised, 1 KB sent
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert rss() - before < MEMORY_SLACK


@pytest.mark.parametrize("route, shape", [("/v1/backend/generate", "error"), ("/v1/predictions", "detail"),
                                          ("/v1/images/generations", "error"), ("/sdapi/v1/img2img", "error"),
                                          ("/sdapi/v1/png-info", "error")])
def test_json_depth_bomb(shared, route, shape):
    bomb = "[" * 100_000 + "]" * 100_000
    headers = {"Content-Type": "application/json"}
    assert requests.post(shared.url + route, data=bomb, headers=headers, timeout=30).status_code == 401
    r = requests.post(shared.url + route, data=bomb, headers={**headers, **A}, timeout=30)
    assert r.status_code == 400 and shape in r.json() and r.json()["field"] == "body", r.text
    body = json.dumps({"prompt": "x", "deep": json.loads("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))})
    r = requests.post(shared.url + route, data=body, headers={**headers, **A}, timeout=30)
    assert r.status_code == 400 and "deeper than" in json.dumps(r.json()), r.text


@pytest.mark.parametrize("text", ['{"prompt": "x", "seed": NaN}', '{"prompt": "x", "guidance": Infinity}',
                                  '{"prompt": "x", "guidance_scale": 1e400}',
                                  '{"prompt": "x\\ud800", "image": "", "mask": ""}'])
def test_unencodable_values_are_400_json(local, text):
    r = requests.post(local.url + "/v1/sd1.5-inpainting", data=text, headers={"Content-Type": "application/json"},
                      timeout=30)
    assert r.status_code == 400 and r.headers["content-type"] == "application/json" and r.json()["field"] == "body"


def test_non_finite_form_numbers_are_400_json(local):
    r = requests.post(local.url + "/v1/images/edits", files={"image": ("i.png", png_bytes(scene()), "image/png")},
                      data={"prompt": "x", "guidance": "nan"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "guidance" and "nan" in r.json()["error"]["message"]


def test_an_unexpected_error_is_500_json_in_the_routes_shape(local, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("/srv/secret/path exploded")

    monkeypatch.setattr(local.app.state.models, "resolve", broken)
    r = local.post("/v1/predictions", json={"input": {"prompt": "x"}})
    assert r.status_code == 500 and r.json()["status"] == 500 and "RuntimeError" in r.json()["detail"]
    assert "/srv/secret" not in r.text


def test_bad_backend_fields_are_4xx_json(local):
    for body, field in ((region_body(seeds=[SEED_MAX + 1]), "seeds"), (region_body(seeds=[True]), "seeds"),
                        (region_body(params={"prompt": "<lora:x:abc>"}), "params.prompt"),
                        (region_body(params={"steps": "many"}), "params.steps"), (region_body(params=[1]), "params"),
                        (region_body(image="not base64!"), "image"), (region_body(image=b64(scene(60))), "image")):
        r = local.post("/v1/backend/generate", json=body)
        assert r.status_code in (400, 422) and r.json()["field"] == field, (field, r.text)


# -- medium: prompts ----------------------------------------------------------------------------
def test_prompt_length_is_bounded_in_each_shape(local):
    long = "a" * (MAX_PROMPT_CHARS + 1)
    r = local.post("/v1/sd1.5-inpainting", json={"prompt": long, "image": b64(scene()), "mask": b64(centre_mask())})
    assert r.status_code == 400 and r.json()["field"] == "prompt" and f"at most {MAX_PROMPT_CHARS}" in r.json()["allowed"]
    r = local.post("/v1/images/generations", json={"prompt": "x", "negative_prompt": long})
    assert r.status_code == 400 and r.json()["error"]["param"] == "negative_prompt"
    r = local.post("/v1/backend/generate", json=region_body(params={"prompt": long}))
    assert r.status_code == 422 and r.json()["field"] == "params.prompt"
    r = local.post("/sdapi/v1/img2img", json={"prompt": "x <lora:x:abc>", "init_images": [b64(scene())]})
    assert r.status_code == 400 and "must be a number" in r.json()["error"]


# -- medium: tenancy ----------------------------------------------------------------------------
def test_a_token_sees_and_controls_only_its_own_jobs(tmp_path):
    backend, server_cm = gated_server(tmp_path, tokens=(ALICE, BOB))
    with server_cm as server:
        inputs = {"image": data_uri(scene()), "mask": data_uri(centre_mask())}
        created = server.post("/v1/predictions", json={"input": inputs}, headers=A)
        assert created.status_code == 201
        job_id = created.json()["id"]
        assert backend.started.wait(WAIT_S)
        assert server.get(f"/sdapi/v1/progress", headers=A).json()["state"]["job"] == job_id
        # Bob cannot read, list, follow, cancel or interrupt it
        assert server.get(f"/v1/predictions/{job_id}", headers=B).status_code == 404
        assert server.post(f"/v1/predictions/{job_id}/cancel", headers=B).status_code == 404
        assert server.get("/v1/predictions", headers=B).json()["results"] == []
        progress = server.get("/sdapi/v1/progress", headers=B).json()
        assert progress["state"]["job"] == "" and progress["state"]["job_count"] == 1
        assert server.post("/sdapi/v1/interrupt", headers=B).status_code == 200
        assert not server.app.state.queue.ticket(job_id).cancel.is_set()
        backend.gate.set()
        done = server.get(f"/v1/predictions/{job_id}?wait=10", headers=A).json()
        assert done["status"] == "succeeded" and done["output"]
        assert [p["id"] for p in server.get("/v1/predictions", headers=A).json()["results"]] == [job_id]
        assert job_id not in server.get("/v1/predictions", headers=B).text
        got = server.post("/getImage", json={"prompt": "x", "imageUrl": b64(scene()), "maskUrl": b64(centre_mask())},
                          headers=A).json()
        assert server.post("/getGenerationResults", json={"job_set_id": got["job_set_id"]}, headers=B).status_code == 404
        assert server.post("/getGenerationResults", json={"job_set_id": got["job_set_id"]}, headers=A).status_code == 200
        # Alice can interrupt her own running job
        backend.gate.clear()
        backend.started.clear()
        mine = server.post("/v1/predictions", json={"input": inputs}, headers=A).json()["id"]
        assert backend.started.wait(WAIT_S)
        server.post("/sdapi/v1/interrupt", headers=A)
        assert server.get(f"/v1/predictions/{mine}?wait=10", headers=A).json()["status"] == "canceled"
        # a stored record says whose it is by a digest, never the token
        stored = (tmp_path / "jobs" / f"{job_id}.json").read_text()
        assert ALICE not in stored and json.loads(stored)["owner"]


# -- medium: echoes and records -------------------------------------------------------------------
def test_nested_input_echo_is_bounded(local):
    deep: object = "x" * 1_000_000
    for _ in range(10):
        deep = [deep, {"k": deep if isinstance(deep, str) else "y"}]
    inputs = {"image": data_uri(scene()), "mask": data_uri(centre_mask()), "deep": deep, "wide": list(range(10_000)),
              "many": {str(i): i for i in range(1000)}}
    created = local.post("/v1/predictions", json={"input": inputs})
    assert created.status_code == 201
    assert len(created.content) < 20_000 and len(local.get("/v1/predictions").content) < 200_000
    record = local.app.state.config.data_dir / "jobs" / f"{created.json()['id']}.json"
    assert record.stat().st_size < 20_000


def test_records_are_read_when_asked_for(tmp_path):
    job = JobStore(tmp_path).create("predictions", {"prompt": "x"})
    store = JobStore(tmp_path)  # a restart: nothing read yet
    path = tmp_path / "jobs" / f"{job.id}.json"
    path.write_text(path.read_text().replace('"starting"', '"succeeded"'))  # changed after the start
    assert store.get(job.id).status == "succeeded"
    big = new_id()
    (tmp_path / "jobs" / f"{big}.json").write_text(json.dumps({"id": big, "api": "x", "logs": "x" * 2_000_000}))
    assert JobStore(tmp_path).get(big) is None and [j.id for j in JobStore(tmp_path).all()] == [job.id]


# -- medium: fetches ----------------------------------------------------------------------------
class _DripHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server name
        host = self.server.owner
        with host.lock:
            host.hosts.append(self.headers.get("Host"))
            host.seen += 1
            host.now += 1
            host.peak = max(host.peak, host.now)
        try:
            if self.path == "/drip":  # a byte every 0.2 s: each read in time, the whole never
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(100):
                    self.wfile.write(b"\x89")
                    self.wfile.flush()
                    time.sleep(0.2)
            else:  # /hold: answer late, with nothing useful
                time.sleep(0.5)
                self.send_response(404)
                self.end_headers()
        except OSError:
            pass
        finally:
            with host.lock:
                host.now -= 1

    def log_message(self, *args):
        pass


class DripHost:
    def __init__(self):
        self.lock = threading.Lock()
        self.seen = self.now = self.peak = 0
        self.hosts: list[str | None] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DripHandler)
        self.server.daemon_threads = True
        self.server.owner = self
        self.port = self.server.server_address[1]


@pytest.fixture
def drip_host():
    host = DripHost()
    thread = threading.Thread(target=host.server.serve_forever, daemon=True)
    thread.start()
    yield host
    host.server.shutdown()
    host.server.server_close()


def test_fetch_has_a_total_deadline(drip_host):
    policy = FetchPolicy(frozenset({"127.0.0.1"}), timeout_s=5, deadline_s=1)
    started = time.monotonic()
    with pytest.raises(ApiError, match="within 1 s") as info:
        asyncio.run(fetch_url(f"http://127.0.0.1:{drip_host.port}/drip", "image", policy))
    assert time.monotonic() - started < 4 and str(drip_host.port) not in info.value.message


def test_fetches_at_once_are_bounded_server_wide(drip_host):
    policy = FetchPolicy(frozenset({"127.0.0.1"}), timeout_s=5)
    url = f"http://127.0.0.1:{drip_host.port}/hold"

    async def many():
        return await asyncio.gather(*(fetch_url(url, "image", policy) for _ in range(FETCHES_AT_ONCE + 3)),
                                    return_exceptions=True)

    results = asyncio.run(many())
    assert all(isinstance(r, ApiError) and "404" not in r.message for r in results)
    assert drip_host.seen == FETCHES_AT_ONCE + 3 and drip_host.peak == FETCHES_AT_ONCE


def test_a_name_allowed_by_star_is_resolved_once(drip_host, monkeypatch):
    """The address checked is the address connected to: no second lookup to rebind. (Loopback
    stands in for a public address here; nothing leaves this machine.)"""
    from app.server import fetch

    lookups = []

    def resolve(host, port, **kw):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(fetch.socket, "getaddrinfo", resolve)
    monkeypatch.setattr(fetch, "_public", lambda address: True)
    with pytest.raises(ApiError, match="rebind.test did not answer with an image"):
        asyncio.run(fetch_url(f"http://rebind.test:{drip_host.port}/hold", "image", FetchPolicy(frozenset({"*"}))))
    assert lookups == ["rebind.test"] and drip_host.hosts == [f"rebind.test:{drip_host.port}"]


# -- low: no paths, one JSON shape ----------------------------------------------------------------
def test_no_server_path_reaches_a_client(tmp_path):
    from app.inference.classical import ClassicalBackend
    from app.service.generation import GenerationService

    model = tmp_path / "models" / "my-inpainting-model"
    model.mkdir(parents=True)
    service = GenerationService(loader=lambda ref, options: ClassicalBackend("builtin:telea"))
    with running_server(ServerConfig(data_dir=tmp_path / "data", model=str(model)), service) as server:
        png = server.post("/v1/sd1.5-inpainting", json={"prompt": "x", "image": b64(scene()), "mask": b64(centre_mask())})
        assert png.status_code == 200 and b"my-inpainting-model" in png.content
        assert str(tmp_path).encode() not in png.content
        a1111 = server.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": [b64(scene())],
                                                       "mask": b64(centre_mask())})
        assert a1111.status_code == 200 and str(tmp_path) not in a1111.text
    assert scrub_paths("LoRA 'x' not found in /home/u/.local/share/app/Lora (C:\\Users\\u\\Lora too); "
                       "see http://h/a/b") == "LoRA 'x' not found in …/Lora (…/Lora too); see http://h/a/b"


# -- low/info: HTTP heads, forwarded headers, the data folder, /docs -----------------------------
def test_oversized_heads_are_refused(local):
    for head in (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000_000 + b"\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: b\r\n" * 100_000 + b"\r\n"):
        before = rss()
        answer = raw_exchange(local.port, head)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:100]
        assert rss() - before < MEMORY_SLACK
    assert local.get("/healthz").status_code == 200


def test_one_host_header_and_short_echoes(local):
    answer = raw_exchange(local.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.test\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    answer = raw_exchange(local.port, b"GET /healthz HTTP/1.1\r\nHost: " + b"e" * 5000 + b".test\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and len(answer) < 2000


def test_a_head_that_trickles_in_is_closed(local, monkeypatch):
    monkeypatch.setattr(HeadDeadlineProtocol, "head_timeout_s", 0.5)
    with socket.create_connection(("127.0.0.1", local.port), timeout=WAIT_S) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by the server
        assert time.monotonic() - started < WAIT_S
    assert local.get("/healthz").status_code == 200


def test_forwarded_headers_are_ignored_without_a_trusted_proxy(local):
    r = local.post("/v1/predictions", json={"input": {"image": data_uri(scene()), "mask": data_uri(centre_mask())}},
                   headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert r.json()["urls"]["get"].startswith("http://127.0.0.1:")


def test_a_link_in_the_outputs_folder_is_not_served(local, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(scene()))
    name = f"{new_id()}-0.png"
    (local.app.state.store.outputs_dir / name).symlink_to(secret)
    assert local.get(f"/files/{name}").status_code == 404


def test_docs_are_off_by_default(local):
    assert local.get("/docs").status_code == 404
    assert "/v1/backend/generate" in local.get("/openapi.json").json()["paths"]


def test_negative_a1111_batches_are_refused(local):
    r = local.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": [b64(scene())], "batch_size": -2, "n_iter": -4})
    assert r.status_code == 400 and r.json()["field"] == "batch_size"
