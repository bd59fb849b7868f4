"""The engine: runs one immutable `Job` through a backend and composites the result.

Flow: validate params and resolve the seed → plan regions around the mask → per region, crop,
convert to RGB8, resize to the backend's working size → backend → resize back → composite into
the ORIGINAL pixels with the feathered mask. Outside the mask the candidates are bit-identical
to the input because compositing copies, never re-encodes, those pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from app import compositing, maskops, regions
from app.geometry import Bounds
from app.params import GenerationParams


class Cancelled(Exception):
    """The user cancelled the run; the engine stays usable."""


class EmptyMaskError(ValueError):
    """Inpainting needs at least one masked pixel."""

    def __init__(self) -> None:
        super().__init__("The mask is empty: paint the area to repaint (white in a mask file) and try again.")


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


class Engine:
    """Runs jobs on one backend. Not thread-safe: one run at a time (the worker serialises)."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def run(self, job: Job, progress: ProgressFn | None = None, cancelled: CancelFn | None = None) -> Result:
        progress = progress or (lambda p: None)
        cancelled = cancelled or (lambda: False)
        t0 = time.perf_counter()
        params = job.params.validate().with_resolved_seed()
        seeds = tuple(params.batch_seeds())
        image = job.image
        height, width = image.shape[:2]

        if params.mode == "img2img" and (job.mask is None or not job.mask.any()):
            mask = np.full((height, width), 255, np.uint8)
            whole = True
        else:
            if job.mask is None:
                raise EmptyMaskError()
            mask = maskops.validate_mask(job.mask, (height, width))
            whole = params.inpaint_area == "whole"
        hard = maskops.grow(mask, params.mask_grow)
        if not hard.any():
            raise EmptyMaskError()

        plans = regions.plan_regions(
            hard,
            padding=params.padding,
            blur=params.mask_blur,
            whole_image=whole,
            context=job.context,
            target=None if self.backend.native_resolution else (params.width, params.height),
        )
        timings = {"prepare": time.perf_counter() - t0}
        outputs = [image.copy() for _ in seeds]
        n = len(plans)
        model_s = 0.0
        for index, plan in enumerate(plans):
            if cancelled():
                raise Cancelled()
            crop_rgb = compositing.to_rgb8(image[plan.crop.slices])
            crop_mask = hard[plan.crop.slices]
            work_rgb = compositing.resize(crop_rgb, plan.work_size)
            work_mask = compositing.resize_mask(crop_mask, plan.work_size)
            if params.masked_content == "fill" and not self.backend.native_resolution:
                work_rgb = maskops.classical_fill(work_rgb, work_mask)

            def region_progress(step: int, total: int, preview: np.ndarray | None, _i=index, _b=plan.crop) -> None:
                progress(Progress(_i * total + step, n * total, preview, _b))

            t_model = time.perf_counter()
            generated = self.backend.generate(
                BackendRequest(work_rgb, work_mask, params, seeds), region_progress, cancelled
            )
            model_s += time.perf_counter() - t_model
            weights = maskops.feather(hard, params.mask_blur, plan.crop) if params.mode == "inpaint" else None
            for out, gen in zip(outputs, generated):
                back = compositing.resize(gen, (plan.crop.width, plan.crop.height))
                compositing.composite_into(out, back, plan.crop, weights)
        timings["model"] = model_s
        elapsed = time.perf_counter() - t0
        timings["overhead"] = elapsed - model_s
        return Result(
            job=job,
            params=params,
            candidates=tuple(Candidate(o, s) for o, s in zip(outputs, seeds)),
            regions=tuple(p.crop for p in plans),
            backend=self.backend.name,
            elapsed_s=elapsed,
            timings=timings,
        )
