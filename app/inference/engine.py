"""The engine: runs one immutable `Job` through a backend and composites the result.

Flow: validate params and resolve the seed → plan regions around the mask (`app.core.regions`) → per
region, crop, convert to RGB8, resize to the backend's working size → backend → resize back →
match colour to the surround (model backends) → composite into the ORIGINAL pixels with the
feathered mask. Outside the feathered mask the candidates are bit-identical to the input
(alpha, 16-bit data included) because those pixels are copied, never converted or re-encoded.
Every backend gets this guarantee, since it is the engine, not the backend, that composites.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import cv2
import numpy as np

from app.core import compositing, maskops, regions, seams, soft_composite
from app.core.errors import CANCELLED, EmptyMaskError
from app.core.geometry import Bounds
from app.core.params import GenerationParams


class Cancelled(Exception):
    """The user cancelled the run; the engine stays usable."""

    kind = CANCELLED


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    #: A cheap preview of the region being generated (RGB8), or None when the backend has none.
    preview: np.ndarray | None = None
    #: Where the preview belongs in the full image.
    region: Bounds | None = None


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class BackendRequest:
    """One region, ready for a backend: RGB8 image and mask of the same size."""

    image: np.ndarray  # h×w×3 uint8 RGB
    mask: np.ndarray  # h×w uint8, 255 = repaint (the grown hard mask, not feathered)
    params: GenerationParams  # seed resolved
    seeds: tuple[int, ...]
    #: One h×w×3 uint8 image per `params.controls` unit, cropped and resized as ``image`` was.
    control_images: tuple[np.ndarray, ...] = ()
    #: Soft inpainting's grey mask (h×w uint8; ``mask`` is then its ≥ 50 % part), and the reference image.
    soft_mask: np.ndarray | None = None
    reference_image: np.ndarray | None = None  # any size, RGB8


class Backend(Protocol):
    """What the engine needs from a backend (classical or diffusion)."""

    name: str
    #: True if the backend works at the image's own resolution (classical); False if it needs the
    #: region resized to a model size (multiple of 8, around its native 512²).
    native_resolution: bool

    def generate(
        self, request: BackendRequest, progress: Callable[[int, int, np.ndarray | None], None], cancelled: CancelFn
    ) -> list[np.ndarray]:
        """Return one RGB8 image per seed, each the size of ``request.image``.
        Call ``progress(step, total, preview)`` each step; raise `Cancelled` when ``cancelled()``."""
        ...

    # Optional: ``generate_batch(requests, progress_fns, cancelled_fns)`` → one entry per request
    # (its images, or the exception that ended it), for compatible requests of several jobs run
    # as one batched call (`Engine.run_batch`); it raises `Cancelled` once all are cancelled.


@dataclass(frozen=True)
class Job:
    """Immutable input of one generation. ``image`` is the document's pixels in their own
    format (uint8/uint16, gray/RGB/RGBA) so the composite can keep them exactly."""

    params: GenerationParams
    image: np.ndarray
    mask: np.ndarray | None  # H×W uint8, 255 = repaint; None for img2img of the whole image
    context: Bounds | None = None  # what the model sees, chosen apart from the mask
    control_images: tuple[np.ndarray, ...] = ()  # H×W×3 uint8 per params.controls unit, the image's size
    reference_image: np.ndarray | None = None  # the IP-Adapter's image (`params.reference`)


@dataclass(frozen=True)
class Candidate:
    image: np.ndarray  # same shape and dtype as Job.image
    seed: int


@dataclass(frozen=True)
class Result:
    job: Job
    params: GenerationParams  # as run: seed resolved
    candidates: tuple[Candidate, ...]
    regions: tuple[Bounds, ...]
    backend: str
    elapsed_s: float
    timings: dict[str, float] = field(default_factory=dict)


#: Width in pixels of the band outside the mask that colour matching measures.
COLOUR_RING = 8


class Engine:
    """Runs jobs on one backend. Not thread-safe: one run at a time (the worker serialises)."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def plan(self, job: Job) -> tuple[GenerationParams, np.ndarray, list[regions.RegionPlan], bool]:
        """Plan the job's regions: (params with seed, hard mask, plans, whole-image replace?). Its
        params are checked already, once, by the service (`app.service.fields.check`). Raises
        `EmptyMaskError`, `MaskError`, ValueError."""
        return self._plan(job)[:4]  # type: ignore[return-value]

    def _plan(self, job: Job) -> tuple[GenerationParams, np.ndarray, list[regions.RegionPlan], bool, np.ndarray | None]:
        """`plan`, plus soft inpainting's grey mask (None without it)."""
        params = job.params.with_resolved_seed()
        image = job.image
        compositing.check_pixels(image)
        height, width = image.shape[:2]
        replace_all, soft = False, None
        if params.mode == "img2img" and (job.mask is None or not np.any(job.mask)):
            hard = np.full((height, width), 255, np.uint8)
            whole, replace_all = True, True
        else:
            if job.mask is None:
                raise EmptyMaskError()
            if params.soft_inpainting is not None:  # every painted pixel may change, by its grey level
                soft = soft_composite.soft_mask(maskops.validate_mask(job.mask, (height, width)), params.mask_blur)
                hard = np.where(soft > 0, np.uint8(255), np.uint8(0))
            else:
                hard = maskops.binarize(maskops.validate_mask(job.mask, (height, width)))
                if params.mask_grow:
                    hard = maskops.grow(hard, params.mask_grow)
            whole = params.inpaint_area == "whole"
        if maskops.bounds(hard) is None:
            raise EmptyMaskError()
        plans = regions.plan_regions(
            hard,
            padding=params.padding,
            blur=params.mask_blur,
            whole_image=whole,
            context=job.context,
            target=None if self.backend.native_resolution else (params.width, params.height),
        )
        bucket = getattr(self.backend, "size_bucket", None)
        if bucket and not (params.width or params.height):
            plans = [replace(p, work_size=_bucketed(p.work_size, bucket)) for p in plans]
        return params, hard, plans, replace_all, soft

    def _colour_match(self, params: GenerationParams) -> bool:
        """``params.color_match``; "auto" = on for model backends, off for classical ones."""
        if params.color_match == "auto":
            return not self.backend.native_resolution
        return params.color_match == "on"

    def run(self, job: Job, progress: ProgressFn | None = None, cancelled: CancelFn | None = None) -> Result:
        return self._run_planned(self._start(job), progress or (lambda p: None), cancelled or (lambda: False))

    def run_batch(self, jobs: list[Job], progress: list[ProgressFn], cancelled: list[CancelFn]) -> list[Result | Exception]:
        """Several jobs, each to its own `Result` (or the exception that ended it), with their
        single-region backend work in one `generate_batch` call where the backend has one:
        jobs whose region has the same work size go together; multi-region jobs, and jobs
        alone at their size, run alone. A job cancelled while its batch runs gets `Cancelled`;
        the batched call itself stops only once every job in it is cancelled."""
        outcomes: list[Result | Exception | None] = [None] * len(jobs)
        states: dict[int, _State] = {}
        for i, job in enumerate(jobs):
            try:
                states[i] = self._start(job)
            except Exception as exc:
                outcomes[i] = exc
        groups: dict[tuple[int, int], list[int]] = {}
        for i, state in states.items():
            if len(state.plans) == 1 and hasattr(self.backend, "generate_batch"):
                groups.setdefault(state.plans[0].work_size, []).append(i)
        alone = [i for i in states if not any(len(g) > 1 and i in g for g in groups.values())]
        for group in (g for g in groups.values() if len(g) > 1):
            self._run_group([states[i] for i in group], [progress[i] for i in group], [cancelled[i] for i in group],
                            outcomes, group)
        for i in alone:
            try:
                outcomes[i] = self._run_planned(states[i], progress[i], cancelled[i])
            except Exception as exc:
                outcomes[i] = exc
        return outcomes  # type: ignore[return-value]

    def _run_group(self, states: list[_State], progress: list[ProgressFn], cancelled: list[CancelFn],
                   outcomes: list, indices: list[int]) -> None:
        inputs = [self._region_input(state, state.plans[0]) for state in states]

        def region_progress(fn: ProgressFn, crop: Bounds):
            return lambda step, total, preview: fn(Progress(step, total, preview, crop))

        tick = time.perf_counter()
        try:
            generated = self.backend.generate_batch(  # type: ignore[attr-defined]
                [request for request, _, _ in inputs],
                [region_progress(fn, state.plans[0].crop) for fn, state in zip(progress, states)], cancelled)
        except Exception as exc:  # the batched call failed as a whole (or every job was cancelled)
            for i in indices:
                outcomes[i] = exc
            return
        model_s = time.perf_counter() - tick
        for i, state, cancel, (_, crop_rgb, crop_hard), images in zip(indices, states, cancelled, inputs, generated):
            state.timings["model"] = state.timings.get("model", 0.0) + model_s
            try:
                if isinstance(images, Exception):
                    raise images
                if cancel():
                    raise Cancelled()
                _check_generated(images, len(state.seeds), state.plans[0].work_size, self.backend)
                self._region_output(state, state.plans[0], crop_rgb, crop_hard, images)
                outcomes[i] = self._result(state)
            except Exception as exc:
                outcomes[i] = exc

    def _start(self, job: Job) -> _State:
        t0 = time.perf_counter()
        params, hard, plans, replace_all, soft = self._plan(job)
        seeds = tuple(params.batch_seeds())
        colour_match = not replace_all and soft is None and self._colour_match(params)
        timings = {"plan": time.perf_counter() - t0}
        tick = time.perf_counter()
        outputs = [job.image.copy() for _ in seeds]
        _add(timings, "copy", tick)
        return _State(job, params, hard, plans, replace_all, seeds, colour_match, outputs, timings, t0, soft)

    def _run_planned(self, state: _State, progress: ProgressFn, cancelled: CancelFn) -> Result:
        n = len(state.plans)
        for index, plan in enumerate(state.plans):
            if cancelled():
                raise Cancelled()
            request, crop_rgb, crop_hard = self._region_input(state, plan)

            def region_progress(step: int, total: int, preview: np.ndarray | None, _i=index, _b=plan.crop) -> None:
                progress(Progress(_i * total + step, n * total, preview, _b))

            tick = time.perf_counter()
            generated = self.backend.generate(request, region_progress, cancelled)
            _add(state.timings, "model", tick)
            if cancelled():
                raise Cancelled()
            _check_generated(generated, len(state.seeds), plan.work_size, self.backend)
            self._region_output(state, plan, crop_rgb, crop_hard, generated)
        return self._result(state)

    def _region_input(self, state: _State, plan: regions.RegionPlan) -> tuple[BackendRequest, np.ndarray, np.ndarray]:
        """The backend's request for one region, with the crop's RGB and hard mask."""
        image, hard, params, replace_all, timings = state.job.image, state.hard, state.params, state.replace_all, state.timings
        crop = plan.crop
        tick = time.perf_counter()
        crop_rgb = compositing.to_rgb8(image[crop.slices])
        crop_hard = maskops.restrict(hard[crop.slices], plan.owned, (crop.x, crop.y))
        model_rgb = crop_rgb
        if plan.owned is not None and not replace_all:
            # Mask pixels in this crop that other regions repaint (the next tile of a long
            # scratch) are still damaged here; show the model a classical fill there, or it
            # may continue the scratch into its own part.
            # (Filled from the unmasked surround only: the own, still damaged part must not
            # bleed into the fill either.)
            others = (hard[crop.slices] >= maskops.THRESHOLD) & (crop_hard < maskops.THRESHOLD)
            ob = maskops.bounds(others)
            if ob is not None:
                win = ob.pad(8).clamp(crop.width, crop.height)
                filled = maskops.rough_fill(crop_rgb[win.slices], hard[crop.slices][win.slices])
                model_rgb = crop_rgb.copy()
                sub = model_rgb[win.slices]
                sub[others[win.slices]] = filled[others[win.slices]]
        _add(timings, "crop", tick)
        tick = time.perf_counter()
        work_rgb = compositing.resize(model_rgb, plan.work_size)
        work_mask = compositing.resize_mask(crop_hard, plan.work_size)
        _add(timings, "resize", tick)
        work_soft = None
        if state.soft is not None:
            work_soft = cv2.resize(np.where(crop_hard > 0, state.soft[crop.slices], np.uint8(0)), plan.work_size,
                                   interpolation=cv2.INTER_AREA)
            work_mask = maskops.binarize(work_soft)
        if params.masked_content == "fill" and not self.backend.native_resolution and not replace_all:
            work_rgb = maskops.classical_fill(work_rgb, work_mask)
        controls = tuple(compositing.resize(compositing.to_rgb8(c[crop.slices]), plan.work_size)
                         for c in state.job.control_images)  # exactly the image's crop and resize
        request = BackendRequest(work_rgb, work_mask, params, state.seeds, control_images=controls, soft_mask=work_soft,
                                 reference_image=state.job.reference_image)
        return request, crop_rgb, crop_hard

    def _region_output(self, state: _State, plan: regions.RegionPlan, crop_rgb: np.ndarray, crop_hard: np.ndarray,
                       generated: list[np.ndarray]) -> None:
        """Composite one region's candidates into the job's outputs."""
        params, hard, timings, crop = state.params, state.hard, state.timings, plan.crop
        tick = time.perf_counter()
        # Everything after the model happens in the "paint window": the crop's mask box
        # plus the feather and colour-ring reach. The crop holds every mask pixel within
        # reach of it (regions are planned that way), so distances there are exact, and
        # one distance map serves both the feather weights and the colour-matching ring.
        if state.replace_all:
            paint, dist, weights = Bounds.of_image(crop.width, crop.height), None, None
        else:
            reach = max(params.mask_blur + 1, COLOUR_RING)
            box = maskops.bounds(crop_hard)
            if box is None:  # nothing of the mask is this region's to repaint
                return
            paint = box.pad(reach + 1).clamp(crop.width, crop.height)
            dist = maskops.distance_to_mask(crop_hard[paint.slices], reach)
            weights = maskops.weights_from_distance(dist, params.mask_blur)
        target_box = Bounds(crop.x + paint.x, crop.y + paint.y, paint.width, paint.height)
        _add(timings, "feather", tick)
        for out, gen in zip(state.outputs, generated):
            tick = time.perf_counter()
            back = compositing.resize(np.ascontiguousarray(gen), (crop.width, crop.height))[paint.slices]
            _add(timings, "resize", tick)
            if state.soft is not None:  # A1111's difference-adaptive composite; 0 where the mask is 0
                soft = np.where(crop_hard[paint.slices] > 0, state.soft[target_box.slices], np.uint8(0))
                weights = soft_composite.blend_weights(crop_rgb[paint.slices], back, soft, params.soft_inpainting)
            if state.colour_match:
                tick = time.perf_counter()
                back = seams.match_colour(
                    back,
                    crop_rgb[paint.slices],
                    crop_hard[paint.slices],
                    ring=COLOUR_RING,
                    distance=dist,
                    exclude=None if plan.owned is None else hard[target_box.slices],
                )
                _add(timings, "colour_match", tick)
            tick = time.perf_counter()
            compositing.composite_into(out, back, target_box, weights)
            _add(timings, "composite", tick)

    def _result(self, state: _State) -> Result:
        params, timings = state.params, state.timings
        elapsed = time.perf_counter() - state.t0
        timings["overhead"] = elapsed - timings.get("model", 0.0)
        infotext_fields = getattr(self.backend, "infotext_fields", None)  # optional: LoRA/TI hashes
        if infotext_fields is not None:
            params = params.replace(extra={**params.extra, **infotext_fields(params)})
        return Result(
            job=state.job,
            params=params,
            candidates=tuple(Candidate(o, s) for o, s in zip(state.outputs, state.seeds)),
            regions=tuple(p.crop for p in state.plans),
            backend=self.backend.name,
            elapsed_s=elapsed,
            timings=timings,
        )


@dataclass
class _State:
    """One job on its way through the engine: its plan, and the outputs being composited."""

    job: Job
    params: GenerationParams
    hard: np.ndarray
    plans: list[regions.RegionPlan]
    replace_all: bool
    seeds: tuple[int, ...]
    colour_match: bool
    outputs: list[np.ndarray]
    timings: dict[str, float]
    t0: float
    soft: np.ndarray | None = None  # soft inpainting's grey mask, image-sized


def _bucketed(size: tuple[int, int], bucket: int) -> tuple[int, int]:
    """A work size rounded to multiples of ``bucket`` (a compiled step serves a few shapes)."""
    return tuple(max(bucket, int(round(side / bucket)) * bucket) for side in size)  # type: ignore[return-value]


def _add(timings: dict[str, float], key: str, since: float) -> None:
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - since


def _check_generated(generated: list[np.ndarray], count: int, size: tuple[int, int], backend: Backend) -> None:
    """A backend bug must fail loudly here, not as a broadcasting error inside compositing."""
    if len(generated) != count:
        raise RuntimeError(f"backend {backend.name} returned {len(generated)} images for {count} seeds")
    for img in generated:
        if img.shape != (size[1], size[0], 3) or img.dtype != np.uint8:
            raise RuntimeError(
                f"backend {backend.name} returned an image of shape {img.shape} {img.dtype}, expected {(size[1], size[0], 3)} uint8"
            )
