"""`GenerationService`: from a request to a `GenerationRecord`, the same way for every front end.

It checks a request against the chosen backend's `Capabilities` before anything loads (refusing
what the backend cannot do, resetting what it ignores, so a classical record carries no seed,
steps, sampler or batch), loads and caches one backend per (model, options), runs the engine
with progress and cancel, and turns the result into a record. Runs are serialised by a lock, so
the window's worker thread, the CLI and the HTTP server can share one service.

Importing this module loads no torch and no Qt: torch comes with the first diffusion model load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from app.core import compositing, maskops
from app.core.errors import EmptyMaskError
from app.core.geometry import Bounds
from app.core.imageio import MAX_PIXELS
from app.core.guides import MAX_CONTROLS
from app.core.params import GenerationParams, ParamError
from app.core.records import GenerationRecord
from app.core.schedulers import SCHEDULER_NAMES
from app.inference import registry
from app.inference.engine import Backend, BackendRequest, CancelFn, Engine, Job, Progress, ProgressFn
from app.inference.errors import GpuOutOfMemory, MissingDependencyError
from app.inference.registry import Capabilities, LoadOptions
from app.service import fields
from app.service.batching import batch_key
from app.service.controls import check_controls, control_images
from app.service.device import DeviceLock
from app.service.fields import PARAMS, FrontEnd
from app.service.records import record_from_result

if TYPE_CHECKING:
    import numpy as np

    from app.service.restoration import RestorationService

Loader = Callable[[str, LoadOptions], Backend]

#: What a backend that accepts every field can do (test doubles behind a custom loader).
UNRESTRICTED = Capabilities(registry.DIFFUSION, img2img=True, max_batch=8, seeds=True, schedulers=SCHEDULER_NAMES,
                            prompts=True, native_resolution=False, controls=MAX_CONTROLS)


@dataclass(frozen=True, eq=False)
class GenerationRequest:
    """One generation: parameters, the document's pixels (uint8/uint16, gray/RGB/RGBA), the mask
    (H×W, 255 = repaint; None only for img2img of the whole image), an optional context box the
    model sees, and how to load the model."""

    params: GenerationParams
    image: np.ndarray
    mask: np.ndarray | None = None
    context: Bounds | None = None
    options: LoadOptions = LoadOptions()
    #: One H×W×3 uint8 image per `params.controls` unit, in the document's size.
    control_images: tuple[np.ndarray, ...] = ()
    #: The IP-Adapter's image (any size, RGB uint8) when `params.reference` is set.
    reference_image: np.ndarray | None = None
    #: True: ``control_images`` are the finished maps (the editor's control layers, made or
    #: painted there); False: inputs each unit's module turns into its map (CLI, APIs).
    control_maps: bool = False
    #: The front end whose names an error uses (`app.service.fields.FrontEnd`).
    front: FrontEnd = PARAMS
    #: True once `GenerationService.check` passed its params: a run does not check them again.
    checked: bool = False


class GenerationService:
    """The one path from Generate to pixels.

    ``loader(model_ref, options)`` makes a backend (default: `app.inference.registry.load_backend`).
    ``capabilities(model_ref, options)`` says what it can do without loading (default: the
    registry's; with a custom loader and none given, its backends are taken to accept every
    field, as test doubles do)."""

    def __init__(self, loader: Loader | None = None,
                 capabilities: Callable[[str, LoadOptions | None], Capabilities] | None = None,
                 compile_step: bool = False, device_lock: DeviceLock | None = None):
        """``compile_step``: every model this service loads gets the background-compiled UNet
        step, whatever the requests' options say (`serve --compile`). ``device_lock``: the lock
        of the device its runs use (default: a new one; `restoration` shares it)."""
        self._loader = loader or registry.load_backend
        self.compile_step = compile_step
        if capabilities is None:
            capabilities = registry.capabilities if loader is None else (lambda ref, options=None: UNRESTRICTED)
        self._capabilities = capabilities
        self._lock = device_lock or DeviceLock()
        self._restoration: RestorationService | None = None
        self._restoration_made = threading.Lock()
        self._backend: Backend | None = None
        self._key: tuple[str, LoadOptions] | None = None

    @property
    def device_lock(self) -> DeviceLock:
        """Held while a run of this service uses the device."""
        return self._lock

    @property
    def restoration(self) -> RestorationService:
        """The restoration service (upscale, denoise, restore faces) for the same device: its
        runs take this service's `device_lock`, so a restoration never overlaps a generation.
        Front ends get theirs here rather than building one, so there is one lock per device."""
        with self._restoration_made:  # not the device lock: asking must not wait for a run
            if self._restoration is None:
                from app.service.restoration import RestorationService

                self._restoration = RestorationService(device_lock=self._lock)
            return self._restoration

    # -- before running -----------------------------------------------------------------------
    @staticmethod
    def nominal_capabilities(model_ref: str) -> Capabilities:
        """What ``model_ref`` alone tells (`registry.nominal_capabilities`): no file, no server."""
        return registry.nominal_capabilities(model_ref)

    def capabilities(self, model_ref: str, options: LoadOptions | None = None) -> Capabilities:
        """What ``model_ref`` can do, without loading weights (``options`` carry a remote server's token)."""
        return self._capabilities(model_ref, options)

    def check_params(self, params: GenerationParams, options: LoadOptions = LoadOptions(),
                     front: FrontEnd = PARAMS) -> GenerationParams:
        """Every rule of `app.service.fields.check` against the model's capabilities, without
        pixels: what a front end asks before it reads or fetches images. Loads no weights."""
        return fields.check(params, self._capabilities(params.model, options), front)

    def check_nominal(self, params: GenerationParams, front: FrontEnd = PARAMS) -> GenerationParams:
        """`check_params` against what the model's reference alone tells
        (`registry.nominal_capabilities`: no file read, no server asked): the window's check on
        its GUI thread; `check` runs the real capabilities before the run."""
        return fields.check_nominal(params, front)

    def check(self, request: GenerationRequest) -> GenerationRequest:
        """The request to run: its params checked (`check_params`, once: a request already
        checked keeps them) and its pixels checked, or a typed `UserError`: `FieldError` (a
        `ParamError` in the request's front end's words), `EmptyMaskError`, `MaskError`, a
        `ModelLoadError` subclass. Loads no weights."""
        if not request.checked:
            params = self.check_params(request.params, request.options, request.front)
            request = replace(request, params=params, checked=True)
        try:
            _check_pixels(request)
            check_controls(request, request.params, self._capabilities(request.params.model, request.options))
            if request.params.reference is not None and request.reference_image is None:
                raise ParamError("reference_image", None, "an image for the reference (IP-Adapter) weights")
        except ParamError as exc:
            raise request.front.error(exc) from None
        return request

    def is_loaded(self, model_ref: str, options: LoadOptions = LoadOptions()) -> bool:
        """True when the next run on ``model_ref`` with ``options`` reuses the cached backend."""
        return self._key == (model_ref, self._load_options(options))

    def preload(self, model_ref: str, options: LoadOptions = LoadOptions()) -> None:
        """Load (and cache) the backend for ``model_ref`` ahead of the first run."""
        with self._lock:
            self._backend_for(model_ref, options)

    def release(self) -> None:
        """Forget the cached backend (and the restoration model on the same device) so their
        memory can be freed — also after running out of memory; the next run loads again."""
        with self._lock:
            self._backend, self._key = None, None
            if self._restoration is not None:
                self._restoration.release_locked()

    # -- running ------------------------------------------------------------------------------
    def run(self, request: GenerationRequest, progress: ProgressFn | None = None,
            cancelled: CancelFn | None = None) -> GenerationRecord:
        """Check, load (or reuse) the backend, run, and return the record. Raises `Cancelled`
        when ``cancelled()`` turns true, a `UserError` for anything the user should read, and
        lets programming errors through unchanged."""
        request = self.check(request)
        params = request.params
        controls = control_images(request, params)  # preprocessors run outside the lock
        with self._lock:
            backend = self._backend_for(params.model, request.options)
            job = Job(params, request.image, request.mask, request.context, controls,
                      reference_image=request.reference_image)
            try:
                result = Engine(backend).run(job, progress, cancelled)
            except MemoryError as exc:
                self.release()
                raise GpuOutOfMemory("cpu", request.options.low_memory, str(exc)) from exc
            except GpuOutOfMemory:
                self.release()  # free what can be freed before a retry
                raise
        return record_from_result(result)

    def batch_key(self, request: GenerationRequest) -> Hashable | None:
        """The key under which the job queue may gather ``request`` with others
        (`app.service.batching.batch_key`), or None when batching would gain nothing: its
        model is not the loaded one yet, or that backend runs requests one by one (classical,
        or diffusion in the exact mode). Cheap: no pixel is read, nothing loads."""
        params, options = request.params, request.options
        backend = self._backend if self.is_loaded(params.model, options) else None
        if backend is None or not getattr(backend, "batches", False):
            return None
        return batch_key(params, options)

    def run_batch(self, requests: list[GenerationRequest], progress: list[ProgressFn],
                  cancelled: list[CancelFn]) -> list[GenerationRecord | Exception]:
        """Several requests, each to its own record or to the exception its own `run` would
        raise; compatible ones (`batch_key`) share one batched backend call (`Engine.run_batch`),
        the others run alone. A cancelled request gets `Cancelled` without stopping the rest."""
        requests = list(requests)
        outcomes: list[GenerationRecord | Exception | None] = [None] * len(requests)
        groups: dict[Hashable, list[tuple[int, GenerationParams]]] = {}
        for i, request in enumerate(requests):
            try:
                requests[i] = request = self.check(request)
            except Exception as exc:
                outcomes[i] = exc
                continue
            params = request.params
            key = batch_key(params, request.options)
            groups.setdefault(i if key is None else key, []).append((i, params))
        with self._lock:
            for group in groups.values():
                if len(group) == 1:
                    i = group[0][0]
                    try:
                        outcomes[i] = self.run(requests[i], progress[i], cancelled[i])
                    except Exception as exc:
                        outcomes[i] = exc
                    continue
                try:
                    results = self._run_together(group, requests, progress, cancelled)
                except Exception as exc:  # loading, or memory: the whole group hears of it
                    results = [exc] * len(group)
                for (i, _), result in zip(group, results):
                    outcomes[i] = result if isinstance(result, Exception) else record_from_result(result)
        return outcomes  # type: ignore[return-value]

    def _run_together(self, group, requests, progress, cancelled) -> list:
        first = requests[group[0][0]]
        backend = self._backend_for(group[0][1].model, first.options)
        jobs = [Job(params, requests[i].image, requests[i].mask, requests[i].context,
                    control_images(requests[i], params), reference_image=requests[i].reference_image) for i, params in group]
        try:
            results = Engine(backend).run_batch(jobs, [progress[i] for i, _ in group], [cancelled[i] for i, _ in group])
        except MemoryError as exc:
            self.release()
            raise GpuOutOfMemory("cpu", first.options.low_memory, str(exc)) from exc
        if any(isinstance(r, (GpuOutOfMemory, MemoryError)) for r in results):
            self.release()  # free what can be freed before a retry
        return [GpuOutOfMemory("cpu", first.options.low_memory, str(r)) if isinstance(r, MemoryError) else r
                for r in results]

    def generate_region(self, model_ref: str, region: BackendRequest, progress: Callable[[int, int, np.ndarray | None], None],
                        cancelled: CancelFn, options: LoadOptions = LoadOptions()) -> list[np.ndarray]:
        """One model-sized region, its params checked by `check_params`, straight through the
        backend (a remote editor's engine planned and will composite it), under the same lock as
        `run` so runs never overlap."""
        with self._lock:
            return self._backend_for(model_ref, options).generate(region, progress, cancelled)

    def _load_options(self, options: LoadOptions) -> LoadOptions:
        """The options a model is loaded (and cached) with: one spelling, plus this service's own."""
        options = options.normalised()
        return replace(options, compile=True) if self.compile_step else options

    def _backend_for(self, model_ref: str, options: LoadOptions) -> Backend:
        key = (model_ref, self._load_options(options))
        if self._key != key:
            self._backend, self._key = None, None  # drop the old weights before loading new ones
            try:
                self._backend = self._loader(model_ref, key[1])
            except ImportError as exc:
                raise MissingDependencyError(str(exc)) from None
            except MemoryError as exc:
                raise GpuOutOfMemory(key[1].device or "auto", key[1].low_memory, str(exc)) from exc
            self._key = key
        assert self._backend is not None
        return self._backend


def _check_pixels(request: GenerationRequest) -> None:
    """Image layout, the one pixel limit, and a mask that has something to repaint."""
    image = request.image
    try:
        compositing.check_pixels(image)
    except ValueError as exc:
        raise ParamError("image", getattr(image, "shape", None), str(exc)) from None
    height, width = image.shape[:2]
    if height * width > MAX_PIXELS:
        raise ParamError("image", f"{width}×{height}", f"at most {MAX_PIXELS:,} pixels")
    if request.mask is None:
        if request.params.mode == "inpaint":
            raise EmptyMaskError()
        return
    mask = maskops.validate_mask(request.mask, (height, width))
    if request.params.mode == "inpaint" and not mask.any():
        raise EmptyMaskError()


__all__ = ["GenerationRequest", "GenerationService", "Loader", "Progress"]
