"""`DiffusionBackend`: one loaded SD 1.x model behind the engine's Backend protocol.

It calls the public diffusers pipelines with their public arguments, so the diffusion pass is
exactly what diffusers gives for the same inputs (tests/test_diffusion.py compares arrays):
- 9-channel inpainting UNet: `StableDiffusionInpaintPipeline` for inpaint and img2img (img2img
  arrives as a full mask from the engine);
- 4-channel base UNet: the same inpaint pipeline (it blends the known latents back every step),
  and `StableDiffusionImg2ImgPipeline` for img2img, made with ``from_pipe`` so both share the one
  set of weights in memory.
Batch item k gets the inputs of a single run with ``torch.Generator().manual_seed(s + k)``:
either in one batched call whose items are each prepared from their own generator
(`app.inference.diffusers.batching`: fast; the same image as a single run within the measured
rounding of batched kernels), or, in the exact mode, as its own call (bit-identical). Generators
live on the CPU, so a seed gives the same starting noise on CUDA, MPS and CPU. Seeds are 64-bit
and passed whole; torch's CPU generator draws from their
low 32 bits, as ComfyUI's CPU noise does, so a ComfyUI seed above 2**32 starts from its noise.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from app.inference.diffusers.device import DeviceChoice
from app.inference.engine import BackendRequest, Cancelled, CancelFn
from app.inference.errors import GpuOutOfMemory
from app.inference.diffusers.catalog import ModelInfo
from app.inference.diffusers.control_pipes import ControlNets
from app.inference.diffusers.decoding import LatentDecoder
from app.inference.diffusers.network_files import network_hashes
from app.inference.diffusers.batching import per_seed_inputs
from app.inference.diffusers.preview import PreviewPump
from app.inference.diffusers.networks import ExtraNetworks
from app.inference.diffusers.pipeline_inputs import fills_per_seed, latent_nothing_inputs, needs_embeddings, noise_fill, prompt_kwargs, takes_mask
from app.inference.diffusers.ip_adapter import ReferenceAdapter
from app.core.prompt_syntax import extract_loras
from app.inference.diffusers.schedulers import make_scheduler


def _is_oom(exc: BaseException) -> bool:
    """torch's out-of-memory, typed or not (MPS and older CUDA builds raise a plain RuntimeError):
    the one place it becomes our typed `GpuOutOfMemory`, which every front end maps by kind."""
    if isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class DiffusionBackend:
    """Runs SD 1.x inpainting/img2img through diffusers. One run at a time (the worker serialises).

    Options: ``low_memory`` (attention slicing, VAE slicing+tiling, model CPU offload on GPUs),
    ``fast`` (CUDA: channels_last, fused QKV projections, TF32; default on for CUDA),
    ``compile`` (the compiled UNet step of `app.inference.diffusers.compiled`, prepared in the
    background; ``compile_backend`` picks a torch.compile backend other than Inductor),
    ``safety_checker`` (off by default for local use), ``preview_every`` (steps between latent
    previews, on top of the ≤ 4/s rate), ``exact_batches`` (True: one call per candidate,
    bit-identical to single runs; False: one batched call; None: batched on GPUs, exact on the CPU,
    where batching gains nothing)."""

    native_resolution = False

    def __init__(self, pipe, *, info: ModelInfo, device: DeviceChoice, load_seconds: float = 0.0,
                 low_memory: bool = False, fast: bool | None = None, compile: bool = False,
                 safety_checker: bool = False, preview_every: int = 1, exact_batches: bool | None = None,
                 compile_backend: str | None = None):
        self.info = info
        self.name = info.ref
        self.device = device
        self.load_seconds = load_seconds
        self.inpainting = pipe.unet.config.in_channels == 9
        self.preview_every = max(1, preview_every)
        #: True: batch item k is its own call (bit-identical to a single run with seed s+k);
        #: False: one batched call, each item prepared from its own seed (same image within rounding).
        self.exact_batches = device.type == "cpu" if exact_batches is None else exact_batches
        #: Seconds between previews (≤ 4/s); the clock is replaceable for tests.
        self.preview_interval_s = 0.25
        self.preview_clock = time.monotonic
        self.low_memory = False
        self.decoder = LatentDecoder()  # latents → RGB8, with the fp16 guard
        self.timings: dict[str, float] = {"load": load_seconds}
        self._pipes = {"inpaint": pipe}
        #: LoRA adapters and embeddings; on the shared modules, so every pipeline of ours sees them.
        self.networks = ExtraNetworks(pipe)
        #: ControlNet models and the pipelines made over ours for them.
        self.controls = ControlNets(device)
        #: The reference image's IP-Adapter, on the same shared UNet.
        self.references = ReferenceAdapter(self._pipes, device.device, device.dtype)
        self._base_scheduler_config = pipe.scheduler.config
        self.fast = device.type == "cuda" if fast is None else fast
        if self.fast:
            self._apply_fast_path(pipe)
        #: The compiled UNet step (`CompiledUnet`) or None when off.
        self.compiled = None
        if compile and not low_memory:  # offload hooks move weights per call: nothing to compile against
            self.enable_compile(compile_backend)
        if safety_checker:
            self.enable_safety_checker()
        if low_memory:
            self.set_low_memory(True)

    # -- configuration ------------------------------------------------------------------------
    @property
    def components(self) -> dict:
        return self._pipes["inpaint"].components

    def _apply_fast_path(self, pipe) -> None:
        """channels_last suits the convolution kernels of tensor cores; fused QKV turns three
        projection matmuls into one; TF32 speeds fp32 leftovers. SDPA is diffusers' default
        attention on torch 2. Images change only within fp16 rounding."""
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        for module in (pipe.unet, pipe.vae):
            if hasattr(module, "fuse_qkv_projections"):
                module.fuse_qkv_projections()

    def enable_compile(self, backend: str | None = None, cache_root=None) -> None:
        """Turn on the compiled UNet step (see `app.inference.diffusers.compiled`); ``backend``
        (or env ``INPAINT_STUDIO_COMPILE_BACKEND``) names a torch.compile backend other than Inductor."""
        from app.inference.diffusers.compiled import CompiledUnet

        backend = backend or os.environ.get("INPAINT_STUDIO_COMPILE_BACKEND") or None
        unet = self._pipes["inpaint"].unet
        self.compiled = CompiledUnet(unet, model=self.name, device_name=self.device.description,
                                     device_type=self.device.type, backend=backend, cache_root=cache_root,
                                     state_key=lambda: (tuple(sorted(self.networks.active.items())), self.references.state))

    @property
    def size_bucket(self) -> int | None:
        """Work sizes the engine should round to (only while a compiled step is in use)."""
        from app.inference.diffusers.compiled import SIZE_BUCKET

        return SIZE_BUCKET if self.compiled is not None and self.compiled.failed is None else None

    def set_low_memory(self, on: bool) -> None:
        """Attention slicing and VAE slicing/tiling (peak memory of attention and decode), plus
        model CPU offload on an accelerator (only the running component stays on the GPU)."""
        if on == self.low_memory:
            return
        for pipe in self._pipes.values():
            if hasattr(pipe, "remove_all_hooks"):
                pipe.remove_all_hooks()
        pipe = self._pipes["inpaint"]
        if on:
            pipe.enable_attention_slicing()
            pipe.vae.enable_slicing()
            pipe.vae.enable_tiling()
        else:
            pipe.disable_attention_slicing()
            pipe.vae.disable_slicing()
            pipe.vae.disable_tiling()
        self.low_memory = on
        if on and self.compiled is not None:
            self.compiled.uninstall()  # offload hooks and a compiled forward do not mix
            self.compiled = None
        if on and self.device.type != "cpu":
            self._active("inpaint")  # offload hooks belong to the pipeline that runs
        elif not on:
            pipe.to(self.device.device)

    def enable_safety_checker(self) -> None:
        """Put the safety checker (`loader.load_safety_checker`) into every pipeline of this model."""
        from app.inference.diffusers.loader import load_safety_checker

        checker, extractor = load_safety_checker(self.info, self.device)
        for pipe in self._pipes.values():
            pipe.register_modules(safety_checker=checker.to(self.device.device), feature_extractor=extractor)

    def _active(self, kind: str):
        """The pipeline for ``kind`` ("inpaint" or "img2img"), made once with ``from_pipe`` so it
        shares every component (no reload, no extra memory)."""
        if kind not in self._pipes:
            from diffusers import StableDiffusionImg2ImgPipeline

            # dtype given: from_pipe otherwise casts the shared weights to fp32 (diffusers ≥ 0.36)
            self._pipes[kind] = StableDiffusionImg2ImgPipeline.from_pipe(self._pipes["inpaint"], dtype=self.device.dtype)
            self._pipes[kind].set_progress_bar_config(disable=True)
        pipe = self._pipes[kind]
        if self.low_memory and self.device.type != "cpu" and getattr(self, "_offloaded", None) != kind:
            for other in self._pipes.values():
                other.remove_all_hooks()
            pipe.enable_model_cpu_offload(device=self.device.device)
            self._offloaded = kind
        return pipe

    def pipeline_for(self, mode: str, soft: bool = False):
        """The diffusers pipeline a mode runs on: img2img of a 4-channel model uses the img2img
        pipeline, and so does its soft inpainting (no hard blend); everything else the inpaint
        pipeline (a 9-channel UNet needs its mask input)."""
        return self._active("img2img" if (mode == "img2img" or soft) and not self.inpainting else "inpaint")

    # -- running ------------------------------------------------------------------------------
    def generate(self, request: BackendRequest, progress: Callable[[int, int, np.ndarray | None], None],
                 cancelled: CancelFn) -> list[np.ndarray]:
        height, width = request.image.shape[:2]
        if height % 8 or width % 8:
            raise ValueError(f"model input must be a multiple of 8 pixels, got {width}×{height}")
        if cancelled():
            raise Cancelled()
        params = request.params
        if params.reference is not None and request.reference_image is None:
            from app.core.params import ParamError

            raise ParamError("reference_image", None, "an image for the reference (IP-Adapter) weights")
        pipe = self.controls.pipeline(self.pipeline_for(params.mode, request.soft_mask is not None), ControlNets.active(request))
        self.networks.apply_loras(params.prompt)
        self.networks.load_embeddings_for(params.prompt, params.negative_prompt)
        self.references.apply(params.reference)
        with self._out_of_memory_told():
            return self._generate(pipe, request, progress, cancelled)

    @contextlib.contextmanager
    def _out_of_memory_told(self):
        """An out-of-memory error inside the block frees what it can and becomes `GpuOutOfMemory`
        (which offers the low-memory mode); anything else passes through."""
        try:
            yield
        except Cancelled:
            raise
        except Exception as exc:
            if _is_oom(exc):
                self._free_memory()
                raise GpuOutOfMemory(self.device.device, self.low_memory, str(exc).splitlines()[0][:200]) from exc
            raise

    @property
    def batches(self) -> bool:
        """Whether requests of several jobs gain from one batched call (not in the exact mode)."""
        return not self.exact_batches

    def generate_batch(self, requests: list[BackendRequest], progress: list[Callable[[int, int, np.ndarray | None], None]],
                       cancelled: list[CancelFn]) -> list[list[np.ndarray] | Exception]:
        """Compatible requests of several jobs (`app.service.batching.batch_key`: same size,
        steps, scheduler, guidance, strength, mode, LoRAs) in one batched pipeline call: every
        candidate of every request is a batch item with its own prompt, image, mask and seed,
        prepared as its single run would be (`per_seed_inputs`), so each request gets the images
        it gets alone within the rounding of batched kernels. In the exact mode, or where items
        cannot share a call (per-seed pixel fills, chunked prompts, a pipeline without mask
        latents), the requests run one after another instead: the same images bit for bit.
        The call stops only once every request is cancelled; a cancelled request's entry is
        `Cancelled`."""
        pipe = self.pipeline_for(requests[0].params.mode)
        if not self._shareable(pipe, requests):
            return [self._alone(r, p, c) for r, p, c in zip(requests, progress, cancelled)]
        self.networks.apply_loras(requests[0].params.prompt)
        self.references.apply(None)  # requests with a reference never share a call (`batch_key`)
        for request in requests:
            self.networks.load_embeddings_for(request.params.prompt, request.params.negative_prompt)
        with self._out_of_memory_told():
            images = self._call_many(pipe, requests, progress, lambda: all(c() for c in cancelled))
        out: list[list[np.ndarray] | Exception] = []
        for request, cancel in zip(requests, cancelled):
            n = len(request.seeds)
            out.append(Cancelled() if cancel() else images[:n])
            images = images[n:]
        return out

    def _alone(self, request, progress, cancelled) -> list[np.ndarray] | Exception:
        try:
            return self.generate(request, progress, cancelled)
        except Exception as exc:  # its own failure, not its batch-mates'
            return exc

    def _shareable(self, pipe, requests: list[BackendRequest]) -> bool:
        first = requests[0]
        if self.exact_batches or len(requests) < 2 or not hasattr(pipe, "prepare_mask_latents"):
            return False
        for request in requests:
            params = request.params
            if request.image.shape != first.image.shape or (params.mode, params.steps, params.scheduler, params.guidance,
                                                              params.strength) != (first.params.mode, first.params.steps,
                                                                                   first.params.scheduler, first.params.guidance,
                                                                                   first.params.strength):
                return False
            if fills_per_seed(params) or params.controls or request.soft_mask is not None:
                return False
            if extract_loras(params.prompt)[1] != extract_loras(first.params.prompt)[1]:
                return False
            if needs_embeddings(pipe, extract_loras(params.prompt)[0], extract_loras(params.negative_prompt)[0]):
                return False  # weighted or long prompts: embeddings of their own lengths
        return True

    def _call_many(self, pipe, requests, progress, cancelled) -> list[np.ndarray]:
        """One pipeline call for every candidate of ``requests``; each request's progress (and
        its own rate-limited preview) comes from its items' latents."""
        first = requests[0]
        pipe.scheduler = make_scheduler(first.params.scheduler, self._base_scheduler_config)
        items = [(request, seed) for request in requests for seed in request.seeds]
        generators = [torch.Generator("cpu").manual_seed(seed) for _, seed in items]
        prompts = [prompt_kwargs(pipe, r.params.prompt, r.params.negative_prompt) for r, _ in items]
        kwargs = self.call_kwargs(pipe, first, first.seeds[0])
        kwargs.update(prompt=[p["prompt"] for p in prompts], negative_prompt=[p["negative_prompt"] or "" for p in prompts],
                      image=[Image.fromarray(r.image) for r, _ in items], generator=generators, num_images_per_prompt=1)
        if "mask_image" in kwargs:
            kwargs.update(mask_image=[Image.fromarray(r.mask) for r, _ in items])
        starts = np.cumsum([0] + [len(r.seeds) for r in requests])
        pumps = [PreviewPump(pipe._execution_device, interval_s=self.preview_interval_s, every=self.preview_every,
                             clock=self.preview_clock) for _ in requests]

        def on_step_end(p, i, t, kw):
            total = p.num_timesteps
            for fn, pump, start in zip(progress, pumps, starts):
                fn(i + 1, total, pump.step(kw["latents"][start:start + 1], final=i + 1 == total))
            if cancelled():
                raise Cancelled()
            return kw

        if self.compiled is not None:
            self.compiled.begin_run()
        self.timings.update(denoise=0.0, decode=0.0)
        t0 = time.perf_counter()
        with per_seed_inputs(pipe, generators):
            latents = pipe(**kwargs, output_type="latent", callback_on_step_end=on_step_end,
                           callback_on_step_end_tensor_inputs=["latents"]).images
        t1 = time.perf_counter()
        out = [self.decoder.decode(pipe, latents[k:k + 1], g) for k, g in enumerate(generators)]
        self.timings.update(denoise=t1 - t0, decode=time.perf_counter() - t1)
        return out

    def infotext_fields(self, params) -> dict[str, str]:
        """Extra A1111 infotext fields of a run: the short hashes of its LoRAs and embeddings, and
        its ControlNets' ``name [hash]``."""
        return {**network_hashes(params.prompt, params.negative_prompt), **self.controls.model_labels(params)}

    def _free_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()

    def call_kwargs(self, pipe, request: BackendRequest, seed: int, cancelled: CancelFn | None = None) -> dict:
        """The exact public arguments given to the diffusers pipeline for one batch item
        (``cancelled`` is asked while a long prompt is encoded)."""
        params = request.params
        height, width = request.image.shape[:2]
        image = request.image
        if params.masked_content == "latent_noise" and params.mode == "inpaint":
            image = noise_fill(image, request.mask, seed)
        kwargs = dict(
            **prompt_kwargs(pipe, params.prompt, params.negative_prompt, cancelled),
            image=Image.fromarray(image),
            strength=params.strength,
            # diffusers runs int(steps × strength) steps and fails at 0: run at least one.
            num_inference_steps=max(params.steps, math.ceil(1 / params.strength - 1e-9)),
            guidance_scale=params.guidance,
            num_images_per_prompt=1,
            generator=torch.Generator("cpu").manual_seed(seed),
            **ControlNets.call_kwargs(ControlNets.active(request)),
        )
        if self.references.active:
            kwargs.update(ip_adapter_image=Image.fromarray(request.reference_image))
        if takes_mask(pipe):
            kwargs.update(mask_image=Image.fromarray(request.mask), height=height, width=width)
            if params.masked_content == "latent_nothing" and params.mode == "inpaint":
                kwargs.update(latent_nothing_inputs(pipe, image, request.mask, kwargs["generator"]))
        return kwargs

    def batched(self, pipe, request: BackendRequest) -> bool:
        """One batched call for all candidates? Not in the exact mode, and not where items differ
        in their pixel input (latent noise/nothing are made per seed before the call)."""
        return (not self.exact_batches and len(request.seeds) > 1 and hasattr(pipe, "prepare_mask_latents")
                and not fills_per_seed(request.params) and not request.params.controls and request.soft_mask is None)

    def _generate(self, pipe, request, progress, cancelled) -> list[np.ndarray]:
        calls = [request.seeds] if self.batched(pipe, request) else [(s,) for s in request.seeds]
        if self.compiled is not None:
            self.compiled.begin_run()
        outputs = []
        self.timings.update(denoise=0.0, decode=0.0)
        for index, seeds in enumerate(calls):
            if cancelled():
                raise Cancelled()
            outputs += self._call(pipe, request, seeds, index, len(calls), progress, cancelled)
        return outputs

    def _call(self, pipe, request, seeds, index: int, n_calls: int, progress, cancelled) -> list[np.ndarray]:
        """One pipeline call for ``seeds`` (one, or all in a batch), then their decodes. The step
        callback makes no host round trip: previews come from a `PreviewPump`, and cancel is a
        Python flag."""
        pipe.scheduler = make_scheduler(request.params.scheduler, self._base_scheduler_config)  # schedulers keep state
        pump = PreviewPump(pipe._execution_device, interval_s=self.preview_interval_s, every=self.preview_every,
                           clock=self.preview_clock)
        soft = None
        if request.soft_mask is not None:  # one seed per call (never batched)
            from app.inference.diffusers.soft_inpaint import SoftBlend

            soft = SoftBlend(pipe, request.image, request.soft_mask, seeds[0], request.params.soft_inpainting)

        def on_step_end(p, i, t, kw):
            total = p.num_timesteps
            if soft is not None:
                kw["latents"] = soft(p, i, kw["latents"])
            preview = pump.step(kw["latents"], final=i + 1 == total)
            progress(index * total + i + 1, n_calls * total, preview)
            if cancelled():
                raise Cancelled()
            return kw

        kwargs = self.call_kwargs(pipe, request, seeds[0], cancelled)
        generators = [kwargs["generator"]]
        if len(seeds) > 1:
            generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
            kwargs.update(generator=generators, num_images_per_prompt=len(seeds))
        t0 = time.perf_counter()
        with per_seed_inputs(pipe, generators) if len(seeds) > 1 else contextlib.nullcontext():
            latents = pipe(**kwargs, output_type="latent", callback_on_step_end=on_step_end,
                           callback_on_step_end_tensor_inputs=["latents"]).images
        t1 = time.perf_counter()
        out = [self.decoder.decode(pipe, latents[k:k + 1], g) for k, g in enumerate(generators)]
        self.timings["denoise"] += t1 - t0
        self.timings["decode"] += time.perf_counter() - t1
        return out
