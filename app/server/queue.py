"""One bounded FIFO job queue in front of the generation service.

Routes put tickets in; one worker thread takes them in order and calls `GenerationService.run`
(which serialises runs anyway: one GPU, one job at a time). A full queue refuses at once with a
`QueueFull` carrying a Retry-After estimate, instead of letting clients pile up. Cancelling a
ticket stops a waiting job before it starts, or a running one at the engine's next step.

Admission comes first: a route takes a `Slot` (`reserve`) before it fetches or decodes its
images, so a full queue refuses a request before it costs memory; `submit` then spends the slot.
A ticket either runs a `GenerationRequest` through the service (and gets a job record and
outputs), or runs a ``task`` (the backend route's one region: streamed, nothing stored); both
count in the same depth and metrics.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import UserError
from app.core.records import GenerationRecord
from app.service import Cancelled, Progress, threads
from app.server.errors import scrub_paths
from app.server.gather import BatchPolicy
from app.server.jobs import CANCELED, FAILED, PROCESSING, SUCCEEDED, JobRecord, JobStore, new_id
from app.server.metrics import Metrics
from app.service.generation import GenerationRequest, GenerationService

log = logging.getLogger(__name__)


class QueueFull(Exception):
    def __init__(self, depth: int, retry_after: int):
        super().__init__(f"the job queue is full ({depth} waiting); retry in {retry_after} s")
        self.retry_after = retry_after


class Slot:
    """A place in the queue held while a route fetches and decodes its inputs; `submit` spends
    it, `release` gives it back (idempotent: a route releases on every way out)."""

    def __init__(self, queue: JobQueue):
        self._queue, self.held = queue, True

    def release(self) -> None:
        self._queue.release(self)


@dataclass(eq=False)
class Ticket:
    job: JobRecord
    request: GenerationRequest | None
    #: Run instead of the service (``task(ticket)``); its result resolves ``future``.
    task: Callable[[Ticket], Any] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    #: Resolves to the `GenerationRecord`, or to the exception the run raised.
    future: Future = field(default_factory=Future)
    #: Resolves once the job's first record is on disk (written while the job runs).
    recorded: Future = field(default_factory=Future)
    step: int = 0
    total: int = 0


class JobQueue:
    def __init__(self, service: GenerationService, store: JobStore, metrics: Metrics, depth: int = 16,
                 workers: int = 1, runtime: Callable[[GenerationRequest], dict[str, Any]] | None = None,
                 batching: BatchPolicy = BatchPolicy(window_s=0)):
        """``workers`` jobs run at once: 1 for one local model; a Ray cluster's replicas take more.
        ``runtime(request)``, called on the worker after a run: where it ran, for the record.
        ``batching``: how a worker gathers compatible jobs into one batched run (`app.server.gather`)."""
        self.service, self.store, self.metrics, self.depth = service, store, metrics, depth
        self.runtime = runtime or (lambda request: threads.runtime(request.options.device))
        self.batching = batching
        self._waiting: collections.deque[Ticket] = collections.deque()
        self._reserved = 0  # slots held by routes still reading their inputs
        self._cond = threading.Condition()
        self._tickets: dict[str, Ticket] = {}
        self._running: list[Ticket] = []
        self._stopping = False
        self._mean_s = 1.0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="inpaint-job-writer")
        self._workers = [threading.Thread(target=self._work, name=f"inpaint-job-worker-{i}", daemon=True)
                         for i in range(workers)]
        for worker in self._workers:
            worker.start()

    @property
    def current(self) -> Ticket | None:
        """The running job that started first, or None when none runs."""
        running = self._running
        return running[0] if running else None

    # -- routes' side -------------------------------------------------------------------------
    def reserve(self) -> Slot:
        """Hold a place for a job whose inputs are still to be read; `QueueFull` when none is free."""
        with self._cond:
            if len(self._waiting) + self._reserved >= self.depth:
                self.metrics.rejected.inc()
                raise QueueFull(len(self._waiting), self.retry_after())
            self._reserved += 1
            return Slot(self)

    def submit(self, api: str, params: dict[str, Any], extra: Mapping[str, Any], request: GenerationRequest,
               slot: Slot | None = None, owner: str = "") -> Ticket:
        """Queue a job; its record is created only once there is room. The record is written to
        disk by the writer thread while the job runs (two fsyncs off the request's path): wait
        for ``ticket.recorded`` before answering with the job's id while it is unfinished."""
        with self._cond:
            self._admit(slot)
            job = self.store.create(api, params, dict(extra), persist=False, owner=owner)
            ticket = Ticket(job, request)
            ticket.recorded = self._writer.submit(self.store.persist, job)
            self._enqueue(ticket)
        return ticket

    def submit_task(self, api: str, task: Callable[[Ticket], Any], slot: Slot | None = None, owner: str = "") -> Ticket:
        """Queue a ``task`` that runs in turn with the jobs; it has an id (cancel, progress) but no
        stored record."""
        with self._cond:
            self._admit(slot)
            ticket = Ticket(JobRecord(id=new_id(), api=api, owner=owner), None, task=task)
            ticket.recorded.set_result(None)
            self._enqueue(ticket)
        return ticket

    def release(self, slot: Slot) -> None:
        """Give back a slot that was not spent (no-op for one that was)."""
        with self._cond:
            self._spend(slot)

    def _spend(self, slot: Slot) -> bool:
        """Called holding the lock."""
        if not slot.held:
            return False
        slot.held = False
        self._reserved -= 1
        return True

    def _admit(self, slot: Slot | None) -> None:
        """Spend ``slot``, or find room now (called holding the lock)."""
        if slot is not None and self._spend(slot):
            return
        if len(self._waiting) + self._reserved >= self.depth:
            self.metrics.rejected.inc()
            raise QueueFull(len(self._waiting), self.retry_after())

    def _enqueue(self, ticket: Ticket) -> None:
        self._waiting.append(ticket)
        self._tickets[ticket.job.id] = ticket
        self.metrics.queue_depth.set(len(self._waiting))
        self._cond.notify()

    def running(self, owner: str | None = None) -> list[Ticket]:
        """The running tickets (of ``owner`` only, when given)."""
        return [t for t in list(self._running) if owner is None or t.job.owner == owner]

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead times the mean job time."""
        return max(1, round(self._mean_s * (len(self._waiting) + 1)))

    def cancel(self, job_id: str) -> bool:
        """Ask a waiting or running job to stop; False when it is unknown or already finished."""
        ticket = self._tickets.get(job_id)
        if ticket is None or ticket.future.done():
            return False
        ticket.cancel.set()
        return True

    def ticket(self, job_id: str) -> Ticket | None:
        return self._tickets.get(job_id)

    def waiting(self) -> int:
        return len(self._waiting)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what waits and runs, and end the worker (server shutdown)."""
        with self._cond:
            self._stopping = True
            for ticket in list(self._waiting) + self._running:
                ticket.cancel.set()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        self._writer.shutdown(wait=True)  # finished jobs get their files and records

    # -- the worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if not self._waiting:
                    return
                ticket = self._waiting.popleft()
                self.metrics.queue_depth.set(len(self._waiting))
                self._running.append(ticket)
            batch = self._gather(ticket)
            try:
                if len(batch) == 1:
                    self._run(ticket)
                else:
                    self._run_batch(batch)
            finally:
                with self._cond:
                    for done in batch:
                        self._running.remove(done)

    def _gather(self, first: Ticket) -> list[Ticket]:
        """``first`` and the compatible jobs that wait, or arrive within the batching window."""
        policy = self.batching
        try:
            key = self.service.batch_key(first.request) if policy.enabled and first.request is not None else None
        except Exception:  # a request its own run will refuse: it runs alone and says why
            key = None
        if key is None:
            return [first]
        batch = [first]
        deadline = time.monotonic() + policy.window_s
        with self._cond:
            while not self._stopping:
                full = policy.take(batch, key, self._waiting, self.service.batch_key)
                remaining = deadline - time.monotonic()
                if full or remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._running.extend(batch[1:])
            self.metrics.queue_depth.set(len(self._waiting))
            if self._waiting:
                self._cond.notify()  # a wake-up this worker took may have been meant for another
        return batch

    def _run_batch(self, tickets: list[Ticket]) -> None:
        """Run gathered jobs as one batched call; each is finished, saved or failed on its own."""
        live = []
        for ticket in tickets:
            if ticket.cancel.is_set():
                self._finish(ticket, CANCELED, error=None, result=Cancelled())
            else:
                live.append(ticket)
        t0 = time.time()
        for ticket in live:
            job = ticket.job
            self.store.update(job, persist=False, status=PROCESSING, started_at=t0,
                              logs=job.logs + f"started (batched with {len(live) - 1} other jobs)\n")
            self.metrics.running.inc()
        try:
            outcomes = self.service.run_batch([t.request for t in live],
                                              [lambda p, t=t: self._progress(t, p) for t in live],
                                              [t.cancel.is_set for t in live])
        except Exception as exc:  # a bug in the batched path itself: every job hears of it
            outcomes = [exc] * len(live)
        finally:
            for _ in live:
                self.metrics.running.dec()
        for ticket, outcome in zip(live, outcomes):
            if isinstance(outcome, Exception):
                self._fail(ticket, outcome, t0)
                continue
            try:
                ticket.job.runtime = self.runtime(ticket.request)
            except Exception as exc:
                self._fail(ticket, exc, t0)
            else:
                self._writer.submit(self._save, ticket, outcome, t0)

    def _run(self, ticket: Ticket) -> None:
        """Run one job; its outputs are written by the writer thread, so the next job starts
        while this one's PNGs are encoded (on a GPU the model never waits for the CPU)."""
        if ticket.task is not None:
            return self._run_task(ticket)
        job = ticket.job
        if ticket.cancel.is_set():
            self._finish(ticket, CANCELED, error=None, result=Cancelled())
            return
        t0 = time.time()
        self.store.update(job, persist=False, status=PROCESSING, started_at=t0, logs=job.logs + "started\n")
        self.metrics.running.inc()
        try:
            record = self.service.run(ticket.request, lambda p: self._progress(ticket, p), ticket.cancel.is_set)
            job.runtime = self.runtime(ticket.request)
        except Exception as exc:
            self._fail(ticket, exc, t0)
        else:
            self._writer.submit(self._save, ticket, record, t0)
        finally:
            self.metrics.running.dec()

    def _run_task(self, ticket: Ticket) -> None:
        t0 = time.time()
        self.metrics.running.inc()
        try:
            if ticket.cancel.is_set():  # its client left while it waited
                raise Cancelled()
            result = ticket.task(ticket)
        except BaseException as exc:  # the task's client hears of it; the worker goes on
            status = CANCELED if isinstance(exc, Cancelled) else FAILED
            outcome: Any = exc
        else:
            status, outcome = SUCCEEDED, result
        finally:
            self.metrics.running.dec()
        self._count(status, time.time() - t0)
        with self._cond:
            self._tickets.pop(ticket.job.id, None)
        if isinstance(outcome, BaseException):
            ticket.future.set_exception(outcome)
        else:
            ticket.future.set_result(outcome)

    def _count(self, status: str, elapsed: float | None) -> None:
        self.metrics.finished.labels(status).inc()
        if elapsed is not None:
            self.metrics.job_seconds.observe(elapsed)
            if status == SUCCEEDED:
                self._mean_s = 0.8 * self._mean_s + 0.2 * elapsed

    def _save(self, ticket: Ticket, record: GenerationRecord, t0: float) -> None:
        try:
            self.store.save_outputs(ticket.job, record)
        except Exception as exc:
            self._fail(ticket, exc, t0)
        else:
            self._finish(ticket, SUCCEEDED, None, record, t0)

    def _fail(self, ticket: Ticket, exc: Exception, t0: float) -> None:
        if isinstance(exc, Cancelled):
            self._finish(ticket, CANCELED, None, exc, t0)
        elif isinstance(exc, UserError):
            self._finish(ticket, FAILED, scrub_paths(exc.message), exc, t0)
        else:  # a bug, a library failure or a full disk: the job fails, the server goes on
            log.error("job %s failed", ticket.job.id, exc_info=exc)
            self._finish(ticket, FAILED, scrub_paths(f"internal error: {type(exc).__name__}: {exc}"), exc, t0)

    def _progress(self, ticket: Ticket, progress: Progress) -> None:
        step, total = int(progress.step), int(progress.total)
        if (step, total) == (ticket.step, ticket.total) or total <= 0:
            return
        ticket.step, ticket.total = step, total
        pct = round(100 * step / total)
        bar = "█" * (pct // 10) + " " * (10 - pct // 10)
        ticket.job.logs += f"{pct:3d}%|{bar}| {step}/{total}\n"  # tqdm's format: replicate parses it

    def _finish(self, ticket: Ticket, status: str, error: str | None, result: GenerationRecord | BaseException,
                t0: float | None = None) -> None:
        now = time.time()
        elapsed = None if t0 is None else now - t0
        logs = ticket.job.logs + (f"{status}" + (f": {error}" if error else "") + "\n")
        try:
            self.store.update(ticket.job, status=status, error=error, completed_at=now, predict_time=elapsed, logs=logs)
        except OSError as exc:  # a full or failing disk: the client hears of it instead of waiting forever
            log.error("job %s: its record cannot be written", ticket.job.id, exc_info=exc)
            status, result = FAILED, exc
            self.store.update(ticket.job, persist=False, status=FAILED, error=f"the job record cannot be written: {exc}")
        self._count(status, elapsed)
        with self._cond:
            self._tickets.pop(ticket.job.id, None)
        if isinstance(result, BaseException):
            ticket.future.set_exception(result)
        else:
            ticket.future.set_result(result)
