"""Mask painting geometry: which pixels a round-brush segment touches and how much, and the
lasso polygon fill.

Pure numpy and OpenCV, kept apart from the Document so the maths can be read (and tested) on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from app.core.geometry import Bounds

Point = tuple[float, float]


def segment_bounds(p0: Point, p1: Point, radius: float, width: int, height: int) -> Bounds:
    """Pixels a brush segment can touch: the segment's box grown by the radius, clamped."""
    r = radius + 1.0
    x0, x1 = int(np.floor(min(p0[0], p1[0]) - r)), int(np.ceil(max(p0[0], p1[0]) + r))
    y0, y1 = int(np.floor(min(p0[1], p1[1]) - r)), int(np.ceil(max(p0[1], p1[1]) + r))
    return Bounds(x0, y0, x1 - x0, y1 - y0).clamp(width, height)


def brush_coverage(bounds: Bounds, p0: Point, p1: Point, radius: float, hardness: float) -> np.ndarray:
    """uint8 coverage (0–255) of a round brush swept from p0 to p1, over ``bounds`` only.

    Coordinates are continuous image coordinates (pixel i spans [i, i+1)). The footprint is the
    distance to the segment, so a fast mouse move is a solid capsule, never a row of dots.
    ``hardness`` 1 gives a hard edge with one pixel of anti-aliasing; lower values fall off with a
    smoothstep from ``radius * hardness`` to ``radius``.
    """
    ys = np.arange(bounds.y, bounds.bottom, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(bounds.x, bounds.right, dtype=np.float32)[None, :] + 0.5
    ax, ay = np.float32(p0[0]), np.float32(p0[1])
    abx, aby = np.float32(p1[0] - p0[0]), np.float32(p1[1] - p0[1])
    length2 = abx * abx + aby * aby
    px, py = xs - ax, ys - ay
    if length2 < 1e-6:
        d = np.sqrt(px * px + py * py)
    else:
        t = np.clip((px * abx + py * aby) / length2, 0.0, 1.0)
        dx, dy = px - t * abx, py - t * aby
        d = np.sqrt(dx * dx + dy * dy)
    radius = max(0.5, float(radius))
    hardness = float(np.clip(hardness, 0.0, 1.0))
    if hardness >= 0.999:
        cov = np.clip(radius - d + 0.5, 0.0, 1.0)
    else:
        inner = radius * hardness
        t = np.clip((radius - d) / (radius - inner), 0.0, 1.0)
        cov = t * t * (3.0 - 2.0 * t)
    return (cov * 255.0 + 0.5).astype(np.uint8)


def lasso_fill(points: Sequence[Point], value: int, width: int, height: int) -> tuple[Bounds, Callable[[np.ndarray], None]]:
    """The box a lasso polygon (image coordinates) covers, clamped, and an edit that fills it
    with ``value`` in a view of that box. OpenCV fills the pixel centres inside the polygon;
    4 bits of fixed point (``shift=4``) keep sub-pixel vertices."""
    pts = np.asarray(points, np.float64)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    b = Bounds(int(x0), int(y0), int(x1 - x0) + 1, int(y1 - y0) + 1).clamp(width, height)
    local = np.round((pts - [b.x + 0.5, b.y + 0.5]) * 16).astype(np.int32)

    def edit(region: np.ndarray) -> None:
        cv2.fillPoly(region, [local], value, lineType=cv2.LINE_8, shift=4)

    return b, edit
