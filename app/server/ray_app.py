"""``inpaint-studio serve --ray``: the same FastAPI app as a Ray Serve application.

Two deployments. ``generator``: replicas that each hold one loaded model (`Generator`; one GPU
each where the cluster has GPUs) and that Serve autoscales on ongoing requests. ``ingress``: one
replica running `create_app` (every route, the job queue and the job store on the shared
``--data`` path) whose service, `ClusterService`, sends each job to a generator replica. The
generator replicas gather concurrently arriving compatible runs for a few milliseconds
and run them as one batched call (`replica_runs.RunGatherer`, GPU replicas only). The ingress resolves the
seed before sending, so a job whose replica dies mid-run is retried once on
another replica with the same seed (same pixels), and otherwise fails with the reason in its
record: never lost. A restarted ingress marks what was unfinished as failed ("restarted").

Ray is imported here only; the plain server never needs it (the ``cluster`` extra).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.handle import DeploymentHandle

from app.core.errors import UNAVAILABLE, UserError
from app.server.ray_start import LOOPBACK, _starts_local, start  # noqa: F401  (re-exported: serve --ray, tests)
from app.service import BackendRequest, Cancelled, Capabilities, Progress, use_threads
from app.server.config import ServerConfig
from app.server.gather import MAX_ITEMS, WINDOW_MS, BatchPolicy
from app.server.replica_runs import RunGatherer, run_events
from app.service.generation import GenerationRequest, GenerationService

log = logging.getLogger(__name__)

APP_NAME = "inpaint"
GENERATOR, INGRESS = "generator", "ingress"
#: A readiness answer is reused this long (probes may come often; Serve's status is a controller call).
READY_CACHE_S = 1.0
#: Requests the ingress takes beyond its job queue and running jobs: probes, metrics, status
#: polls, output downloads, and requests about to be refused with our 429.
INGRESS_HEADROOM = 64
#: What a dead or restarting replica looks like to the caller.
REPLICA_LOST = (RayActorError, ActorUnavailableError)


class ReplicaLost(UserError, RuntimeError):
    """A generator replica died under a job twice in a row (the job was retried once)."""

    title = "Generation server lost the job"
    kind = UNAVAILABLE


class RemoteRunError(UserError):
    """A `UserError` raised on a replica, carried back by title, message and kind."""

    def __init__(self, title: str, message: str, kind: str):
        super().__init__(message)
        self.title, self.kind = title, kind


@dataclass(frozen=True)
class RayOptions:
    """How the generator deployment scales (flags of ``serve --ray`` or a Serve config file)."""

    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 1.0
    gpus_per_replica: float = 0.0  # 1 on GPU nodes; 0 = CPU replicas
    cpus_per_replica: float = 1.0
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 60.0
    look_back_period_s: float = 30.0
    metrics_interval_s: float = 10.0  # how often replicas and handles report their load
    batch_window_ms: float = WINDOW_MS  # a replica's wait for batch-mates (as the plain server's --batch-window-ms)
    max_batch: int = MAX_ITEMS  # candidates per batched call (as --max-batch)

    def check(self) -> RayOptions:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"--min-replicas {self.min_replicas} / --max-replicas {self.max_replicas}: "
                             "give 1 ≤ min ≤ max")
        if self.target_ongoing_requests <= 0:
            raise ValueError("--target-ongoing-requests: give a number above 0")
        if not 0 <= self.batch_window_ms <= 1000:
            raise ValueError(f"--batch-window-ms {self.batch_window_ms}: give 0–1000")
        if not 1 <= self.max_batch <= 64:
            raise ValueError(f"--max-batch {self.max_batch}: give 1–64")
        return self

    def batching(self) -> BatchPolicy:
        """How a replica gathers runs: on GPU replicas only. CPU replicas run the exact mode,
        which never batches; letting them take more than one request would only move the
        queue from the ingress into the replicas."""
        if self.gpus_per_replica <= 0:
            return BatchPolicy(window_s=0)
        return BatchPolicy(self.batch_window_ms / 1000, self.max_batch)

    def replica_capacity(self) -> int:
        """Requests one replica takes at once: a full batch when it gathers, else one."""
        policy = self.batching()
        return policy.max_items if policy.enabled else 1

    def autoscaling(self) -> dict[str, Any]:
        return {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "initial_replicas": self.min_replicas, "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": self.upscale_delay_s, "downscale_delay_s": self.downscale_delay_s,
                "look_back_period_s": self.look_back_period_s, "metrics_interval_s": self.metrics_interval_s}


# -- the generator replicas ---------------------------------------------------------------------
class Generator:
    """One loaded model (loaded in ``__init__``: a RUNNING replica is a ready one). ``run`` and
    ``region`` stream ("progress", step, total, preview) events, then ("result", value),
    ("cancelled",) or ("error", title, message, kind); closing the stream (the caller
    cancelled or its client left) stops the run at the engine's next step."""

    def __init__(self, model_ref: str, threads: int | None = None, batching: BatchPolicy = BatchPolicy(window_s=0),
                 compile_step: bool = False):
        use_threads(threads)  # as Ray's OMP_NUM_THREADS says, but explicit: pixels depend on it
        self.service = GenerationService(compile_step=compile_step)
        self.service.preload(model_ref)
        self.gatherer = RunGatherer(self.service, batching)

    def capabilities(self, model_ref: str) -> Capabilities:
        return self.service.capabilities(model_ref)

    async def run(self, request: GenerationRequest):
        key = self.gatherer.key(request)
        if key is not None:
            events = self.gatherer.events(key, request)
        else:  # not batchable (the exact mode, classical models) or gathering off: alone, as always
            events = run_events(lambda progress, stop: self.service.run(
                request, lambda p: progress(p.step, p.total, None), stop), request.options.device)
        async with contextlib.aclosing(events):  # a caller that leaves closes the inner stream now, not at GC
            async for event in events:
                yield event

    async def region(self, model_ref: str, region: BackendRequest):
        async for event in run_events(lambda progress, stop: self.service.generate_region(model_ref, region, progress,
                                                                                         stop)):
            yield event


# -- the ingress --------------------------------------------------------------------------------
class ClusterService(GenerationService):
    """The ingress's service: checks here, runs on a generator replica, retries a lost one once."""

    def __init__(self, generator: DeploymentHandle):
        super().__init__(loader=_no_local_model, capabilities=self._remote_capabilities)
        self.generator = generator
        self._caps: dict[str, Capabilities] = {}
        self._ready_checked_at, self._not_ready = -READY_CACHE_S, "not checked yet"
        self._last = threading.local()  # per ingress worker: where its last job ran

    def runtime(self, request: GenerationRequest) -> dict[str, Any]:
        """Where this worker's last job ran (its replica's device, dtype, torch threads)."""
        return getattr(self._last, "runtime", {})

    def not_ready(self) -> str | None:
        """For ``/readyz``: None once a generator replica is RUNNING (it loaded its model in its
        constructor). Asks Serve's controller, never a replica, so it never waits behind a job."""
        now = time.monotonic()
        if now - self._ready_checked_at > READY_CACHE_S:
            try:
                status = serve.status().applications[APP_NAME].deployments[GENERATOR]
                running = status.replica_states.get("RUNNING", 0)
                self._not_ready = None if running else "no generator replica has loaded its model yet"
            except Exception as exc:  # the controller is restarting: not ready, say why
                self._not_ready = f"Ray Serve's status is unavailable ({type(exc).__name__})"
            self._ready_checked_at = now
        return self._not_ready

    def _remote_capabilities(self, model_ref: str, options=None) -> Capabilities:
        if model_ref not in self._caps:
            self._caps[model_ref] = self._with_retry(lambda: self.generator.capabilities.remote(model_ref).result())
        return self._caps[model_ref]

    def run(self, request: GenerationRequest, progress=None, cancelled=None):
        request = self.check(request)
        request = dataclasses.replace(request, params=request.params.with_resolved_seed())  # a retry draws the same seed
        report = progress or (lambda p: None)
        return self._with_retry(lambda: self._stream(lambda: self.generator.options(stream=True).run.remote(request),
                                                     lambda step, total, _: report(Progress(step, total)),
                                                     cancelled or (lambda: False)))

    def generate_region(self, model_ref, region, progress, cancelled, options=None) -> list:
        """Streamed like `run`: the remote editor gets every step's progress (and preview), and
        its disconnect stops the replica's run at the next step."""
        return self._with_retry(lambda: self._stream(
            lambda: self.generator.options(stream=True).region.remote(model_ref, region), progress, cancelled))

    def _stream(self, start, progress, cancelled):
        """Follow the event stream ``start()`` opens; ``progress(step, total, preview)``."""
        stream = start()
        for event in stream:
            if cancelled():
                stream.cancel()
                raise Cancelled()
            kind = event[0]
            if kind == "progress":
                progress(*event[1:])
            elif kind == "result":
                self._last.runtime = event[2]
                return event[1]
            elif kind == "cancelled":
                raise Cancelled()
            else:
                raise RemoteRunError(*event[1:])
        raise ReplicaLost("The generator replica ended the job without a result; it was not retried.")

    @staticmethod
    def _with_retry(call):
        try:
            return call()
        except REPLICA_LOST as exc:
            log.warning("a generator replica was lost (%s); retrying once on another", type(exc).__name__)
            try:
                return call()
            except REPLICA_LOST as again:
                raise ReplicaLost(f"Two generator replicas were lost under this job ({type(again).__name__}); "
                                  "it was not run. Check the cluster's nodes and resubmit.") from None


def _no_local_model(model_ref, options):
    raise AssertionError("the ingress never loads a model: its generator replicas do")


class Ingress:
    """The FastAPI app of `create_app`, built on the replica (its queue has threads: not picklable)."""

    def __init__(self, config: ServerConfig, generator: DeploymentHandle):
        self.config, self.generator = config, generator

    def __serve_build_asgi_app__(self):
        from app.server.app import create_app

        service = ClusterService(self.generator)
        return create_app(self.config, service, not_ready=service.not_ready, runtime=service.runtime)


# -- building the application -------------------------------------------------------------------
def build_application(config: ServerConfig, options: RayOptions = RayOptions()):
    """The Serve application: ``serve.run(build_application(...))``."""
    options.check()
    model = _default_model(config)
    capacity = options.replica_capacity()
    generator = serve.deployment(
        Generator, name=GENERATOR, max_ongoing_requests=capacity, autoscaling_config=options.autoscaling(),
        ray_actor_options={"num_gpus": options.gpus_per_replica, "num_cpus": options.cpus_per_replica},
    ).bind(model, max(1, int(options.cpus_per_replica)), options.batching(), config.compile)
    # The ingress queues what the replicas cannot take yet; it may send as many as they can run
    # (a full batch each, where they gather).
    config = dataclasses.replace(config, model=model,
                                 concurrency=max(config.concurrency, options.max_replicas * capacity))
    ingress = serve.deployment(serve.ingress()(Ingress), name=INGRESS, num_replicas=1,
                               ray_actor_options={"num_cpus": 0}, **ingress_limits(config))
    return ingress.bind(config, generator)


def ingress_limits(config: ServerConfig) -> dict[str, int]:
    """Serve's limits for the ingress, chosen so that admission is ours: every request reaches
    the app (whose `JobQueue` answers 429 + Retry-After, shaped per API, once ``--queue-depth``
    jobs wait), and probes never queue behind jobs in Serve's proxy (Serve's default of 5
    ongoing requests held 15 waiting clients, and ``/healthz``, in front of the app). Serve's
    own bounded queue (503) is only the last guard against a flood of connections."""
    ongoing = config.queue_depth + config.concurrency + INGRESS_HEADROOM
    return {"max_ongoing_requests": ongoing, "max_queued_requests": INGRESS_HEADROOM}


def _default_model(config: ServerConfig) -> str:
    """The model every replica loads (the ingress's table resolves the same default)."""
    from app.server.models import ModelTable

    return ModelTable(config.model).default.ref


def build(args: dict[str, Any]):
    """Import path for a Serve config file or ``serve run app.server.ray_app:build data=DIR ...``:
    ``args`` holds ``data`` (shared job path), ``model``, ``tokens`` (a file), ``host`` (the
    address Serve's proxy listens on, as in the file's ``http_options``; default 0.0.0.0, which
    needs tokens), ``allowed_hosts`` (a list), ``compile`` (true: the compiled UNet step) and
    RayOptions fields; the deployments' own
    sections of the config file override scaling and resources."""
    from pathlib import Path

    from app.server.auth import load_tokens

    fields = {f.name for f in dataclasses.fields(RayOptions)}
    options = RayOptions(**{k: type(getattr(RayOptions, k))(v) for k, v in args.items() if k in fields})
    config = ServerConfig(data_dir=Path(args["data"]), model=args.get("model"), host=str(args.get("host", "0.0.0.0")),
                          tokens=load_tokens(args.get("tokens")), queue_depth=int(args.get("queue_depth", 16)),
                          allowed_hosts=frozenset(str(h).lower() for h in args.get("allowed_hosts", ())),
                          compile=str(args.get("compile", False)).lower() in ("1", "true", "yes")).check()
    return build_application(config, options)
