"""A small fake Hugging Face hub on 127.0.0.1 for the download tests.

It answers the routes huggingface_hub 2.x calls, with the headers it reads:

* ``GET /api/models/{org}/{name}[/revision/{rev}]?blobs=true`` → ``{"id", "sha", "siblings": [{rfilename,
  size, blobId, lfs: {size, sha256, pointerSize}}]}`` (``HfApi.model_info(files_metadata=True)``);
* ``HEAD|GET /{org}/{name}/resolve/{rev}/{path}`` → the bytes, with ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag`` / ``X-Linked-Size`` for LFS files, ``Accept-Ranges`` and ``206`` +
  ``Content-Range`` for ``Range: bytes=N-``;
* ``HEAD|GET /files/{name}``: a plain web server file (no hub headers), for direct URLs;
* errors the way the hub sends them: ``X-Error-Code: RepoNotFound`` (404), ``EntryNotFound``
  (404), ``GatedRepo`` (401 without the right ``Authorization: Bearer``).

Faults for the tests: ``drop_after[path] = n`` sends the first ``n`` bytes of a file and closes the
connection (once); ``rate`` limits bytes per second; ``corrupt`` serves other bytes than the listing's
SHA256 says. Every request is logged in ``requests`` as ``(method, path, Range header)``, and its
``Authorization`` header in ``authorizations``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt")


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    gated_token: str | None = None  # when set, resolve needs "Authorization: Bearer <token>"


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    plain_files: dict[str, bytes] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    rate: float | None = None  # bytes per second, None = as fast as possible
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)  # the Authorization header of each request
    url: str = ""

    def add_folder(self, repo_id: str, folder: Path, **kw) -> FakeRepo:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        self.repos[repo_id] = FakeRepo(files, **kw)
        return self.repos[repo_id]

    def ranges_for(self, suffix: str) -> list[str | None]:
        return [r for m, p, r in self.requests if m == "GET" and p.endswith(suffix)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_HEAD(self):
            self._route(head=True)

        def do_GET(self):
            self._route(head=False)

        # -- routing ---------------------------------------------------------------------------
        def _route(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path, self.headers.get("Range")))
            hub.authorizations.append(self.headers.get("Authorization"))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                return self._model_info("/".join(parts[2:4]))
            if parts[0] == "files" and len(parts) == 2:
                data = hub.plain_files.get(parts[1])
                if data is None:
                    return self._error(404, None)
                return self._send_bytes(parts[1], data, {}, head)
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve("/".join(parts[:2]), "/".join(parts[4:]), head)
            return self._error(404, None)

        def _model_info(self, repo_id: str) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound")
            siblings = []
            for name, data in repo.files.items():
                entry = {"rfilename": name, "size": len(data), "blobId": git_blob_sha1(data)}
                if name.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {"size": len(data), "sha256": sha256(data), "pointerSize": 134}
                siblings.append(entry)
            body = json.dumps({"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False,
                               "gated": "manual" if repo.gated_token else False, "siblings": siblings}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _resolve(self, repo_id: str, name: str, head: bool) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound")
            if repo.gated_token and self.headers.get("Authorization") != f"Bearer {repo.gated_token}":
                return self._error(401, "GatedRepo")
            data = repo.files.get(name)
            if data is None:
                return self._error(404, "EntryNotFound")
            headers = {"X-Repo-Commit": repo.commit}
            if name.endswith(LFS_SUFFIXES):
                headers["ETag"] = headers["X-Linked-Etag"] = f'"{sha256(data)}"'
                headers["X-Linked-Size"] = str(len(data))
            else:
                headers["ETag"] = f'"{git_blob_sha1(data)}"'
            if name in hub.corrupt:
                data = bytes(b ^ 0xFF for b in data)
            self._send_bytes(name, data, headers, head)

        # -- answers ---------------------------------------------------------------------------
        def _error(self, status: int, code: str | None) -> None:
            body = json.dumps({"error": code or "Not Found"}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_bytes(self, name: str, data: bytes, headers: dict[str, str], head: bool) -> None:
            start = 0
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
                start = int(wanted[len("bytes="):-1])
            if start > len(data):
                return self._error(416, None)
            self.send_response(206 if wanted else 200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(data) - start))
            if wanted:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if head:
                return
            body = data[start:]
            drop = hub.drop_after.pop(name, None)
            if drop is not None:
                self._write(body[:drop])
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self._write(body)

        def _write(self, body: bytes) -> None:
            chunk = 16 * 1024
            for offset in range(0, len(body), chunk):
                try:
                    self.wfile.write(body[offset:offset + chunk])
                except (BrokenPipeError, ConnectionResetError):
                    return
                if hub.rate:
                    time.sleep(chunk / hub.rate)

    return Handler


class running:
    """``with running(hub) as url:`` serves ``hub`` on 127.0.0.1 (ephemeral port) in a thread."""

    def __init__(self, hub: FakeHub):
        self.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        self.hub.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.hub.url

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# -- fixtures shared by the download tests ---------------------------------------------------------
REPO = "org/tiny-inpaint"


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """The suite runs with HF_HUB_OFFLINE=1; these tests opt in to the (fake, loopback) network,
    with a private HF_HOME so no real token or cache is touched."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)  # huggingface_hub honours it too
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("INPAINT_STUDIO_MODELS", raising=False)


@pytest.fixture
def hub(tiny_inpaint_model, hub_env, monkeypatch):
    """A running fake hub holding the tiny inpainting model as ``REPO`` (plus a pickle and a safety
    checker that a download must skip), with ``HF_ENDPOINT`` pointed at it."""
    fake = FakeHub()
    fake.add_folder(REPO, tiny_inpaint_model)
    fake.repos[REPO].files["unet/diffusion_pytorch_model.bin"] = b"pickle weights must never be fetched"
    fake.repos[REPO].files["safety_checker/model.safetensors"] = b"not needed by the loader"
    with running(fake) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield fake
