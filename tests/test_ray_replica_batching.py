"""``serve --ray``'s generator replica gathers compatible concurrent runs into one batched call
(`RunGatherer`), each caller keeping its own stream of events and its own cancel; runs that are
not batchable go alone, as before. The replica class is used directly (no cluster) with a fake
service whose backend batches: CPU replicas run the exact mode, which never does."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from app.inference.engine import Cancelled, Progress
from app.server import ray_app
from app.server.gather import BatchPolicy
from app.server.ray_app import Generator, RayOptions

WAIT_S = 20  # a cap on waiting for a condition, never what ends a wait


class FakeService:
    """Batches requests whose ``key`` is set; ``run_batch`` waits for ``release`` mid-run."""

    def __init__(self, compile_step: bool = False):
        self.compile_step = compile_step
        self.batches: list[list] = []
        self.alone: list = []
        self.started, self.release = threading.Event(), threading.Event()
        self.cancelled_seen: list[bool] = []

    def preload(self, model_ref):
        pass

    def batch_key(self, request):
        return request.key

    def run(self, request, progress=None, cancelled=None):
        self.alone.append(request)
        progress(Progress(1, 1))
        return f"record {request.seed} alone"

    def run_batch(self, requests, progress, cancelled):
        self.batches.append(list(requests))
        for report in progress:
            report(Progress(1, 2))
        self.started.set()
        assert self.release.wait(WAIT_S)
        self.cancelled_seen = [c() for c in cancelled]
        return [Cancelled() if c() else f"record {r.seed}" for r, c in zip(requests, cancelled)]


def request(seed: int, key="same"):
    return SimpleNamespace(seed=seed, key=key, params=SimpleNamespace(batch_size=1), options=SimpleNamespace(device=None))


def replica(monkeypatch, policy: BatchPolicy) -> Generator:
    monkeypatch.setattr(ray_app, "GenerationService", FakeService)
    return Generator("fake", threads=1, batching=policy)


async def collect(stream) -> list[tuple]:
    return [event async for event in stream]


def test_concurrent_compatible_runs_become_one_batched_call_each_with_its_own_result(monkeypatch):
    generator = replica(monkeypatch, BatchPolicy(window_s=WAIT_S, max_items=3))  # full at 3: never waits the window
    generator.service.release.set()

    async def main():
        return await asyncio.gather(*(collect(generator.run(request(seed))) for seed in (7, 8, 9)))

    streams = asyncio.run(main())
    assert [[r.seed for r in batch] for batch in generator.service.batches] == [[7, 8, 9]]
    assert generator.service.alone == []
    for seed, events in zip((7, 8, 9), streams):
        assert events[0] == ("progress", 1, 2, None)  # the event schema of a run alone
        kind, record, runtime = events[-1]
        assert (kind, record) == ("result", f"record {seed}") and set(runtime) == {"device", "dtype", "threads"}


def test_the_window_closes_a_batch_that_is_not_full(monkeypatch):
    generator = replica(monkeypatch, BatchPolicy(window_s=0.001, max_items=8))
    generator.service.release.set()

    async def main():
        return await asyncio.gather(collect(generator.run(request(1))), collect(generator.run(request(2))))

    streams = asyncio.run(main())
    assert [[r.seed for r in batch] for batch in generator.service.batches] == [[1, 2]]  # arrived within the window
    assert [events[-1][:2] for events in streams] == [("result", "record 1"), ("result", "record 2")]


def test_runs_that_are_not_batchable_or_another_key_do_not_join(monkeypatch):
    generator = replica(monkeypatch, BatchPolicy(window_s=WAIT_S, max_items=2))
    generator.service.release.set()

    async def main():
        return await asyncio.gather(collect(generator.run(request(1, key=None))), collect(generator.run(request(2))),
                                    collect(generator.run(request(3, key="other"))), collect(generator.run(request(4))),
                                    collect(generator.run(request(5, key="other"))))

    streams = asyncio.run(main())
    assert [r.seed for r in generator.service.alone] == [1]  # batch_key None (the exact mode): alone, as before
    assert sorted([r.seed for r in batch] for batch in generator.service.batches) == [[2, 4], [3, 5]]
    assert streams[0][-1][:2] == ("result", "record 1 alone")


def test_gathering_off_runs_each_alone(monkeypatch):
    generator = replica(monkeypatch, BatchPolicy(window_s=0))

    async def main():
        return await asyncio.gather(collect(generator.run(request(1))), collect(generator.run(request(2))))

    asyncio.run(main())
    assert generator.service.batches == [] and [r.seed for r in generator.service.alone] == [1, 2]


def test_a_caller_that_leaves_cancels_only_its_own_run(monkeypatch):
    generator = replica(monkeypatch, BatchPolicy(window_s=WAIT_S, max_items=2))
    service = generator.service

    async def main():
        leaving, staying = generator.run(request(1)), generator.run(request(2))
        first = asyncio.ensure_future(leaving.__anext__())
        rest = asyncio.ensure_future(collect(staying))
        assert await asyncio.wait_for(first, WAIT_S) == ("progress", 1, 2, None)
        await leaving.aclose()  # as Serve does when the caller cancels or its client leaves
        service.release.set()
        return await asyncio.wait_for(rest, WAIT_S)

    events = asyncio.run(main())
    assert service.cancelled_seen == [True, False]
    assert events[-1][:2] == ("result", "record 2")


def test_only_gpu_replicas_gather_and_take_a_full_batch_at_once():
    cpu, gpu = RayOptions(), RayOptions(gpus_per_replica=1, batch_window_ms=5, max_batch=4)
    assert not cpu.batching().enabled and cpu.replica_capacity() == 1  # the exact mode: one at a time, as before
    assert gpu.batching() == BatchPolicy(0.005, 4) and gpu.replica_capacity() == 4
    assert RayOptions(gpus_per_replica=1, batch_window_ms=0).replica_capacity() == 1
