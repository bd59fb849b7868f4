"""The backend registry: what each kind of backend can do, and how to load one.

Qt-free and torch-free at import: `capabilities` answers from the classical table or from the
model catalog (JSON configs and safetensors headers), so a front end and the generation service
can check a request before any weights load. `load_backend` imports torch only for a diffusion
model, inside the diffusers loader.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.core.guides import MAX_CONTROLS
from app.core.params import CLASSICAL_METHODS
from app.core.schedulers import SCHEDULER_NAMES
from app.inference import remote
from app.inference.restoration import lama

CLASSICAL = "classical"
DIFFUSION = "diffusion"
RESTORATION = "restoration"  # a prompt-free inpainting model (LaMa), app.inference.restoration


@dataclass(frozen=True)
class LoadOptions:
    """How to load a backend; part of the service's cache key, so equal options reuse weights."""

    device: str | None = None  # None or "auto" = the best available; "cpu", "cuda", "cuda:N", "mps"
    dtype: str | None = None  # None = the device's default (fp16 on GPUs, fp32 on CPU); "fp16", "fp32", "bf16"
    allow_pickle: bool = False  # pickle checkpoints run arbitrary code when loaded: only on request
    low_memory: bool = False  # attention slicing, VAE slicing/tiling, model CPU offload
    safety_checker: bool = False  # off for local use (DESIGN.md); a preference turns it on
    fast: bool | None = None  # CUDA fast path (channels_last, fused QKV, TF32); None = on for CUDA
    compile: bool = False  # compiled UNet step, prepared in the background (app.inference.diffusers.compiled)
    exact_batches: bool | None = None  # one call per candidate (bit-exact); None = batched on GPUs, exact on CPU
    server_token: str | None = None  # API token of a ``remote:`` model's server (`app.inference.remote`)

    def normalised(self) -> LoadOptions:
        """"auto" and None name the same device; one spelling keeps the cache key stable."""
        device = None if self.device in (None, "", "auto") else self.device
        return replace(self, device=device, dtype=self.dtype or None, server_token=self.server_token or None)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the service refuses or strips what a request asks beyond it."""

    kind: str  # CLASSICAL, DIFFUSION or RESTORATION
    img2img: bool
    max_batch: int  # 1 = one candidate per run (a deterministic method gives one answer)
    seeds: bool  # the seed changes the pixels
    schedulers: tuple[str, ...]  # canonical names accepted; () = no sampler, steps, CFG or strength
    prompts: bool  # the prompt guides the result
    native_resolution: bool  # works at the image's own size (no model width/height)
    input_channels: int | None = None  # UNet input channels: 9 inpainting, 4 base; None = unknown or n/a
    controls: int = 0  # ControlNet units a run may have; 0 = none (classical, LaMa)
    requires_prompt: bool = False  # a run without a prompt is refused (a diffusion model paints noise without one)

    @property
    def prompt_free(self) -> bool:
        """No prompt, seed, sampler, CFG or strength decides the pixels: the one answer to "is it
        classical?" (classical methods and LaMa; `GenerationParams.is_prompt_free` for a ref)."""
        return self.kind != DIFFUSION


CLASSICAL_CAPABILITIES = Capabilities(CLASSICAL, img2img=False, max_batch=1, seeds=False, schedulers=(),
                                      prompts=False, native_resolution=True)
#: LaMa: like a classical method to the request (no prompt, seed, sampler or model size).
RESTORATION_CAPABILITIES = replace(CLASSICAL_CAPABILITIES, kind=RESTORATION)


#: What the reference alone says of a diffusion model (`nominal_capabilities`).
DIFFUSION_NOMINAL = Capabilities(DIFFUSION, img2img=True, max_batch=8, seeds=True, schedulers=SCHEDULER_NAMES,
                                 prompts=True, native_resolution=False, requires_prompt=True, controls=MAX_CONTROLS)


def nominal_capabilities(model_ref: str) -> Capabilities:
    """What ``model_ref`` alone tells, without reading a file or asking a server: for checks on
    the window's GUI thread (the service checks the real `capabilities` before the run). A
    ``remote:`` model's server decides whether it needs a prompt."""
    if model_ref in CLASSICAL_METHODS:
        return CLASSICAL_CAPABILITIES
    if lama.is_lama(model_ref):
        return RESTORATION_CAPABILITIES
    return replace(DIFFUSION_NOMINAL, requires_prompt=False) if remote.is_remote(model_ref) else DIFFUSION_NOMINAL


def capabilities(model_ref: str, options: LoadOptions | None = None) -> Capabilities:
    """What ``model_ref`` can do, without loading weights. Raises a `ModelLoadError` subclass when
    the model cannot be found or is of an unsupported family, and, given ``options``, when they
    forbid loading it (a pickle file without ``allow_pickle``)."""
    if model_ref in CLASSICAL_METHODS:
        return CLASSICAL_CAPABILITIES
    if remote.is_remote(model_ref):
        return remote.remote_capabilities(model_ref, None if options is None else options.server_token)
    if lama.is_lama(model_ref):
        lama.resolve(model_ref)  # found? (no torch)
        return RESTORATION_CAPABILITIES
    from app.inference.diffusers.loader import preflight

    info = preflight(model_ref, allow_pickle=True if options is None else options.allow_pickle)
    return replace(DIFFUSION_NOMINAL, input_channels=None if info.inpainting is None else (9 if info.inpainting else 4))


def load_backend(model_ref: str, options: LoadOptions = LoadOptions()):
    """A ready backend (`app.inference.engine.Backend`) for ``model_ref``: the classical one, or a
    diffusion model through the offline loader (torch imported only then), a LaMa model
    (`app.inference.restoration.lama`, torch and spandrel imported then), or a `remote:` model
    on an ``inpaint-studio serve`` machine (no torch here at all)."""
    if model_ref in CLASSICAL_METHODS:
        from app.inference.classical import ClassicalBackend

        return ClassicalBackend(model_ref)
    if remote.is_remote(model_ref):
        return remote.RemoteBackend(model_ref, options.server_token)
    if lama.is_lama(model_ref):
        return lama.load_lama_backend(model_ref, options.normalised().device)
    from app.inference.diffusers.loader import load_diffusion_backend

    return load_diffusion_backend(model_ref, options.normalised())
