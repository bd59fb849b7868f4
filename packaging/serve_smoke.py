"""Smoke run of ``inpaint-studio serve`` from a bundle: the self-test opens the editor but never
starts the HTTP server, whose dependencies (FastAPI, uvicorn, multipart parsing) a bundle can
lose to an exclude. Starts the server on 127.0.0.1 and a free port, sends one inpainting request
(Segmind's shape, built-in Telea model), checks that the masked pixels changed and those away from
the mask did not, stops the server; with ``--no-ray`` also checks that ``serve --ray`` refuses in
one line (exit 2, naming the 'cluster' extra), as it must from a bundle without Ray.

    python packaging/serve_smoke.py [--no-ray] COMMAND...     e.g. dist/InpaintStudio/inpaint-studio

Runs with the build environment's Python (needs Pillow and NumPy, not the app); every wait is
bounded. Prints one line and exits 0, or 1 with the reason.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

START_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class SmokeFailure(Exception):
    pass


def clean_env(home: Path) -> dict[str, str]:
    """Like the self-test: nothing from the build environment (PYTHONPATH, venv) leaks in."""
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    if os.environ.get("SYSTEMROOT"):  # Windows needs it to start any process
        env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    return env


def png_b64(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def wait_for_port(proc: subprocess.Popen, log: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = LISTENING.search(log.read_text(encoding="utf-8", errors="replace"))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            raise SmokeFailure(f"serve exited with {proc.returncode} before listening: {tail(log)}")
        time.sleep(0.1)
    raise SmokeFailure(f"serve did not listen within {START_TIMEOUT_S} s: {tail(log)}")


def tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(lines[-3:]) or "(no output)"


def inpaint_once(port: int) -> str:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    mask = np.zeros((64, 96), np.uint8)
    mask[24:40, 36:60] = 255
    body = json.dumps({"prompt": "smoke", "image": png_b64(image), "mask": png_b64(mask), "seed": 1}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/sd1.5-inpainting", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
        status, payload = answer.status, answer.read()
    result = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
    if status != 200 or result.shape != image.shape:
        raise SmokeFailure(f"inpaint answered {status} with an image of shape {result.shape}, expected {image.shape}")
    # The server feathers the mask (blur 4 px): compare only pixels well away from it.
    far = np.ones(mask.shape, bool)
    far[24 - 12:40 + 12, 36 - 12:60 + 12] = False
    if not np.array_equal(result[far], image[far]):
        raise SmokeFailure("inpaint changed pixels far outside the mask")
    if np.array_equal(result[mask > 0], image[mask > 0]):
        raise SmokeFailure("inpaint left the masked pixels as they were")
    return f"inpainted {image.shape[1]}×{image.shape[0]} over HTTP"


def serve_and_request(command: list[str], work: Path) -> str:
    log = work / "serve.log"
    args = command + ["serve", "--port", "0", "--data", str(work / "jobs"), "--model", "builtin:telea",
                      "--log-level", "info"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=work, env=clean_env(work), stdout=out, stderr=subprocess.STDOUT)
    try:
        port = wait_for_port(proc, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=REQUEST_TIMEOUT_S) as answer:
            if answer.status != 200:
                raise SmokeFailure(f"/healthz answered {answer.status}")
        return f"serve on 127.0.0.1:{port} {inpaint_once(port)}"
    finally:
        proc.terminate()  # uvicorn stops on SIGTERM like on Ctrl+C
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
            raise SmokeFailure(f"serve did not stop within {STOP_TIMEOUT_S} s of SIGTERM") from None


def ray_is_refused(command: list[str], work: Path) -> str:
    proc = subprocess.run(command + ["serve", "--ray", "--data", str(work / "ray-jobs"), "--model", "builtin:telea"],
                          cwd=work, env=clean_env(work), capture_output=True, text=True, timeout=START_TIMEOUT_S)
    err = proc.stderr.strip()
    if proc.returncode != 2 or len(err.splitlines()) != 1 or "cluster" not in err or "Traceback" in err:
        raise SmokeFailure(f"serve --ray without Ray: exit {proc.returncode}, stderr {err!r}")
    return "serve --ray refused in one line"


def main(argv: list[str]) -> int:
    no_ray = argv[:1] == ["--no-ray"]
    command = argv[1:] if no_ray else list(argv)
    if not command:
        print("usage: python packaging/serve_smoke.py [--no-ray] COMMAND...", file=sys.stderr)
        return 2
    if Path(command[0]).exists():  # the server runs in a scratch folder: make a relative path absolute
        command[0] = str(Path(command[0]).resolve())
    with tempfile.TemporaryDirectory(prefix="serve-smoke-") as tmp:
        work = Path(tmp)
        try:
            report = [serve_and_request(command, work)]
            if no_ray:
                report.append(ray_is_refused(command, work))
        except (SmokeFailure, OSError, subprocess.TimeoutExpired) as exc:
            print(f"serve smoke test FAILED: {exc}", file=sys.stderr)
            return 1
    print("serve smoke test OK: " + "; ".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
