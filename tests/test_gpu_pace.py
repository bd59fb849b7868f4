"""Issue 34 on the CPU, tiny models: no host round trip per denoising step, batches that keep
each seed's inputs, the compiled UNet step prepared in the background (and its fallbacks), and
rate-limited previews. The GPU figures are in docs/PERFORMANCE_GPU.md."""

import collections
import logging

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from app.core.params import GenerationParams
from app.inference.diffusers.preview import PreviewPump
from app.inference.engine import BackendRequest, Engine, Job
from app.inference.registry import LoadOptions, load_backend
from test_diffusion import make_request as diffusion_request

SIZE = 64
#: Max |Δ| (8-bit levels) between a batched candidate and the single run of its seed, measured
#: on this CPU (tiny model, fp32): batched kernels round differently, nothing else differs.
BATCH_TOLERANCE_CPU = 2
#: Max |Δ| between the compiled and the eager step's images (CPU).
COMPILE_TOLERANCE_CPU = 2


@pytest.fixture(scope="module")
def backend(tiny_inpaint_model):
    return load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))


def make_request(seeds=(11,), size=SIZE, **kw):
    """test_diffusion's request, with two steps and real guidance (a step sequence to count)."""
    return diffusion_request(seeds, size, **{"steps": 2, "guidance": 5.0, **kw})


def run(backend, request, progress=None, cancelled=None):
    return backend.generate(request, progress or (lambda *a: None), cancelled or (lambda: False))


def diff(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# -- 1. no host sync per step --------------------------------------------------------------------
class HostSyncs(TorchDispatchMode):
    """Counts, per denoising step, what makes the host wait for the device: reading a device
    tensor's value (``aten._local_scalar_dense``: ``.item()``, ``bool()``, Python comparisons),
    ``nonzero`` (its size depends on values), copies from a device to the CPU, and tensors built
    from Python data (``lift_fresh``: a host→device copy each step). Tensors diffusers' schedulers
    keep on the CPU on purpose (``sigmas``, "to avoid too much CPU/GPU communication"), and what
    is computed from them alone, are host values: reading them waits for nothing, so they are not
    counted. On this CPU-only machine every tensor is on the CPU; what is counted is what would be
    on the GPU."""

    def __init__(self):
        super().__init__()
        self.step = 0
        self.host = set()  # storages of the scheduler's host-side tensors
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        inputs = [t for t in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if name == "_local_scalar_dense" and first is not None and first.untyped_storage().data_ptr() not in self.host:
            self.counts[(self.step, name)] += 1
        elif name in ("nonzero", "lift_fresh", "lift_fresh_copy"):
            self.counts[(self.step, name)] += 1
        elif name in ("_to_copy", "copy_") and first is not None:
            src = args[1] if name == "copy_" else first
            dst = kwargs.get("device") if name == "_to_copy" else first.device
            if isinstance(src, torch.Tensor) and src.device.type != "cpu" and dst is not None and torch.device(dst).type == "cpu":
                self.counts[(self.step, "device→cpu")] += 1
        out = func(*args, **kwargs)
        made = {t.untyped_storage().data_ptr() for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)}
        if inputs and all(t.untyped_storage().data_ptr() in self.host for t in inputs):
            self.host |= made
        else:  # a device value, even where the allocator reuses a freed host tensor's memory
            self.host -= made
        return out


@pytest.mark.parametrize("scheduler", ["Euler", "Euler a", "DPM++ 2M Karras"])
def test_no_host_sync_in_denoising_steps(backend, scheduler):
    """Steps 2…N−1 make no host round trip, previews included (they are copied non-blocking and
    read a step later). Step 1 holds the run's set-up (the scheduler finds its start index once)
    and the last step reads its preview at once (the decode that follows syncs anyway)."""
    steps = 8
    clock = iter(np.arange(0, 100, 0.1))  # a step every 0.1 s: previews start every third step
    backend.preview_clock = lambda: float(next(clock))
    mode = HostSyncs()
    previews = []

    def progress(step, total, preview):
        mode.step = step
        sched = backend.pipeline_for("inpaint").scheduler
        mode.host |= {t.untyped_storage().data_ptr() for t in vars(sched).values() if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t is not sched.timesteps}
        previews.append(preview is not None)

    try:
        with mode:
            run(backend, make_request(steps=steps, scheduler=scheduler), progress)
    finally:
        backend.preview_clock = __import__("time").monotonic
    per_step = {s: sum(n for (k, _), n in mode.counts.items() if k == s) for s in range(1, steps - 1)}
    assert per_step == {s: 0 for s in range(1, steps - 1)}, mode.counts  # key s = the step after callback s
    assert 2 <= sum(previews[:-1]) <= 3 and previews[-1]  # rate-limited, each delivered a step after it started


def test_preview_pump_is_rate_limited_and_reads_a_step_later():
    times = iter(np.arange(0, 10, 0.05))  # 20 steps per second
    pump = PreviewPump("cpu", interval_s=0.25, clock=lambda: float(next(times)))
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    shown = [pump.step(latents) is not None for _ in range(40)]  # two seconds of steps
    assert pump.started == 8 and sum(shown) == 8  # ≤ 4 per second
    assert not shown[0] and shown[1]  # started at step 1, read at step 2
    assert pump.step(latents, final=True).shape == (8, 8, 3)  # the last step's preview at once


# -- 2. batches: fast and still exact ------------------------------------------------------------
def first_unet_input(backend, request):
    """The first UNet call's sample input (latents ⊕ mask ⊕ masked-image latents, CFG doubled)."""
    unet = backend.components["unet"]
    seen = []
    handle = unet.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()) if not seen else None)
    try:
        images = run(backend, request)
    finally:
        handle.remove()
    return seen[0], images


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_batched_items_start_from_their_own_seed(backend, strength):
    """One batched call for four candidates: item k's initial noise (and image latents) and
    masked-image latents are bit-identical to a single run with seed s+k; the images agree
    within the measured rounding of batched kernels."""
    seeds = (40, 41, 42, 43)
    backend.exact_batches = False
    try:
        calls = []
        batched_in, batch = first_unet_input(backend, make_request(seeds, strength=strength))
        run(backend, make_request(seeds, strength=strength), lambda s, t, p: calls.append(t))
    finally:
        backend.exact_batches = True
    steps = int(2 * strength)  # diffusers runs steps × strength
    assert calls == [steps] * steps  # one call: `steps` steps in all, not 4 × steps
    n = len(seeds)
    for k, seed in enumerate(seeds):
        single_in, single = first_unet_input(backend, make_request((seed,), strength=strength))
        assert torch.equal(batched_in[k], single_in[0]) and torch.equal(batched_in[n + k], single_in[1])
        assert diff(batch[k], single[0]) <= BATCH_TOLERANCE_CPU
    assert len({b.tobytes() for b in batch}) == n


def test_exact_mode_is_bit_identical_to_single_runs(backend):
    assert backend.exact_batches  # the CPU default: batching gains nothing here
    batch = run(backend, make_request((40, 41, 42)))
    for k, seed in enumerate((40, 41, 42)):
        assert np.array_equal(batch[k], run(backend, make_request((seed,)))[0])


def test_loadoptions_choose_the_batch_mode(tiny_inpaint_model):
    fast = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu", exact_batches=False))
    assert not fast.exact_batches and fast.batched(fast.pipeline_for("inpaint"), make_request((1, 2)))
    assert not fast.batched(fast.pipeline_for("inpaint"), make_request((1, 2), masked_content="latent_noise"))


# -- 3 and 4. the compiled step: background, buckets, fallbacks ---------------------------------------
class Gate:
    """Holds the background compile until the test opens it."""

    def __init__(self, fn):
        import threading

        self.fn, self.open = fn, threading.Event()

    def __call__(self, *a, **k):
        assert self.open.wait(60)
        return self.fn(*a, **k)


@pytest.fixture(scope="module")
def compiled(tiny_inpaint_model, tmp_path_factory):
    """A backend whose compiled step uses torch.compile's "aot_eager" backend (dynamo + AOTAutograd,
    no Inductor): Inductor's CPU compile of even the tiny UNet took 194 s on this loaded 2-core
    machine (its images differed from eager by max |Δ| 1), too slow for the suite."""
    b = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))
    b.enable_compile(backend="aot_eager", cache_root=tmp_path_factory.mktemp("compile-cache"))
    yield b
    b.compiled.uninstall()


def test_first_generate_runs_eager_while_the_step_compiles(compiled, backend):
    import torch._dynamo.utils

    cu = compiled.compiled
    cu._compiled = Gate(cu._compiled)
    req = make_request(steps=3)
    eager = run(backend, req)[0]
    first = run(compiled, req)[0]  # returns while the compile is held at the gate
    assert cu.compiles == 0 and cu.compiled_calls == 0 and np.array_equal(first, eager)
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    cu._compiled.open.set()
    cu.wait(120)
    cu._compiled = cu._compiled.fn
    assert cu.compiles == 1 and cu.failed is None
    second = run(compiled, req)[0]
    assert cu.compiled_calls == 3  # every step of the next run replays the compiled step
    assert diff(second, eager) <= COMPILE_TOLERANCE_CPU
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - before == 1


def test_each_shape_bucket_compiles_once(compiled):
    import torch._dynamo.utils

    cu = compiled.compiled
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"], cu.compiles
    wide = make_request(size=64, steps=2)
    wide = BackendRequest(np.concatenate([wide.image] * 2, 1), np.concatenate([wide.mask] * 2, 1), wide.params, wide.seeds)
    for _ in range(2):
        run(compiled, wide)
        cu.wait(120)
        run(compiled, make_request(steps=2))  # the bucket of the test before: compiled already
    assert cu.compiles - before[1] == 1
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - before[0] == 1


def test_engine_rounds_work_sizes_to_the_compiled_buckets(compiled):
    mask = np.zeros((300, 500), np.uint8)
    mask[100:170, 200:330] = 255
    params = GenerationParams(prompt="x", steps=1)
    _, _, plans, _ = Engine(compiled).plan(Job(params, np.zeros((300, 500, 3), np.uint8), mask))
    assert all(w % 64 == 0 and h % 64 == 0 for p in plans for w, h in [p.work_size])
    _, _, plans, _ = Engine(compiled).plan(Job(params.replace(width=264, height=328), np.zeros((300, 500, 3), np.uint8), mask))
    assert plans[0].work_size == (264, 328)  # a size the user asked for is kept


def fake_compile(behaviour):
    """A stand-in for torch.compile whose compiled function fails as ``behaviour`` says."""
    calls = {"n": 0}

    def compile_(fn, **kwargs):
        if behaviour == "set-up":
            raise RuntimeError("inductor unavailable")

        def compiled_fn(*a, **k):
            calls["n"] += 1
            if behaviour == "capture" or (behaviour == "replay" and calls["n"] > 1):
                raise RuntimeError(f"CUDA graph {behaviour} failed")
            return fn(*a, **k)

        return compiled_fn

    return compile_


@pytest.mark.parametrize("failure", ["set-up", "capture", "replay", "cache"])
def test_any_compile_failure_falls_back_to_eager_once(failure, tiny_inpaint_model, backend, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(torch, "compile", fake_compile(failure))
    b = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))
    if failure == "cache":
        from app.inference.diffusers.compiled import artefact_path

        bad = artefact_path(tmp_path, b.name, torch.float32, b.device.description)
        bad.write_bytes(b"not a cache")
    req = make_request()
    eager = run(backend, req)[0]
    with caplog.at_level(logging.WARNING, logger="app.inference.diffusers.compiled"):
        b.enable_compile(cache_root=tmp_path)
        for _ in range(3):
            assert np.array_equal(run(b, req)[0], eager)  # every run succeeds, with eager's pixels
            b.compiled.wait(30)
    stage = {"set-up": "compile set-up", "capture": "compile", "replay": "replay", "cache": "cache load"}[failure]
    assert b.compiled.failed == stage and b.size_bucket is None
    warnings = [r for r in caplog.records if "turned off" in r.getMessage()]
    assert len(warnings) == 1 and stage in warnings[0].getMessage()
    if failure == "cache":
        assert not bad.exists()  # the next launch compiles afresh


def test_lora_switch_scheduler_change_and_low_memory_keep_working_with_compile(tiny_inpaint_model, backend, monkeypatch, tmp_path):
    """A LoRA switch is a new bucket (eager until its step is compiled, never a recompile inside
    a run); a scheduler change is not; low-memory mode takes the compiled step out."""
    from tinymodels import save_diffusers_lora

    (tmp_path / "Lora" / "film").mkdir(parents=True)
    save_diffusers_lora(tmp_path / "Lora" / "film", seed=3)
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path))
    monkeypatch.setattr(torch, "compile", fake_compile("works"))
    b = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))
    b.enable_compile(cache_root=tmp_path / "cache")
    for prompt, scheduler in [("a wall", "Euler a"), ("a wall", "DDIM"), ("a wall <lora:film:1>", "Euler a"),
                              ("a wall <lora:film:0.5>", "Euler a"), ("a wall", "DDIM")]:
        for _ in range(2):
            req = make_request(prompt=prompt, scheduler=scheduler)
            assert np.array_equal(run(b, req)[0], run(backend, req)[0])
            b.compiled.wait(30)
    assert b.compiled.compiles == 3 and b.compiled.failed is None  # no LoRA, film at 1, film at 0.5
    b.set_low_memory(True)
    assert b.compiled is None and b.size_bucket is None
    assert run(b, make_request())[0].shape == (SIZE, SIZE, 3)
