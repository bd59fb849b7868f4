"""Ray Serve scaling: jobs/s through ``serve --ray`` with 1 and then 2 generator replicas, in one
run on one local Ray cluster (127.0.0.1), and the scaling efficiency (jobs/s with 2 ÷ 2 × jobs/s
with 1). On a 2-core machine two CPU replicas share the cores the one had: expect ~50 %, and
read it as a check that nothing serialises the replicas, not as a GPU figure.

    python bench/bench_scale.py                  # tiny random-weight model, 256², 4 steps, 16 jobs
    python bench/bench_scale.py --jobs 32 --steps 8

Every request has a timeout and the run a deadline; every job must succeed.
"""

from __future__ import annotations

import argparse
import base64
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import requests  # noqa: E402

TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_job(url: str, seed: int, steps: int) -> None:
    from serverutil import centre_mask, data_uri, scene

    r = requests.post(url + "/v1/images/generations", timeout=TIMEOUT_S, json={
        "model": "dall-e-2", "prompt": "a red brick wall", "size": "256x256", "response_format": "b64_json",
        "image": data_uri(scene()), "mask": data_uri(centre_mask()), "seed": seed, "steps": steps,
        "guidance": 1.0, "scheduler": "DDIM"})
    r.raise_for_status()
    base64.b64decode(r.json()["data"][0]["b64_json"], validate=True)


def throughput(url: str, replicas: int, model: str, jobs: int, steps: int) -> float:
    from ray import serve

    from app.server.config import ServerConfig
    from app.server.ray_app import APP_NAME, RayOptions, build_application

    config = ServerConfig(data_dir=Path(tempfile.mkdtemp(prefix="bench-scale-")), model=model, queue_depth=jobs)
    serve.run(build_application(config, RayOptions(min_replicas=replicas, max_replicas=replicas)), name=APP_NAME,
              route_prefix="/")
    one_job(url, 0, steps)  # warm: the replicas have loaded; the first request pays no extra
    with ThreadPoolExecutor(jobs) as pool:
        t0 = time.perf_counter()
        for future in [pool.submit(one_job, url, seed, steps) for seed in range(1, jobs + 1)]:
            future.result(timeout=TIMEOUT_S)
        elapsed = time.perf_counter() - t0
    serve.delete(APP_NAME)
    return jobs / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--model", help="an SD 1.x diffusers folder (default: the tiny random-weight test model)")
    ns = parser.parse_args()
    import os

    import ray
    from ray import serve

    model = ns.model
    if model is None:
        from tinymodels import build_tiny_sd

        model = str(build_tiny_sd(Path(tempfile.mkdtemp(prefix="bench-scale-model-")) / "tiny", inpainting=True))
    cpus = os.cpu_count() or 2
    ray.init(num_cpus=max(2, cpus), include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        url = f"http://127.0.0.1:{port}"
        one = throughput(url, 1, model, ns.jobs, ns.steps)
        two = throughput(url, 2, model, ns.jobs, ns.steps)
    finally:
        serve.shutdown()
        ray.shutdown()
    print(f"machine: {cpus} cores; model {'tiny (random weights)' if ns.model is None else ns.model}; "
          f"{ns.jobs} concurrent jobs of {ns.steps} steps at 256²")
    print(f"1 replica : {one:6.2f} jobs/s")
    print(f"2 replicas: {two:6.2f} jobs/s")
    print(f"scaling efficiency: {two / (2 * one):.0%} (100 % = twice the jobs/s with twice the replicas)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
