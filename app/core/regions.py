"""Which rectangles of the image a backend sees ("only masked" crops) and at what size.

"Only masked": each group of masked pixels gets its own region — the bounding box of its
feathered mask plus ``padding`` pixels — so a scratch in one corner and a blemish in the other
are each inpainted at full detail instead of sharing one 512 px view of the whole photo.
Groups whose padded boxes touch are merged. For a model backend the region is then widened to
the working size's aspect ratio (work size a multiple of 8, about 512² pixels) so nothing is
stretched; a classical backend works at native resolution and the region is not resized.

A sparse group bigger than the model comfortably sees (a long thin scratch across a scan) is
cut into tiles, each with its own region and its own part of the mask (``owned``), processed
one after another; the engine composites each over the previous one, so tiles blend.

A user-drawn context box replaces the automatic choice of what the model sees; the mask alone
still decides which pixels may change.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.core import maskops
from app.core.geometry import Bounds

MODEL_AREA = 512 * 512
MIN_SIDE, MAX_SIDE = 256, 2048
#: A group is tiled when its box is larger than this many model sides and the mask fills less
#: than ``SPARSE_FILL`` of it (a blob is never cut: the model must see an object whole).
TILE_FACTOR = 2.0
SPARSE_FILL = 0.15
#: Masks whose bounding box exceeds this many pixels are labelled at 1/COARSE_FACTOR scale.
COARSE_ABOVE = 4_000_000
COARSE_FACTOR = 4


@dataclass(frozen=True)
class RegionPlan:
    crop: Bounds  # what the backend sees, in image pixels
    work_size: tuple[int, int]  # (width, height) the backend works at
    #: The part of the image whose masked pixels this region repaints (None = all of ``crop``).
    owned: Bounds | None = None


def work_size_for(crop: Bounds, target: tuple[int | None, int | None] | None) -> tuple[int, int]:
    """``target`` None = native (classical); else model size: the given width/height, or about
    512² pixels with the crop's aspect, each side a multiple of 8 in 256–2048."""
    if target is None:
        return crop.width, crop.height
    tw, th = target
    if tw and th:
        return tw, th
    scale = (MODEL_AREA / max(1, crop.area)) ** 0.5
    w = _round8(crop.width * scale)
    h = _round8(crop.height * scale)
    if tw:
        w, h = tw, _round8(tw * crop.height / max(1, crop.width))
    elif th:
        w, h = _round8(th * crop.width / max(1, crop.height)), th
    return w, h


def _round8(value: float) -> int:
    return int(max(MIN_SIDE, min(MAX_SIDE, round(value / 8) * 8)))


def widen_to_aspect(crop: Bounds, aspect: float, width: int, height: int) -> Bounds:
    """Grow ``crop`` (never shrink it) to ``aspect`` = w/h, centred, shifted to stay inside the
    image; where the image is too small the crop stops at the image edge."""
    w, h = crop.width, crop.height
    if w / h < aspect:
        w = min(width, max(w, int(round(h * aspect))))
    else:
        h = min(height, max(h, int(round(w / aspect))))
    x = crop.x - (w - crop.width) // 2
    y = crop.y - (h - crop.height) // 2
    x = min(max(0, x), width - w)
    y = min(max(0, y), height - h)
    return Bounds(x, y, w, h)


def plan_regions(
    hard: np.ndarray,
    *,
    padding: int,
    blur: int,
    whole_image: bool,
    context: Bounds | None,
    target: tuple[int | None, int | None] | None,
) -> list[RegionPlan]:
    """Regions for a hard (0/255) mask. ``target`` None = native resolution (no resize)."""
    height, width = hard.shape
    full = Bounds.of_image(width, height)
    if whole_image:
        return [RegionPlan(full, work_size_for(full, target), None)]
    box = maskops.bounds(hard)
    if box is None:
        return []
    reach = maskops.feather_reach(blur) + padding
    if context is not None and not context.clamp(width, height).is_empty:
        # The model sees the user's box; it still holds all the mask lets change.
        crop = context.clamp(width, height).union(box.pad(maskops.feather_reach(blur)).clamp(width, height))
        return [_fit(crop, None, target, width, height)]
    tiled = [(group, _tiles(hard, group, reach, target)) for group in _groups(hard, box, reach, width, height)]
    if len(tiled) == 1 and tiled[0][1] == [tiled[0][0]]:
        return [_fit(tiled[0][0].pad(reach).clamp(width, height), None, target, width, height)]
    return [_fit(owned.pad(reach).clamp(width, height), owned, target, width, height) for _, tiles in tiled for owned in tiles]


def _fit(crop: Bounds, owned: Bounds | None, target, width: int, height: int) -> RegionPlan:
    """Widen ``crop`` to the work size's aspect (model backends) and settle the work size."""
    if target is None:
        return RegionPlan(crop, work_size_for(crop, None), owned)
    ww, wh = work_size_for(crop, target)
    crop = widen_to_aspect(crop, ww / wh, width, height)
    if not (target[0] and target[1]):
        ww, wh = work_size_for(crop, target)  # the clamped crop may still differ a little
    return RegionPlan(crop, (ww, wh), owned)


def _groups(hard: np.ndarray, box: Bounds, reach: int, width: int, height: int) -> list[Bounds]:
    """Bounding boxes (unpadded) of mask components whose padded boxes do not touch."""
    sub = hard[box.slices]
    # On a big sparse mask, label a max-pooled copy: boxes come out up to f−1 px larger, which
    # only makes grouping more conservative (it never splits what touches), and labelling
    # 1/f² of the pixels is what keeps planning cheap on 24 MP scans full of scratches.
    f = COARSE_FACTOR if box.area > COARSE_ABOVE else 1
    if f > 1:
        ph, pw = -sub.shape[0] % f, -sub.shape[1] % f
        padded = cv2.copyMakeBorder(np.ascontiguousarray(sub), 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        # area average of an f×f block of a 0/255 mask is > 0 exactly when any pixel is set
        small = cv2.resize(padded, (padded.shape[1] // f, padded.shape[0] // f), interpolation=cv2.INTER_AREA)
        labels_in = (small > 0).view(np.uint8)
    else:
        labels_in = np.ascontiguousarray(sub >= maskops.THRESHOLD).view(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(labels_in, connectivity=8)
    boxes = [
        Bounds(int(s[0]) * f + box.x, int(s[1]) * f + box.y, int(s[2]) * f, int(s[3]) * f).clamp(width, height)
        for s in stats[1:count]
    ]
    boxes = [b if f == 1 else _tighten(hard, b) for b in boxes]
    return merge_touching([b for b in boxes if b is not None], reach, width, height)


def _tighten(hard: np.ndarray, box: Bounds) -> Bounds | None:
    inner = maskops.bounds(hard[box.slices])
    return None if inner is None else Bounds(box.x + inner.x, box.y + inner.y, inner.width, inner.height)


def merge_touching(boxes: list[Bounds], reach: int, width: int, height: int) -> list[Bounds]:
    """Union boxes whose ``reach``-padded, image-clamped versions overlap, until none do.

    Vectorised over all boxes per pass, so thousands of specks (dust on a scan) stay cheap.
    """
    if not boxes:
        return []
    arr = np.array([[b.x, b.y, b.right, b.bottom] for b in boxes], np.int64)
    changed = True
    while changed and len(arr) > 1:
        changed = False
        padded = np.stack(
            [np.maximum(arr[:, 0] - reach, 0), np.maximum(arr[:, 1] - reach, 0),
             np.minimum(arr[:, 2] + reach, width), np.minimum(arr[:, 3] + reach, height)], axis=1
        )
        out = []
        alive = np.ones(len(arr), bool)
        for i in range(len(arr)):
            if not alive[i]:
                continue
            cur = arr[i].copy()
            cur_p = padded[i].copy()
            while True:
                hit = alive & (padded[:, 0] < cur_p[2]) & (cur_p[0] < padded[:, 2]) & (padded[:, 1] < cur_p[3]) & (cur_p[1] < padded[:, 3])
                hit[i] = False
                if not hit.any():
                    break
                changed = True
                alive[hit] = False
                cur = np.array([min(cur[0], arr[hit, 0].min()), min(cur[1], arr[hit, 1].min()),
                                max(cur[2], arr[hit, 2].max()), max(cur[3], arr[hit, 3].max())])
                cur_p = np.array([max(cur[0] - reach, 0), max(cur[1] - reach, 0), min(cur[2] + reach, width), min(cur[3] + reach, height)])
            alive[i] = False
            out.append(cur)
        arr = np.array(out, np.int64)
    return [Bounds(int(a[0]), int(a[1]), int(a[2] - a[0]), int(a[3] - a[1])) for a in arr]


def _tiles(hard: np.ndarray, group: Bounds, reach: int, target) -> list[Bounds]:
    """Cut a large sparse group into tiles of about the model's view; else return it whole."""
    if target is None:
        return [group]
    side = int(TILE_FACTOR * MODEL_AREA**0.5)
    if group.width <= side and group.height <= side:
        return [group]
    sub = hard[group.slices] >= maskops.THRESHOLD
    if sub.mean() >= SPARSE_FILL:
        return [group]
    tile = max(64, side - 2 * reach)  # leaves room for the padding inside one model view
    out = []
    for y in range(group.y, group.bottom, tile):
        for x in range(group.x, group.right, tile):
            cell = Bounds(x, y, min(tile, group.right - x), min(tile, group.bottom - y))
            inner = maskops.bounds(hard[cell.slices] >= maskops.THRESHOLD)
            if inner is not None:
                out.append(Bounds(cell.x + inner.x, cell.y + inner.y, inner.width, inner.height))
    return out
