"""Server overhead and throughput: `inpaint-studio serve` (a real uvicorn in a subprocess, on
127.0.0.1) against calling the generation service directly in this process, on the same job.

    python bench/bench_server.py                              # classical method, 512×512 image
    python bench/bench_server.py --model PATH --steps 4       # an SD 1.x diffusers folder
    python bench/bench_server.py --tiny --steps 2 --work 256  # the tiny random-weight test model
    python bench/bench_server.py --baseline /tmp/main-tree    # also a server from another checkout (before/after)

1. One client: the same A1111 img2img request (what most scripts send) N times in a row through the server, and
   `GenerationService.run` N times directly (interleaved, so machine noise hits both). The server
   adds decoding the base64 inputs, the queue, writing the PNG with metadata and its job record,
   and HTTP. Goal: median overhead under 5 % + 10 ms.
2. Throughput: 8 concurrent clients × 5 jobs each through the server, against 40 direct runs in
   a row (one GPU/CPU runs one job at a time either way). Goal: the same jobs/s; every job
   answered once (distinct job ids, as many job records on disk as requests).
3. PNG: encode time and size of the job's output (and scikit-image's photos) at the default PNG
   settings and the fast ones server outputs use.
With ``--baseline DIR`` a second server runs from the checkout at DIR (e.g. ``git worktree add
/tmp/main-tree main``) and its requests are interleaved with the others, so a change is measured
against what it replaces under the same machine load (for classical methods: with a torch model,
three processes' thread pools contend on a small machine and the comparison means little).
Everything is bounded (timeouts on every
request, a deadline for the whole run).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import requests  # noqa: E402
from PIL import Image  # noqa: E402

CLIENTS, JOBS_PER_CLIENT = 8, 5
REQUEST_TIMEOUT_S = 600


def _png_b64(arr: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def scene(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], axis=2).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size * 3 // 8: size * 5 // 8, size // 4: size * 3 // 4] = 255
    return img, mask


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, data: Path, deadline: float, root: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """``inpaint-studio serve`` from the checkout at ``root`` (``python -m app`` imports it from there)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--model", model, "--data", str(data), "--queue-depth", "64", "--log-level", "warning"],
                            cwd=root)
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the server did not start")
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin:telea", help="model reference (default: builtin:telea)")
    ap.add_argument("--tiny", action="store_true", help="build and use the tiny random-weight test model")
    ap.add_argument("--size", type=int, default=512, help="image size in pixels (default 512)")
    ap.add_argument("--work", type=int, default=512, help="model work size (diffusion), multiple of 8 in 256–2048")
    ap.add_argument("--steps", type=int, default=20, help="steps (diffusion models)")
    ap.add_argument("--repeat", type=int, default=10, help="requests for the one-client figure")
    ap.add_argument("--deadline", type=float, default=1800, help="give up after this many seconds")
    ap.add_argument("--baseline", metavar="DIR", help="also run a server from the checkout at DIR, interleaved")
    args = ap.parse_args()
    deadline = time.monotonic() + args.deadline

    from app.core.params import GenerationParams
    from app.service.generation import GenerationRequest, GenerationService

    tmp = Path(tempfile.mkdtemp(prefix="bench-server-"))
    model = args.model
    if args.tiny:
        from tinymodels import build_tiny_sd

        model = str(build_tiny_sd(tmp / "tiny-sd-inpainting", inpainting=True))
    image, mask = scene(args.size)
    body = {"prompt": "a stone wall", "init_images": [_png_b64(image)], "mask": _png_b64(mask), "seed": 7,
            "steps": args.steps, "sampler_name": "DDIM", "width": args.work, "height": args.work, "denoising_strength": 1.0,
            "cfg_scale": 7.5, "inpainting_fill": 1, "inpaint_full_res_padding": 32}
    params = GenerationParams(prompt="a stone wall", model=model, seed=7, steps=args.steps, scheduler="DDIM",
                              width=args.work, height=args.work)
    service = GenerationService()
    direct_request = GenerationRequest(params, image, mask)

    roots = {"server": ROOT} | ({"baseline": Path(args.baseline).resolve()} if args.baseline else {})
    data_dirs = {name: tmp / f"data-{name}" for name in roots}
    servers = {name: start_server(model, data_dirs[name], deadline, root) for name, root in roots.items()}
    try:
        def post(url: str) -> requests.Response:
            r = requests.post(url + "/sdapi/v1/img2img", json=body, timeout=REQUEST_TIMEOUT_S)
            if r.status_code != 200:
                raise SystemExit(f"server answered {r.status_code}: {r.text[:300]}")
            return r

        def job_id(r: requests.Response) -> str:
            return json.loads(r.json()["info"])["job_id"]

        record = service.run(direct_request)  # load and warm every side
        for _, url in servers.values():
            post(url)
        direct_s: list[float] = []
        server_s: dict[str, list[float]] = {name: [] for name in servers}
        inside_s: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.repeat):
            if time.monotonic() > deadline:
                raise SystemExit("deadline reached")
            t0 = time.perf_counter()
            service.run(direct_request)
            direct_s.append(time.perf_counter() - t0)
            for name, (_, url) in servers.items():
                t0 = time.perf_counter()
                job = job_id(post(url))
                server_s[name].append(time.perf_counter() - t0)
                inside_s[name].append(json.loads((data_dirs[name] / "jobs" / f"{job}.json").read_text())["predict_time"])
        d = statistics.median(direct_s)
        goal = 0.05 * d + 0.010
        print(f"model {model if not args.tiny else 'tiny test model'}, image {args.size}×{args.size}, "
              f"steps {args.steps} (classical ignores steps)")
        print(f"one client, {args.repeat} requests each, interleaved: service direct {d * 1000:.1f} ms (median)")
        for name in servers:
            s = statistics.median(server_s[name])
            overhead = s - d
            around = statistics.median(w - i for w, i in zip(server_s[name], inside_s[name]))
            print(f"  {name:8s} {s * 1000:6.1f} ms; overhead {overhead * 1000:.1f} ms = {100 * overhead / d:.1f} % "
                  f"(goal ≤ {goal * 1000:.1f} ms: {'met' if overhead <= goal else 'NOT met'}); outside the job (HTTP, "
                  f"base64, decoding inputs, queue hand-off) {around * 1000:.1f} ms, the job itself (run + PNG + record) "
                  f"{statistics.median(inside_s[name]) * 1000:.1f} ms")

        total = CLIENTS * JOBS_PER_CLIENT
        t0 = time.perf_counter()
        for _ in range(total):
            service.run(direct_request)
        direct_rate = total / (time.perf_counter() - t0)
        print(f"throughput, {CLIENTS} clients × {JOBS_PER_CLIENT} jobs: service direct {direct_rate:.2f} jobs/s")
        for name, (_, url) in servers.items():
            jobs_dir = data_dirs[name] / "jobs"
            records_before = len(list(jobs_dir.glob("*.json")))

            def client(_: int, url: str = url) -> list[str]:
                return [job_id(post(url)) for _ in range(JOBS_PER_CLIENT)]

            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
                ids = [i for batch in pool.map(client, range(CLIENTS)) for i in batch]
            server_rate = total / (time.perf_counter() - t0)
            records = len(list(jobs_dir.glob("*.json"))) - records_before
            print(f"  {name:8s} {server_rate:.2f} jobs/s ({100 * server_rate / direct_rate:.0f} %); answers {len(ids)}, "
                  f"distinct job ids {len(set(ids))}, new job records {records} "
                  f"({'none lost or duplicated' if len(set(ids)) == len(ids) == records == total else 'MISMATCH'})")
        png_figures(record.candidates[0])
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def png_figures(output: np.ndarray) -> None:
    """Encode time (median of 9) and size at the default PNG settings and the fast ones."""
    from app.core.imageio import encode_png

    images = {"this job's output": output}
    try:
        import skimage.data

        images |= {name: getattr(skimage.data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")}
    except ImportError:
        pass
    print("PNG encode, default (level 3) vs fast (server outputs):")
    for name, pixels in images.items():
        figures = []
        for fast in (False, True):
            times = []
            for _ in range(9):
                t0 = time.perf_counter()
                size = len(encode_png(pixels, fast=fast))
                times.append(time.perf_counter() - t0)
            figures.append(f"{statistics.median(times) * 1000:.1f} ms {size / 1024:.0f} KB")
        print(f"  {name} {pixels.shape[1]}×{pixels.shape[0]}: {figures[0]} vs {figures[1]}")

if __name__ == "__main__":
    main()
