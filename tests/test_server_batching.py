"""Issue 34, item 3 on the server: compatible jobs of concurrent clients run as one batched
backend call (tiny model, CPU), each still the image of its own seed; incompatible jobs are not
gathered; a cancelled job does not break its batch-mates; admission (429) is unchanged."""

import base64
import threading

import numpy as np
import pytest

from app.core.params import GenerationParams
from app.inference.engine import Cancelled
from app.inference.registry import LoadOptions
from app.server.gather import BatchPolicy
from app.server.jobs import CANCELED, SUCCEEDED, JobStore
from app.server.metrics import Metrics
from app.server.queue import JobQueue, QueueFull
from app.service.generation import GenerationRequest, GenerationService

SIZE = 64
WORK = 256  # the smallest work size params allow
#: As for batched candidates (tests/test_gpu_pace.py): batched kernels round differently.
BATCH_TOLERANCE_CPU = 2
WAIT_S = 60
OPTIONS = LoadOptions(device="cpu", exact_batches=False)


def request(tiny, seed, prompt="a stone wall", batch=1, image_seed=0, **kw):
    rng = np.random.default_rng(image_seed)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[16:48, 16:48] = 255
    kw = {"steps": 1, "guidance": 5.0, "scheduler": "Euler a", "width": WORK, "height": WORK, **kw}
    params = GenerationParams(prompt=prompt, model=str(tiny), seed=seed, batch_size=batch, **kw)
    return GenerationRequest(params, image, mask, options=OPTIONS)


class UnetCalls:
    """Counts UNet calls and their batch sizes; ``hook`` runs before each (to block or cancel)."""

    def __init__(self, service):
        self.unet = service._backend._pipes["inpaint"].unet
        self.forward = self.unet.forward
        self.sizes: list[int] = []
        self.hook = lambda: None

    def __enter__(self):
        def counted(sample, *a, **k):
            self.sizes.append(int(sample.shape[0]))
            self.hook()
            return self.forward(sample, *a, **k)

        self.unet.forward = counted
        return self

    def __exit__(self, *exc):
        del self.unet.forward


@pytest.fixture(scope="module")
def service(tiny_inpaint_model):
    service = GenerationService()
    service.preload(str(tiny_inpaint_model), OPTIONS)
    return service


@pytest.fixture(scope="module")
def alone(service, tiny_inpaint_model):
    """Each request of the tests run alone (the reference), by (seed, prompt, image)."""
    cache = {}

    def get(seed, prompt, image_seed):
        key = (seed, prompt, image_seed)
        if key not in cache:
            cache[key] = service.run(request(tiny_inpaint_model, seed, prompt, image_seed=image_seed))
        return cache[key].candidates[0]
    return get


def diff(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


JOBS = [(3, "a stone wall", 0), (8, "a red cup", 1), (21, "moss", 2)]  # a diffusion model needs a prompt


def test_service_runs_compatible_requests_as_one_batched_call(service, tiny_inpaint_model, alone):
    requests = [request(tiny_inpaint_model, s, p, image_seed=i) for s, p, i in JOBS]
    steps = []
    with UnetCalls(service) as calls:
        records = service.run_batch(requests, [steps.append] * 3, [lambda: False] * 3)
    assert calls.sizes == [2 * len(JOBS)]  # one call for the one step: 3 items × (uncond, text)
    for record, (seed, prompt, image_seed) in zip(records, JOBS):
        assert record.params.seed == seed and record.params.prompt == prompt
        assert diff(record.candidates[0], alone(seed, prompt, image_seed)) <= BATCH_TOLERANCE_CPU
    assert len(steps) == len(JOBS)  # each job heard of the step


def test_exact_mode_gives_each_request_its_single_run_bit_for_bit(service, tiny_inpaint_model, alone):
    requests = [request(tiny_inpaint_model, s, p, image_seed=i) for s, p, i in JOBS[:2]]
    backend = service._backend
    backend.exact_batches = True  # as LoadOptions(exact_batches=True) loads it (no second load here)
    try:
        with UnetCalls(service) as calls:
            records = service.run_batch(requests, [lambda p: None] * 2, [lambda: False] * 2)
        assert calls.sizes == [2, 2]  # one call each
        assert service.batch_key(requests[0]) is None  # nothing to gain: the queue does not gather them
    finally:
        backend.exact_batches = False
    for record, (seed, prompt, image_seed) in zip(records, JOBS):
        assert np.array_equal(record.candidates[0], alone(seed, prompt, image_seed))  # a single run: one call


def test_incompatible_requests_are_not_batched(service, tiny_inpaint_model):
    a = request(tiny_inpaint_model, 1)
    b = request(tiny_inpaint_model, 2, steps=3)
    c = request(tiny_inpaint_model, 3, prompt="<lora:other:0.5> a wall")
    assert len({service.batch_key(r) for r in (a, b, c)}) == 3
    assert service.batch_key(a) == service.batch_key(request(tiny_inpaint_model, 9, "another prompt", image_seed=4))


def test_requests_that_cannot_share_a_call_run_one_after_another(service, tiny_inpaint_model, alone):
    """A weighted prompt needs embeddings of its own: same key, but the backend runs them apart."""
    requests = [request(tiny_inpaint_model, 3, "(a stone wall:1.3)"), request(tiny_inpaint_model, 8, "a red cup", image_seed=1)]
    with UnetCalls(service) as calls:
        records = service.run_batch(requests, [lambda p: None] * 2, [lambda: False] * 2)
    assert calls.sizes == [2, 2]
    assert np.array_equal(records[1].candidates[0], alone(8, "a red cup", 1))


def make_queue(service, tmp_path, window_s, max_items, depth=16):
    return JobQueue(service, JobStore(tmp_path), Metrics(), depth, batching=BatchPolicy(window_s, max_items))


def test_queue_gathers_concurrent_jobs_into_one_call(service, tiny_inpaint_model, alone, tmp_path):
    queue = make_queue(service, tmp_path, window_s=WAIT_S, max_items=len(JOBS))  # closes once full
    try:
        with UnetCalls(service) as calls:
            tickets = [queue.submit("test", {}, {}, request(tiny_inpaint_model, s, p, image_seed=i)) for s, p, i in JOBS]
            records = [t.future.result(WAIT_S) for t in tickets]
        assert calls.sizes == [2 * len(JOBS)]
        for ticket, record, (seed, prompt, image_seed) in zip(tickets, records, JOBS):
            assert ticket.job.status == SUCCEEDED and "100%" in ticket.job.logs
            assert diff(record.candidates[0], alone(seed, prompt, image_seed)) <= BATCH_TOLERANCE_CPU
    finally:
        queue.stop()


def test_queue_runs_incompatible_jobs_apart(service, tiny_inpaint_model, tmp_path):
    queue = make_queue(service, tmp_path, window_s=0.2, max_items=8)
    try:
        with UnetCalls(service) as calls:
            tickets = [queue.submit("test", {}, {}, request(tiny_inpaint_model, 1)),
                       queue.submit("test", {}, {}, request(tiny_inpaint_model, 2, steps=2))]
            for t in tickets:
                t.future.result(WAIT_S)
        assert calls.sizes == [2] * 3  # 1 + 2 steps, each job alone
    finally:
        queue.stop()


def test_a_cancelled_job_does_not_break_its_batch_mates(service, tiny_inpaint_model, alone, tmp_path):
    queue = make_queue(service, tmp_path, window_s=WAIT_S, max_items=len(JOBS))
    try:
        with UnetCalls(service) as calls:
            tickets = []
            calls.hook = lambda: queue.cancel(tickets[1].job.id)  # while the batch runs
            tickets += [queue.submit("test", {}, {}, request(tiny_inpaint_model, s, p, image_seed=i)) for s, p, i in JOBS]
            with pytest.raises(Cancelled):
                tickets[1].future.result(WAIT_S)
            records = [tickets[k].future.result(WAIT_S) for k in (0, 2)]
        assert calls.sizes == [2 * len(JOBS)]  # the batch ran to its end for the others
        assert tickets[1].job.status == CANCELED
        for record, (seed, prompt, image_seed) in zip(records, (JOBS[0], JOBS[2])):
            assert diff(record.candidates[0], alone(seed, prompt, image_seed)) <= BATCH_TOLERANCE_CPU
    finally:
        queue.stop()


def test_cancelling_every_job_of_a_batch_stops_the_call(service, tiny_inpaint_model, tmp_path):
    queue = make_queue(service, tmp_path, window_s=WAIT_S, max_items=2)
    try:
        with UnetCalls(service) as calls:
            tickets = []
            calls.hook = lambda: [queue.cancel(t.job.id) for t in tickets]
            tickets += [queue.submit("test", {}, {}, request(tiny_inpaint_model, s, steps=3)) for s in (1, 2)]
            for t in tickets:
                with pytest.raises(Cancelled):
                    t.future.result(WAIT_S)
        assert calls.sizes == [4]  # stopped after the first step
    finally:
        queue.stop()


def test_admission_and_429_are_unchanged_with_batching_on(service, tiny_inpaint_model, tmp_path):
    queue = make_queue(service, tmp_path, window_s=0.05, max_items=8, depth=2)
    started, release = threading.Event(), threading.Event()
    try:
        with UnetCalls(service) as calls:
            calls.hook = lambda: (started.set(), release.wait(WAIT_S))
            first = queue.submit("test", {}, {}, request(tiny_inpaint_model, 1))
            assert started.wait(WAIT_S)  # running: later jobs wait in the queue
            waiting = [queue.submit("test", {}, {}, request(tiny_inpaint_model, s)) for s in (2, 3)]
            assert queue.waiting() == 2
            with pytest.raises(QueueFull):
                queue.submit("test", {}, {}, request(tiny_inpaint_model, 4))
            release.set()
            for t in [first, *waiting]:
                assert t.future.result(WAIT_S).candidates
        assert calls.sizes == [2, 4]  # the two that waited ran together
    finally:
        release.set()
        queue.stop()


@pytest.mark.parametrize("field, value", [("batch_window_ms", -1.0), ("batch_window_ms", 5000.0), ("max_batch", 0)])
def test_batching_options_are_checked(tmp_path, field, value):
    from app.server.config import ConfigError, ServerConfig

    with pytest.raises(ConfigError, match=field.replace("_", "-")):
        ServerConfig(data_dir=tmp_path, **{field: value}).check()


def test_concurrent_http_clients_share_one_call_and_get_their_own_images(tiny_inpaint_model, tmp_path):
    """Three A1111 clients at once through a real uvicorn on 127.0.0.1: one batched UNet call per
    step; each answer is the image that request gets alone (within the batched tolerance)."""
    import concurrent.futures
    import dataclasses

    from app.inference.registry import capabilities, load_backend
    from app.server.config import ServerConfig
    from serverutil import b64, centre_mask, decode_png, running_server, scene

    service = GenerationService(loader=lambda ref, o: load_backend(ref, dataclasses.replace(o, exact_batches=False)),
                                capabilities=capabilities)
    config = ServerConfig(data_dir=tmp_path, model=str(tiny_inpaint_model), batch_window_ms=1000, max_batch=3)

    def body(k):
        return {"prompt": ["a stone wall", "a red cup", "grass"][k], "init_images": [b64(scene())],
                "mask": b64(centre_mask()), "seed": 5 + k, "steps": 1, "sampler_name": "Euler", "width": WORK,
                "height": WORK, "cfg_scale": 5.0, "denoising_strength": 1.0}

    with running_server(config, service) as server:
        def post(k):
            r = server.post("/sdapi/v1/img2img", json=body(k))
            assert r.status_code == 200, r.text[:300]
            return decode_png(base64.b64decode(r.json()["images"][0]))

        server.app.state.queue.batching = BatchPolicy(0)
        alone_images = [post(k) for k in range(3)]  # the first loads the model
        server.app.state.queue.batching = BatchPolicy(1.0, 3)  # closes once the three are in
        with UnetCalls(service) as calls, concurrent.futures.ThreadPoolExecutor(3) as pool:
            together = list(pool.map(post, range(3)))
        assert calls.sizes == [6]
        for a, b in zip(together, alone_images):
            assert diff(a, b) <= BATCH_TOLERANCE_CPU
        assert len({a.tobytes() for a in together}) == 3
