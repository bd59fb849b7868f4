"""``inpaint-studio serve``: the HTTP server's options (parsed here, like every command) and its
start. The server itself is `app.server`; this module only turns options into a `ServerConfig`
and reports a refused setting as the CLI's one-line error."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from app.service import thread_count

HELP = "serve the hosted inpainting APIs (OpenAI, Segmind, Replicate-style, Appypie, A1111) over HTTP"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help=HELP,
        description="Start a local HTTP server that speaks the OpenAI images API, Segmind's sd1.5-inpainting, "
        "Replicate-style predictions, Appypie's getImage and AUTOMATIC1111's /sdapi/v1 (see docs/API.md). "
        "Off loopback it needs API tokens.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; anything else needs --tokens)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860; 0 = any free port)")
    p.add_argument("--model", metavar="REF", help="the model the hosted ids resolve to (default: the first installed "
                   "SD 1.5 inpainting model, else builtin:telea)")
    p.add_argument("--tokens", metavar="FILE", help="API tokens, one per line (also INPAINT_STUDIO_TOKENS, comma-separated)")
    p.add_argument("--data", metavar="DIR", help="where job records and outputs live (default: <data folder>/server)")
    p.add_argument("--allow-fetch", nargs="+", default=[], metavar="HOST",
                   help="hosts image URLs may be fetched from ('*' = any public host); none by default")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name requests may be addressed to besides localhost/127.0.0.1/[::1], e.g. a reverse "
                   "proxy's public name (repeatable; '*' = any). On loopback other names are refused (DNS rebinding)")
    p.add_argument("--queue-depth", type=int, default=16, metavar="N", help="jobs that may wait (default: 16); more get 429")
    p.add_argument("--batch-window-ms", type=float, default=10.0, metavar="MS",
                   help="wait up to MS for concurrent compatible jobs (same model, size, steps, sampler, LoRAs…) to run "
                   "as one batched call (default: 10; 0 = off); used where the model batches (GPUs)")
    p.add_argument("--max-batch", type=int, default=8, metavar="N", help="candidates per batched call at most (default: 8)")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                   help="a reverse proxy's address whose X-Forwarded-For/-Proto headers are believed (repeatable); "
                   "none by default, loopback included")
    p.add_argument("--docs", action="store_true", help="serve the interactive API page at /docs (Swagger UI loads its "
                   "scripts from a CDN; off by default; /openapi.json is always served)")
    p.add_argument("--no-preload", action="store_true", help="do not load the default model at start (by default it is "
                   "loaded at once, so the first request does not wait for it; /readyz answers 503 until then)")
    p.add_argument("--compile", action="store_true", help="run the UNet step compiled (GPU: several times faster; "
                   "compiled in the background while the first jobs run uncompiled, cached on disk for the next start)")
    p.add_argument("--threads", type=thread_count, metavar="N", help="CPU threads torch uses (default: all cores; each "
                   "Ray replica: its --cpus-per-replica); same seed, same pixels needs the same thread count")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    ray = p.add_argument_group("Ray Serve (the 'cluster' extra; docs/DEPLOY.md)")
    ray.add_argument("--ray", action="store_true", help="serve as a Ray Serve application: generator replicas that each "
                     "hold one model, autoscaled; --data must be a path every node can read")
    ray.add_argument("--ray-address", metavar="ADDR", help="join this Ray cluster (default: RAY_ADDRESS, else a cluster "
                     "started here with 'ray start', else a local one on 127.0.0.1)")
    ray.add_argument("--min-replicas", type=int, default=1, metavar="N", help="generator replicas at least (default: 1)")
    ray.add_argument("--max-replicas", type=int, default=1, metavar="N", help="generator replicas at most (default: 1)")
    ray.add_argument("--target-ongoing-requests", type=float, default=1.0, metavar="N",
                     help="jobs per replica Serve's autoscaler aims at (default: 1)")
    ray.add_argument("--cpus-per-replica", type=thread_count, default=1, metavar="N",
                     help="CPUs each replica reserves, and so its torch threads (default: 1)")
    ray.add_argument("--gpus-per-replica", type=float, default=0.0, metavar="N",
                     help="GPUs each replica reserves: 1 on GPU nodes (default: 0, CPU replicas)")
    p.set_defaults(func=run)
    return p


def run(ns: argparse.Namespace) -> int:
    from app.cli.errors import CliError
    from app.storage.paths import data_dir

    try:
        from app.server.auth import TokenFileError, load_tokens
        from app.server.config import ConfigError, ServerConfig
        from app.server.launch import serve
    except ImportError as exc:
        raise CliError(f"the server needs FastAPI and uvicorn, which this installation lacks ({exc}); "
                       "install the 'serve' extra: python -m pip install -e \".[serve]\"") from None

    try:
        config = ServerConfig(
            data_dir=Path(ns.data).expanduser() if ns.data else data_dir() / "server", host=ns.host, port=ns.port,
            model=ns.model, tokens=load_tokens(ns.tokens, dict(os.environ)), allow_fetch=frozenset(h.lower() for h in ns.allow_fetch),
            allowed_hosts=frozenset(h.lower() for h in ns.allowed_host), queue_depth=ns.queue_depth,
            batch_window_ms=ns.batch_window_ms, max_batch=ns.max_batch, trusted_proxies=tuple(ns.trusted_proxy),
            docs=ns.docs, preload=not ns.no_preload, compile=ns.compile).check()
    except (TokenFileError, ConfigError) as exc:
        raise CliError(str(exc)) from None
    if ns.ray:
        return serve_on_ray(ns, config)
    from app.service import use_threads

    use_threads(ns.threads)
    try:
        serve(config, ns.log_level)
    except KeyboardInterrupt:  # uvicorn stopped cleanly, then re-raised the signal
        pass
    print("stopped: unfinished jobs were marked canceled; finished ones stay in --data", file=sys.stderr)
    return 0


def serve_on_ray(ns: argparse.Namespace, config) -> int:
    """Deploy the Ray Serve application and block until Ctrl+C."""
    from app.cli.errors import CliError

    try:
        import ray
        from ray import serve

        from app.server.ray_app import APP_NAME, RayOptions, build_application, start
    except ImportError as exc:
        raise CliError(ray_missing(exc)) from None
    try:
        options = RayOptions(min_replicas=ns.min_replicas, max_replicas=ns.max_replicas,
                             target_ongoing_requests=ns.target_ongoing_requests,
                             gpus_per_replica=ns.gpus_per_replica, batch_window_ms=ns.batch_window_ms,
                             max_batch=ns.max_batch,
                             cpus_per_replica=ns.threads or ns.cpus_per_replica).check()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    start(ns.ray_address, config.host, config.port)
    print(f"serving on http://{config.host}:{config.port} (Ray Serve; /readyz answers 200 once a generator replica "
          "has loaded its model; Ctrl+C stops)", file=sys.stderr)
    try:
        serve.run(build_application(config, options), name=APP_NAME, route_prefix="/", blocking=False)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping: unfinished jobs are marked canceled; finished ones stay in --data", file=sys.stderr)
        serve.shutdown()
        ray.shutdown()
    return 0


def ray_missing(exc: ImportError) -> str:
    """What to do when Ray cannot be imported. The desktop bundles leave Ray out on purpose
    (packaging/bundle_config.py): there the answer is another installation, not pip."""
    if getattr(sys, "frozen", False):
        return ("serve --ray needs Ray Serve, which the desktop bundle leaves out: run the Ray server from a source "
                "checkout with the 'cluster' extra (python -m pip install -e \".[cluster,diffusion]\") or from the "
                "container image (docs/DEPLOY.md); plain 'serve' (without --ray) works from this bundle")
    return (f"--ray needs Ray Serve, which this installation lacks ({exc}); install the 'cluster' extra "
            "(python -m pip install -e \".[cluster]\") or use the container image (docs/DEPLOY.md)")
