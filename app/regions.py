"""Which rectangles of the image a backend sees ("only masked" crops) and at what size."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.geometry import Bounds

MODEL_AREA = 512 * 512


@dataclass(frozen=True)
class RegionPlan:
    crop: Bounds  # in image pixels
    work_size: tuple[int, int]  # (width, height) the backend works at


def mask_bounds(mask: np.ndarray) -> Bounds | None:
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return Bounds(int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1))


def work_size_for(crop: Bounds, target: tuple[int | None, int | None] | None) -> tuple[int, int]:
    """``target`` None = native (classical); else model size: given width/height or ~512² area."""
    if target is None:
        return crop.width, crop.height
    tw, th = target
    if tw and th:
        return tw, th
    scale = (MODEL_AREA / max(1, crop.area)) ** 0.5
    w = max(256, min(2048, int(round(crop.width * scale / 8)) * 8))
    h = max(256, min(2048, int(round(crop.height * scale / 8)) * 8))
    if tw:
        w = tw
    if th:
        h = th
    return w, h


def plan_regions(
    hard: np.ndarray,
    *,
    padding: int,
    blur: int,
    whole_image: bool,
    context: Bounds | None,
    target: tuple[int | None, int | None] | None,
) -> list[RegionPlan]:
    height, width = hard.shape
    if whole_image:
        crops = [Bounds.of_image(width, height)]
    else:
        reach = padding + blur
        count, _, stats, _ = cv2.connectedComponentsWithStats((hard > 0).astype(np.uint8), connectivity=8)
        boxes = [Bounds(int(s[0]), int(s[1]), int(s[2]), int(s[3])).pad(reach).clamp(width, height) for s in stats[1:count]]
        crops = _merge(boxes)
        if context is not None:
            crops = [_merge_all(crops + [context.clamp(width, height)])]
    return [RegionPlan(c, work_size_for(c, target)) for c in crops]


def _merge_all(boxes: list[Bounds]) -> Bounds:
    out = boxes[0]
    for b in boxes[1:]:
        out = out.union(b)
    return out


def _merge(boxes: list[Bounds]) -> list[Bounds]:
    """Union overlapping boxes until none overlap."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if boxes[i].intersects(boxes[j]):
                    boxes[i] = boxes[i].union(boxes.pop(j))
                    merged = True
                    break
            if merged:
                break
    return boxes
