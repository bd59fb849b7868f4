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

import numpy as np

from app.core import compositing, maskops, regions, seams
from app.core.errors import EmptyMaskError
from app.core.geometry import Bounds
from app.core.params import GenerationParams


class Cancelled(Exception):
    """The user cancelled the run; the engine stays usable."""


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


@dataclass(frozen=True)
class Job:
    """Immutable input of one generation. ``image`` is the document's pixels in their own
    format (uint8/uint16, gray/RGB/RGBA) so the composite can keep them exactly."""

    params: GenerationParams
    image: np.ndarray
    mask: np.ndarray | None  # H×W uint8, 255 = repaint; None for img2img of the whole image
    context: Bounds | None = None  # what the model sees, chosen apart from the mask


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
        """Validate the job and plan its regions: (params with seed, hard mask, plans, whole-image
        replace?). Raises `EmptyMaskError`, `ParamError`, `MaskError`, ValueError."""
        params = job.params.validate().with_resolved_seed()
        image = job.image
        compositing.check_pixels(image)
        height, width = image.shape[:2]
        replace_all = False
        if params.mode == "img2img" and (job.mask is None or not np.any(job.mask)):
            hard = np.full((height, width), 255, np.uint8)
            whole, replace_all = True, True
        else:
            if job.mask is None:
                raise EmptyMaskError()
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
        return params, hard, plans, replace_all

    def _colour_match(self, params: GenerationParams) -> bool:
        """``params.color_match``; "auto" = on for model backends, off for classical ones."""
        if params.color_match == "auto":
            return not self.backend.native_resolution
        return params.color_match == "on"

    def run(self, job: Job, progress: ProgressFn | None = None, cancelled: CancelFn | None = None) -> Result:
        progress = progress or (lambda p: None)
        cancelled = cancelled or (lambda: False)
        t0 = time.perf_counter()
        params, hard, plans, replace_all = self.plan(job)
        seeds = tuple(params.batch_seeds())
        image = job.image
        colour_match = not replace_all and self._colour_match(params)
        timings = {"plan": time.perf_counter() - t0}
        tick = time.perf_counter()
        outputs = [image.copy() for _ in seeds]
        _add(timings, "copy", tick)
        n = len(plans)
        for index, plan in enumerate(plans):
            if cancelled():
                raise Cancelled()
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
            if params.masked_content == "fill" and not self.backend.native_resolution and not replace_all:
                work_rgb = maskops.classical_fill(work_rgb, work_mask)

            def region_progress(step: int, total: int, preview: np.ndarray | None, _i=index, _b=crop) -> None:
                progress(Progress(_i * total + step, n * total, preview, _b))

            tick = time.perf_counter()
            generated = self.backend.generate(BackendRequest(work_rgb, work_mask, params, seeds), region_progress, cancelled)
            _add(timings, "model", tick)
            if cancelled():
                raise Cancelled()
            _check_generated(generated, len(seeds), plan.work_size, self.backend)
            tick = time.perf_counter()
            # Everything after the model happens in the "paint window": the crop's mask box
            # plus the feather and colour-ring reach. The crop holds every mask pixel within
            # reach of it (regions are planned that way), so distances there are exact, and
            # one distance map serves both the feather weights and the colour-matching ring.
            if replace_all:
                paint, dist, weights = Bounds.of_image(crop.width, crop.height), None, None
            else:
                reach = max(params.mask_blur + 1, COLOUR_RING)
                box = maskops.bounds(crop_hard)
                if box is None:  # nothing of the mask is this region's to repaint
                    continue
                paint = box.pad(reach + 1).clamp(crop.width, crop.height)
                dist = maskops.distance_to_mask(crop_hard[paint.slices], reach)
                weights = maskops.weights_from_distance(dist, params.mask_blur)
            target_box = Bounds(crop.x + paint.x, crop.y + paint.y, paint.width, paint.height)
            _add(timings, "feather", tick)
            for out, gen in zip(outputs, generated):
                tick = time.perf_counter()
                back = compositing.resize(np.ascontiguousarray(gen), (crop.width, crop.height))[paint.slices]
                _add(timings, "resize", tick)
                if colour_match:
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
        elapsed = time.perf_counter() - t0
        timings["overhead"] = elapsed - timings.get("model", 0.0)
        infotext_fields = getattr(self.backend, "infotext_fields", None)  # optional: LoRA/TI hashes
        if infotext_fields is not None:
            params = params.replace(extra={**params.extra, **infotext_fields(params)})
        return Result(
            job=job,
            params=params,
            candidates=tuple(Candidate(o, s) for o, s in zip(outputs, seeds)),
            regions=tuple(p.crop for p in plans),
            backend=self.backend.name,
            elapsed_s=elapsed,
            timings=timings,
        )


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
