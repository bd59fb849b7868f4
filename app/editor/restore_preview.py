"""What the restore dialog's before/after view shows, as RGB8 arrays (Qt-free numpy, so the
fitted pair of a 96 MP upscale is made on the pool thread, not while the window waits).

Fitted: the result (around the selection, when there is one) and the before scaled to the same
size. Detail: a 1:1 crop of the result, the before enlarged by nearest neighbour so its pixels
show as they are.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.core import maskops
from app.core.geometry import Bounds
from app.editor.qimage import display_rgb8

#: The view's size in pixels (width, height).
VIEW = (640, 420)


def focus_of(selection: np.ndarray | None) -> Bounds | None:
    """The part of the image the compare view centres on: the selection with half its size
    around it (at least 16 px), or None (the whole image)."""
    box = None if selection is None else maskops.bounds(selection)
    return None if box is None else box.pad(max(16, max(box.width, box.height) // 2))


def compare_pair(before: np.ndarray, after: np.ndarray, focus: Bounds | None = None, detail: bool = False,
                 view: tuple[int, int] = VIEW) -> tuple[np.ndarray, np.ndarray]:
    """(before, after) as RGB8 arrays of one size for the view: around ``focus`` (before's
    coordinates; None = the whole image), fitted to ``view`` or, with ``detail``, 1:1 in the result."""
    s = after.shape[1] / before.shape[1]
    h, w = before.shape[:2]
    focus = (focus or Bounds.of_image(w, h)).clamp(w, h)
    if detail:
        cw, ch = min(view[0], after.shape[1]), min(view[1], after.shape[0])
        cx, cy = (focus.x + focus.width / 2) * s, (focus.y + focus.height / 2) * s
        x = int(min(max(cx - cw / 2, 0), after.shape[1] - cw))
        y = int(min(max(cy - ch / 2, 0), after.shape[0] - ch))
        a = after[y:y + ch, x:x + cw]
        bx0, by0 = int(x / s), int(y / s)
        bx1, by1 = max(bx0 + 1, int(np.ceil((x + cw) / s))), max(by0 + 1, int(np.ceil((y + ch) / s)))
        b = before[by0:by1, bx0:bx1]
        b = cv2.resize(b, (int(round((bx1 - bx0) * s)), int(round((by1 - by0) * s))), interpolation=cv2.INTER_NEAREST)
        ox, oy = int(round(x - bx0 * s)), int(round(y - by0 * s))
        b = b[oy:oy + ch, ox:ox + cw]
        return _rgb8(b), _rgb8(a)
    a = after[int(focus.y * s):int(focus.bottom * s), int(focus.x * s):int(focus.right * s)]
    b = before[focus.slices]
    fit = min(view[0] / a.shape[1], view[1] / a.shape[0], 1.0)
    size = (max(1, int(a.shape[1] * fit)), max(1, int(a.shape[0] * fit)))
    return (_rgb8(cv2.resize(b, size, interpolation=cv2.INTER_AREA if b.shape[1] > size[0] else cv2.INTER_NEAREST)),
            _rgb8(cv2.resize(a, size, interpolation=cv2.INTER_AREA)))


def _rgb8(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(display_rgb8(pixels))
