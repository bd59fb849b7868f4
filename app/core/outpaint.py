"""Expand the canvas for outpainting: new size, pre-filled new area, its mask and context box.

Why pre-fill: a diffusion model starting from black (or noise with no hint of the colours next
to it) paints a visible seam; a rough guess of the surroundings gives it the palette and lets it
paint over. Whatever the fill, the original pixels are copied back unchanged at their new place
(``Expansion.offset``), so 16-bit values and alpha survive bit-exactly. numpy/cv2 only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.core.errors import UserError
from app.core.geometry import Bounds
from app.core.imageio import MAX_PIXELS

#: Pre-fill modes for the new area, with their menu labels.
FILL_MODES = {"stretch": "Edge stretch", "inpaint": "OpenCV inpaint", "blur": "Blurred border", "solid": "Solid colour"}
#: Aspect-ratio presets offered by the dialog (width, height).
ASPECT_PRESETS = {"3:2": (3, 2), "4:3": (4, 3), "16:9": (16, 9), "1:1": (1, 1)}
#: How much of the old image the context box keeps around the new area, in pixels.
CONTEXT_BORDER = 64
_INPAINT_WORK_SIDE = 512  # cv2.inpaint runs at most at this size: a pre-fill needs no detail


class ExpandError(UserError, ValueError):
    """A bad expansion request; ``str(error)`` is one line for the user."""

    title = "Cannot expand the canvas"


@dataclass(frozen=True)
class Expansion:
    """Pixels added on each side."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    def __post_init__(self) -> None:
        for side in ("left", "top", "right", "bottom"):
            value = getattr(self, side)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ExpandError(f"expand {side} = {value!r}: must be a whole number of pixels, 0 or more.")

    @property
    def is_empty(self) -> bool:
        return not (self.left or self.top or self.right or self.bottom)

    @property
    def offset(self) -> tuple[int, int]:
        """(x, y) where the old image's top-left corner lands."""
        return int(self.left), int(self.top)

    def new_size(self, width: int, height: int) -> tuple[int, int]:
        return int(width + self.left + self.right), int(height + self.top + self.bottom)

    def old_bounds(self, width: int, height: int) -> Bounds:
        """Where the old image sits in the new one."""
        return Bounds(int(self.left), int(self.top), int(width), int(height))

    def as_tuple(self) -> tuple[int, int, int, int]:
        return int(self.left), int(self.top), int(self.right), int(self.bottom)


def parse_expansion(text: str) -> Expansion:
    """``"LEFT,TOP,RIGHT,BOTTOM"`` (pixels) → `Expansion`."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ExpandError(f"--expand {text!r}: give four whole numbers of pixels LEFT,TOP,RIGHT,BOTTOM, e.g. 0,0,256,0.")
    return Expansion(*(int(p) for p in parts))


def parse_aspect(text: str) -> tuple[int, int]:
    """``"16:9"`` → (16, 9); presets and custom ratios alike."""
    try:
        w, h = (int(p) for p in str(text).split(":"))
    except ValueError:
        raise ExpandError(f"aspect ratio {text!r}: write it as W:H, e.g. 16:9.") from None
    if w <= 0 or h <= 0:
        raise ExpandError(f"aspect ratio {text!r}: both sides must be positive.")
    return w, h


def expansion_for_aspect(width: int, height: int, ratio: tuple[int, int], anchor: tuple[float, float] = (0.5, 0.5)) -> Expansion:
    """The smallest growth that gives ``ratio`` (only ever adds). ``anchor`` (0..1 per axis)
    says where the old image stays: (0.5, 0.5) centres it, (0, 0.5) keeps it on the left."""
    rw, rh = ratio
    if width * rh >= height * rw:  # too wide (or exact): grow the height
        extra_w, extra_h = 0, -(-width * rh // rw) - height
    else:
        extra_w, extra_h = -(-height * rw // rh) - width, 0
    left = int(round(extra_w * anchor[0]))
    top = int(round(extra_h * anchor[1]))
    return Expansion(left, top, int(extra_w - left), int(extra_h - top))


def check_expansion(width: int, height: int, exp: Expansion) -> None:
    w, h = exp.new_size(width, height)
    if w * h > MAX_PIXELS:
        raise ExpandError(f"expanding {width}×{height} to {w}×{h} exceeds the {MAX_PIXELS // 10**6} MP limit; expand less.")


def _max_value(dtype: np.dtype) -> int:
    return 65535 if dtype == np.uint16 else 255


def _solid(pixels: np.ndarray, colour: tuple[int, ...] | None) -> tuple[float, ...]:
    """cv2 border value: ``colour`` (8-bit RGB, scaled to the image's depth), opaque alpha."""
    top = _max_value(pixels.dtype)
    rgb = colour if colour is not None else (128, 128, 128)
    scaled = [int(round(c * top / 255)) for c in rgb[:3]]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels == 1:
        return (float(round(sum(scaled) / 3)),) * 4
    return tuple(float(v) for v in (scaled + [top])[:channels]) + (0.0,) * (4 - channels)


def _border(pixels: np.ndarray, exp: Expansion, kind: int, value=None) -> np.ndarray:
    return cv2.copyMakeBorder(pixels, exp.top, exp.bottom, exp.left, exp.right, kind, value=value)


def _blurred(pixels: np.ndarray, exp: Expansion) -> np.ndarray:
    """Mirror the border outwards, then blur it hard: colours without copied detail."""
    mirrored = _border(pixels, exp, cv2.BORDER_REFLECT_101)
    radius = max(3, min(max(exp.as_tuple()), 255) // 2 * 2 + 1)
    small = max(1, radius // 8)  # blur a downscaled copy: the same look for a fraction of the cost
    h, w = mirrored.shape[:2]
    down = cv2.resize(mirrored, (max(1, w // small), max(1, h // small)), interpolation=cv2.INTER_AREA)
    k = max(3, radius // small | 1)
    blurred = cv2.GaussianBlur(down, (k, k), 0)
    return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR).reshape(mirrored.shape)


def _telea(pixels: np.ndarray, exp: Expansion) -> np.ndarray:
    """cv2.inpaint (Telea) of the new area, run on a copy at most `_INPAINT_WORK_SIDE` wide."""
    grown = _border(pixels, exp, cv2.BORDER_REPLICATE)
    h, w = grown.shape[:2]
    scale = min(1.0, _INPAINT_WORK_SIDE / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    hole = np.full((h, w), 255, np.uint8)
    hole[exp.old_bounds(pixels.shape[1], pixels.shape[0]).slices] = 0
    hole_small = cv2.resize(hole, (sw, sh), interpolation=cv2.INTER_NEAREST)
    shift = 8 if pixels.dtype == np.uint16 else 0
    planes = grown.reshape(h, w, -1)
    out = np.empty_like(planes)
    for c in range(planes.shape[2]):  # cv2.inpaint takes 8-bit 1/3 channels: fill plane by plane
        plane8 = (planes[:, :, c] >> shift).astype(np.uint8)
        small = cv2.resize(plane8, (sw, sh), interpolation=cv2.INTER_AREA)
        filled = cv2.inpaint(small, hole_small, 5, cv2.INPAINT_TELEA)
        big = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR).astype(planes.dtype)
        out[:, :, c] = big * 257 if shift else big
    return out.reshape(grown.shape)


def expand_pixels(pixels: np.ndarray, exp: Expansion, fill: str = "stretch", colour: tuple[int, ...] | None = None) -> np.ndarray:
    """The image grown by ``exp``: the new area pre-filled by ``fill`` (one of `FILL_MODES`),
    the old pixels copied in unchanged at ``exp.offset`` (any dtype/channels)."""
    if fill not in FILL_MODES:
        raise ExpandError(f"fill {fill!r} is not one of {', '.join(FILL_MODES)}.")
    pixels = np.ascontiguousarray(pixels)
    check_expansion(pixels.shape[1], pixels.shape[0], exp)
    if fill == "stretch":
        out = _border(pixels, exp, cv2.BORDER_REPLICATE)
    elif fill == "solid":
        out = _border(pixels, exp, cv2.BORDER_CONSTANT, _solid(pixels, colour))
    elif fill == "blur":
        out = _blurred(pixels, exp)
    else:
        out = _telea(pixels, exp)
    out = np.ascontiguousarray(out.reshape(exp.new_size(pixels.shape[1], pixels.shape[0])[::-1] + pixels.shape[2:]))
    out[exp.old_bounds(pixels.shape[1], pixels.shape[0]).slices] = pixels  # exactness, whatever the fill did
    return out


def expand_mask(mask: np.ndarray, exp: Expansion) -> np.ndarray:
    """The mask grown by ``exp``: new area 255 (to be painted), the old mask kept as it was."""
    return cv2.copyMakeBorder(np.ascontiguousarray(mask), exp.top, exp.bottom, exp.left, exp.right, cv2.BORDER_CONSTANT, value=255)


def context_box_for(width: int, height: int, exp: Expansion, border: int = CONTEXT_BORDER) -> Bounds:
    """The context box after expanding a ``width``×``height`` image: the new area plus
    ``border`` pixels of the old image next to it, so the model sees what it continues."""
    nw, nh = exp.new_size(width, height)
    if exp.is_empty:
        return Bounds.of_image(nw, nh)
    strips = [
        Bounds(0, 0, exp.left, nh),
        Bounds(nw - exp.right, 0, exp.right, nh),
        Bounds(0, 0, nw, exp.top),
        Bounds(0, nh - exp.bottom, nw, exp.bottom),
    ]
    new_area = None
    for strip in (s for s in strips if not s.is_empty):
        new_area = strip if new_area is None else new_area.union(strip)
    return new_area.pad(border).clamp(nw, nh)


def shift_box(box: Bounds | None, exp: Expansion) -> Bounds | None:
    """A box of the old image moved to its place in the new one."""
    return None if box is None else Bounds(box.x + exp.left, box.y + exp.top, box.width, box.height)


@dataclass(frozen=True)
class OutpaintInput:
    """What a generation request needs after expanding: pixels, mask, context box."""

    pixels: np.ndarray
    mask: np.ndarray
    context: Bounds


def prepare_outpaint(
    pixels: np.ndarray, mask: np.ndarray | None, exp: Expansion, fill: str = "stretch", colour: tuple[int, ...] | None = None
) -> OutpaintInput:
    """Expand an image (and its mask, if any: the old mask is kept, the new area added) for a
    generation request. The one function every front end calls (CLI, server)."""
    h, w = pixels.shape[:2]
    old_mask = np.zeros((h, w), np.uint8) if mask is None else mask
    return OutpaintInput(expand_pixels(pixels, exp, fill, colour), expand_mask(old_mask, exp), context_box_for(w, h, exp))
