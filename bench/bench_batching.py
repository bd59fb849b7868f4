"""Concurrent clients with and without the queue's batching (issue 34, item 3): images/s of 1
and of N clients, each sending the same A1111 img2img request in a loop to a real uvicorn on
127.0.0.1 (in this process), with ``--batch-window-ms`` on and off.

    python bench/bench_batching.py --tiny                  # tiny random-weight model, CPU
    python bench/bench_batching.py --model PATH --steps 25 --work 512   # a real SD 1.5 folder (GPU)

Batched calls are used where the model batches (``exact_batches`` off: the default on GPUs); on
the CPU this bench turns it off itself, so the gathering and the UNet calls can be counted there
(the CPU gains little: its kernels are not starved by small batches). The configurations are
interleaved in rounds and the median rate is shown. Goal (GPU): 8 clients
≥ 2.5× the images/s of one. Every request is bounded by a timeout, the whole run by a deadline.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench_server import _png_b64, scene  # noqa: E402

REQUEST_TIMEOUT_S = 600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="an SD 1.x diffusers folder (default with --tiny: the tiny test model)")
    ap.add_argument("--tiny", action="store_true", help="build and use the tiny random-weight test model")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent clients to measure (default 1 8)")
    ap.add_argument("--jobs", type=int, default=4, help="requests per client (default 4)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--work", type=int, default=256, help="work size, multiple of 8 in 256–2048 (default 256)")
    ap.add_argument("--window-ms", type=float, default=10.0, help="batching window when on (default 10)")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per configuration (default 3)")
    ap.add_argument("--deadline", type=float, default=1200, help="give up after this many seconds")
    args = ap.parse_args()
    deadline = time.monotonic() + args.deadline

    import requests

    from app.inference.registry import capabilities, load_backend
    from app.server.config import ServerConfig
    from app.service.generation import GenerationService
    from serverutil import running_server

    tmp = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    model = args.model
    if args.tiny or not model:
        from tinymodels import build_tiny_sd

        model = str(build_tiny_sd(tmp / "tiny-sd-inpainting", inpainting=True))
    unet_batches: list[int] = []

    def loader(ref, options):
        backend = load_backend(ref, dataclasses.replace(options, exact_batches=False))
        unet = backend.components["unet"]
        forward = unet.forward

        def counted(sample, *a, **k):
            unet_batches.append(int(sample.shape[0]) // 2)  # (uncond, text) halves: items
            return forward(sample, *a, **k)

        unet.forward = counted
        return backend

    image, mask = scene(args.work)
    body = {"prompt": "a stone wall", "init_images": [_png_b64(image)], "mask": _png_b64(mask), "seed": 7,
            "steps": args.steps, "sampler_name": "Euler", "width": args.work, "height": args.work,
            "denoising_strength": 1.0, "cfg_scale": 7.5, "inpainting_fill": 1}
    service = GenerationService(loader=loader, capabilities=capabilities)
    print(f"model {'tiny test model' if args.tiny or not args.model else model}, work {args.work}², {args.steps} steps, "
          f"{args.jobs} requests per client")
    windows = (0.0, args.window_ms)
    rates: dict[tuple[float, int], list[float]] = {}
    calls: dict[tuple[float, int], list[int]] = {}
    with contextlib.ExitStack() as stack:
        servers = {w: stack.enter_context(running_server(
            ServerConfig(data_dir=tmp / f"data-{w}", model=model, queue_depth=64, batch_window_ms=w,
                         max_batch=args.max_batch), service)) for w in windows}

        def post(url: str) -> None:
            r = requests.post(url + "/sdapi/v1/img2img", json=body, timeout=REQUEST_TIMEOUT_S)
            if r.status_code != 200:
                raise SystemExit(f"server answered {r.status_code}: {r.text[:300]}")

        for server in servers.values():
            post(server.url)  # load and warm
        for _ in range(args.rounds):  # interleaved: machine noise hits every configuration alike
            for clients in args.clients:
                for w, server in servers.items():
                    if time.monotonic() > deadline:
                        raise SystemExit("deadline reached")
                    unet_batches.clear()
                    t0 = time.perf_counter()
                    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                        list(pool.map(lambda _: [post(server.url) for _ in range(args.jobs)], range(clients)))
                    rates.setdefault((w, clients), []).append(clients * args.jobs / (time.perf_counter() - t0))
                    calls.setdefault((w, clients), []).extend(unet_batches)
    for (w, clients), rate in rates.items():
        sizes = calls[(w, clients)]
        print(f"  batching {'on, window %g ms' % w if w else 'off':18s} {clients:2d} clients: "
              f"{statistics.median(rate):.2f} images/s (median of {len(rate)}); UNet calls {len(sizes)}, "
              f"{sum(sizes) / max(1, len(sizes)):.2f} images per call")

if __name__ == "__main__":
    main()
