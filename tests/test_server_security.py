"""What a server on 127.0.0.1 refuses to browsers and other hosts (DNS rebinding, cross-site
posts, no CORS), what needs a token (/metrics) and what does not (/files capability URLs, which
cannot be listed, guessed by pattern or walked out of). Real uvicorn on 127.0.0.1 throughout."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from app.cli.main import main as cli_main
from app.server.config import ConfigError, ServerConfig
from app.server.hostguard import checks_hosts, host_name, origin_host
from app.server.jobs import JobStore, new_id
from serverutil import b64, centre_mask, decode_png, running_server, scene

TOKEN = "tok-3e1f"
PROXY_NAME = "inpaint.example.com"


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The default: loopback, no tokens."""
    with running_server(ServerConfig(data_dir=tmp_path_factory.mktemp("local"), model="builtin:telea")) as running:
        yield running


@pytest.fixture(scope="module")
def with_tokens(tmp_path_factory):
    """Loopback with tokens and a reverse proxy's name allowed."""
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("tokens"), model="builtin:telea", tokens=(TOKEN,),
                          allowed_hosts=frozenset({PROXY_NAME}))
    with running_server(config) as running:
        yield running


def raw(server, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    """One request with exactly these headers and this path (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for key, value in {**headers, "Content-Length": str(len(body or b""))}.items():
            conn.putheader(key, value)
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def segmind_body() -> bytes:
    return json.dumps({"prompt": "x", "image": b64(scene()), "mask": b64(centre_mask())}).encode()


def job_count(server) -> int:
    return len(server.app.state.store.all())


# -- DNS rebinding: the Host header ------------------------------------------------------------
def test_loopback_names_are_answered(local):
    for host in (f"127.0.0.1:{local.port}", f"localhost:{local.port}", "LOCALHOST", f"[::1]:{local.port}", "127.0.0.2"):
        status, _, body = raw(local, "GET", "/healthz", {"Host": host})
        assert status == 200 and json.loads(body)["status"] == "ok", host


@pytest.mark.parametrize("host", ["rebind.attacker.test", "rebind.attacker.test:7860", "127.0.0.1.nip.io",
                                  "localhost:abc", "[::1", "0.0.0.0"])
def test_other_host_names_are_refused_before_any_work(local, host):
    before = job_count(local)
    status, _, body = raw(local, "POST", "/v1/sd1.5-inpainting", {"Host": host, "Content-Type": "application/json"},
                          segmind_body())
    error = json.loads(body)
    assert status == 400 and error["field"] == "Host" and error["value"] == host
    assert "--allowed-host" in error["error"] and "localhost" in error["allowed"]
    assert job_count(local) == before


def test_a_request_without_host_is_refused(local):
    with socket.create_connection(("127.0.0.1", local.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["field"] == "Host"


def test_host_refusals_use_each_apis_error_shape(local):
    bad = {"Host": "rebind.attacker.test", "Content-Type": "application/json"}
    status, _, body = raw(local, "POST", "/v1/images/generations", bad, b'{"prompt": "x"}')
    assert status == 400 and json.loads(body)["error"]["param"] == "Host"  # OpenAI's shape
    status, _, body = raw(local, "POST", "/v1/predictions", bad, b'{"input": {}}')
    assert status == 400 and "Host" in json.loads(body)["detail"]  # Replicate's RFC 7807 shape


def test_allowed_host_is_answered_and_names_returned_urls(with_tokens):
    headers = {"Host": PROXY_NAME, "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    body = json.dumps({"prompt": "x", "image": b64(scene()), "mask": b64(centre_mask()), "response_format": "url"})
    status, _, answer = raw(with_tokens, "POST", "/v1/images/generations", headers, body.encode())
    assert status == 200, answer
    assert json.loads(answer)["data"][0]["url"].startswith(f"http://{PROXY_NAME}/files/")
    status, _, _ = raw(with_tokens, "GET", "/healthz", {"Host": "other.example.com"})
    assert status == 400


def test_an_exposed_server_checks_hosts_only_when_names_are_given(tmp_path):
    assert checks_hosts("127.0.0.1", ()) and checks_hosts("::1", ()) and checks_hosts("0.0.0.0", {PROXY_NAME})
    assert not checks_hosts("0.0.0.0", ()) and not checks_hosts("127.0.0.1", {"*"})
    # An app configured for 0.0.0.0 (tokens) answers any name; the test still listens on 127.0.0.1 only.
    config = ServerConfig(data_dir=tmp_path, model="builtin:telea", host="0.0.0.0", tokens=(TOKEN,))
    with running_server(config) as server:
        assert raw(server, "GET", "/healthz", {"Host": "gpu-box.lan:7860"})[0] == 200


def test_host_and_origin_parsing():
    assert host_name("[::1]:7860") == "::1" and host_name("LocalHost:80") == "localhost" and host_name("a.b") == "a.b"
    assert host_name("[::1]x") == "" and host_name("a:b") == ""
    assert origin_host("http://localhost:3000") == "localhost" and origin_host("null") == ""
    assert origin_host("file://") == "" and origin_host("https://[::1]:8443") == "::1"


def test_allowed_host_values_are_checked(tmp_path, capsys, monkeypatch):
    for bad in ("https://inpaint.example.com", "inpaint.example.com:443", "a/b", ""):
        with pytest.raises(ConfigError, match="--allowed-host"):
            ServerConfig(data_dir=tmp_path, allowed_hosts=frozenset({bad})).check()
    assert cli_main(["serve", "--data", str(tmp_path), "--allowed-host", "http://x.example"]) == 2
    assert "--allowed-host 'http://x.example': give a host name" in capsys.readouterr().err
    started = []
    monkeypatch.setattr("app.server.launch.serve", lambda config, level: started.append(config))
    assert cli_main(["serve", "--data", str(tmp_path), "--allowed-host", "A.example", "--allowed-host", "b.example"]) == 0
    assert started[0].allowed_hosts == {"a.example", "b.example"}


# -- browsers: Origin and CORS ----------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
def test_cross_site_posts_are_refused(local, content_type):
    before = job_count(local)
    for origin in ("https://evil.example", "null", f"http://rebind.attacker.test:{local.port}"):
        headers = {"Host": f"127.0.0.1:{local.port}", "Origin": origin, "Content-Type": content_type}
        status, _, body = raw(local, "POST", "/v1/sd1.5-inpainting", headers, segmind_body())
        error = json.loads(body)
        assert status == 403 and error["field"] == "Origin" and error["value"] == origin
    status, _, body = raw(local, "POST", "/v1/images/generations", {"Host": "localhost", "Origin": "https://evil.example"},
                          b'{"prompt": "x"}')
    assert status == 403 and json.loads(body)["error"]["type"] == "permission_error"
    assert job_count(local) == before


def test_pages_on_loopback_and_no_origin_are_served(local):
    for headers in ({}, {"Origin": f"http://127.0.0.1:{local.port}"}, {"Origin": "http://localhost:3000"}):
        headers = {"Host": f"127.0.0.1:{local.port}", "Content-Type": "application/json", **headers}
        status, _, body = raw(local, "POST", "/v1/sd1.5-inpainting", headers, segmind_body())
        assert status == 200 and decode_png(body).shape == (64, 64, 3)


def test_no_cors_headers_for_any_page(local):
    preflight = {"Host": f"127.0.0.1:{local.port}", "Origin": "https://evil.example",
                 "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    status, headers, _ = raw(local, "OPTIONS", "/v1/sd1.5-inpainting", preflight)
    assert status == 403 and not any(k.startswith("access-control-") for k in headers)
    same_site = {"Host": f"127.0.0.1:{local.port}", "Origin": "http://localhost:3000"}
    status, headers, _ = raw(local, "GET", "/healthz", same_site)
    assert status == 200 and not any(k.startswith("access-control-") for k in headers)


# -- /metrics ------------------------------------------------------------------------------------
def test_metrics_need_the_token_when_the_server_has_tokens(with_tokens, local):
    r = with_tokens.get("/metrics")
    assert r.status_code == 401 and r.json()["field"] == "Authorization" and "missing API key" in r.json()["error"]
    assert with_tokens.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = with_tokens.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})  # Prometheus' `authorization:`
    assert r.status_code == 200 and "inpaint_queue_depth" in r.text
    assert local.get("/metrics").status_code == 200  # no tokens configured: nothing to ask for
    assert with_tokens.get("/healthz").status_code == 200  # probes need none


# -- /files: capability URLs ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def served_output(with_tokens):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"prompt": "x", "image": b64(scene()), "mask": b64(centre_mask()), "response_format": "url"}
    url = with_tokens.post("/v1/images/generations", json=body, headers=headers).json()["data"][0]["url"]
    return url.rsplit("/", 1)[1]


def test_returned_urls_work_without_a_token_and_stay_private(with_tokens, served_output):
    r = with_tokens.get(f"/files/{served_output}")  # as the OpenAI SDK's user code fetches it
    assert r.status_code == 200 and decode_png(r.content).shape == (64, 64, 3)
    assert r.headers["cache-control"].startswith("private") and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_outputs_cannot_be_listed_or_guessed(with_tokens, served_output):
    job_id = served_output.split("-")[0]
    unknown = with_tokens.get(f"/files/{new_id()}-0.png")
    assert unknown.status_code == 404
    for path in ("/files/", "/files", f"/files/{job_id}-1.png", f"/files/{job_id}", f"/files/{job_id.upper()}-0.png",
                 f"/files/{job_id}-0.png.tmp", f"/files/{job_id[:-1]}-0.png"):
        r = with_tokens.get(path)
        assert r.status_code == (401 if path == "/files" else 404), path  # /files is no public path
        if path.startswith("/files/") and path != "/files/":
            assert r.json() == unknown.json(), path  # the same answer whether malformed or unknown: no oracle


def test_no_path_leads_out_of_the_outputs_folder(with_tokens, served_output):
    job_id = served_output.split("-")[0]
    outputs = with_tokens.app.state.store.outputs_dir
    (outputs / f".{served_output}.abc.tmp").write_bytes(b"half-written")  # an atomic write's temp file
    for path in (f"/files/../jobs/{job_id}.json", f"/files/..%2Fjobs%2F{job_id}.json",
                 f"/files/%2e%2e%2fjobs%2f{job_id}.json", f"/files/..%5Cjobs%5C{job_id}.json",
                 f"/files/.{served_output}.abc.tmp", "/files/%2Fetc%2Fpasswd", f"/files/{served_output}%00.json",
                 f"/files/./{served_output}"):
        status, _, body = raw(with_tokens, "GET", path, {"Host": "127.0.0.1"})
        assert status == 404 and b"job_id" not in body and b"half-written" not in body, path


def test_store_looks_up_only_output_names(tmp_path):
    store = JobStore(tmp_path)
    job_id = new_id()
    (store.outputs_dir / f"{job_id}-0.png").write_bytes(b"png")
    (store.jobs_dir / f"{job_id}.json").write_text("{}")
    assert store.output_path(f"{job_id}-0.png") == store.outputs_dir / f"{job_id}-0.png"
    for name in (f"../jobs/{job_id}.json", f"{job_id}.json", f"{job_id}-0.png/", f"{job_id}-0.png\n", "..",
                 str(store.outputs_dir / f"{job_id}-0.png"), f"{job_id}-0.PNG", f"{job_id}-100.png"):
        assert store.output_path(name) is None, name
