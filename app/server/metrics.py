"""Prometheus metrics of the job queue, in a registry of the app's own (so two apps in one
process, as in the tests, do not collide in prometheus-client's global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge("inpaint_queue_depth", "Jobs waiting in the queue (admitted, not yet running)", registry=self.registry)
        self.running = Gauge("inpaint_jobs_running", "Jobs running now (at most 1 on a plain server; up to the generator replicas on Ray)", registry=self.registry)
        self.finished = Counter("inpaint_jobs", "Finished jobs by status (succeeded, failed, canceled)",
                                ["status"], registry=self.registry)
        self.rejected = Counter("inpaint_jobs_rejected", "Jobs refused with 429 because the queue was full",
                                registry=self.registry)
        self.job_seconds = Histogram("inpaint_job_seconds", "Run time of finished jobs",
                                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
                                     registry=self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)
