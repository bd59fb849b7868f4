"""A generator replica's runs as async streams of events: alone (`run_events`) or gathered with
compatible runs into one batched call (`RunGatherer`). Plain asyncio and threads, no Ray: the
replica (`ray_app.Generator`) only hands these streams to Serve.

Events: ("progress", step, total, preview), then ("result", record, runtime), ("cancelled",) or
("error", title, message, bad_input).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import UserError
from app.server.gather import BatchPolicy
from app.service import Cancelled, runtime
from app.service.generation import GenerationRequest, GenerationService


async def run_events(work_fn, device: str | None = None):
    """Run ``work_fn(progress, stop)`` on a thread and yield its events as they come (a result
    with where it ran: `runtime`, on the thread that ran it). An async
    generator on purpose: Serve cancels one (its caller cancelled, or its client left) by
    throwing into it, which sets ``stop``; a sync generator would run on to its end."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple] = asyncio.Queue()
    stop = threading.Event()

    def put(event: tuple) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    def work() -> None:
        try:
            outcome = work_fn(lambda step, total, preview: put(("progress", step, total, preview)), stop.is_set)
        except Exception as exc:
            outcome = exc
        put(_last_event(outcome, device))

    threading.Thread(target=work, name="inpaint-replica-run", daemon=True).start()
    async with contextlib.aclosing(_follow(events, stop)) as stream:
        async for event in stream:
            yield event


async def _follow(events: asyncio.Queue, stop: threading.Event):
    """Yield ``events`` up to the last one; however the caller leaves, set ``stop``."""
    try:
        while True:
            event = await events.get()
            yield event
            if event[0] != "progress":
                return
    finally:
        stop.set()


def _last_event(outcome: Any, device: str | None) -> tuple:
    """A run's record or exception as its stream's last event (`runtime`: call it on the thread that ran)."""
    if isinstance(outcome, Cancelled):
        return ("cancelled",)
    if isinstance(outcome, UserError):
        return ("error", outcome.title, outcome.message, outcome.kind)
    if isinstance(outcome, Exception):  # a replica bug fails the job, with its reason
        return ("error", "Generation failed", f"internal error: {type(outcome).__name__}: {outcome}", False)
    return ("result", outcome, runtime(device))


@dataclass(eq=False)
class _Gathering:
    """Runs waiting for batch-mates: each caller's request, event queue and stop flag."""

    callers: list[tuple[GenerationRequest, asyncio.Queue, threading.Event]] = field(default_factory=list)
    items: int = 0
    started: bool = False


class RunGatherer:
    """A replica's `run` calls with the same `GenerationService.batch_key` that arrive within
    ``policy.window_s`` of the first (up to ``policy.max_items`` candidates) run as one
    `GenerationService.run_batch`: what the plain server's queue does (`app.server.gather`), done
    here because on Ray only the replica has the model that says what is compatible. Each caller
    keeps its own stream of events (same schema as a run alone) and its own cancel."""

    def __init__(self, service: GenerationService, policy: BatchPolicy):
        self.service, self.policy = service, policy
        self._open: dict[Hashable, _Gathering] = {}  # touched on the replica's event loop only

    def key(self, request: GenerationRequest) -> Hashable | None:
        """The batch key, or None: run alone (gathering off, not batchable, or a bad request)."""
        if not self.policy.enabled:
            return None
        try:
            return self.service.batch_key(request)
        except Exception:  # its own run refuses it, and says why
            return None

    async def events(self, key: Hashable, request: GenerationRequest):
        events: asyncio.Queue[tuple] = asyncio.Queue()
        stop = threading.Event()
        items = request.params.batch_size
        gathering = self._open.get(key)
        if gathering is not None and gathering.items + items > self.policy.max_items:
            self._start(key, gathering)  # this one does not fit: the others go now, it opens the next
            gathering = None
        if gathering is None:
            gathering = self._open[key] = _Gathering()
            asyncio.get_running_loop().call_later(self.policy.window_s, self._start, key, gathering)
        gathering.callers.append((request, events, stop))
        gathering.items += items
        if gathering.items >= self.policy.max_items:
            self._start(key, gathering)
        async with contextlib.aclosing(_follow(events, stop)) as stream:
            async for event in stream:
                yield event

    def _start(self, key: Hashable, gathering: _Gathering) -> None:
        if gathering.started:
            return
        gathering.started = True
        if self._open.get(key) is gathering:
            del self._open[key]
        loop = asyncio.get_running_loop()
        callers = gathering.callers

        def put(events: asyncio.Queue, event: tuple) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        def work() -> None:
            try:
                outcomes = self.service.run_batch(
                    [request for request, _, _ in callers],
                    [lambda p, q=events: put(q, ("progress", p.step, p.total, None)) for _, events, _ in callers],
                    [stop.is_set for _, _, stop in callers])
            except Exception as exc:  # a bug in the batched path itself: every caller hears of it
                outcomes = [exc] * len(callers)
            for (request, events, _), outcome in zip(callers, outcomes):
                put(events, _last_event(outcome, request.options.device))

        threading.Thread(target=work, name="inpaint-replica-batch", daemon=True).start()
