"""Canvas tool names and brush options: plain values, shared by the canvas and the tool panel.
Labels, keys and behaviour live in the tool objects (`app.widgets.canvas_tools`)."""

from __future__ import annotations

from dataclasses import dataclass

BRUSH = "brush"
ERASER = "eraser"
RECT = "rect"
LASSO = "lasso"
CONTEXT = "context"
WAND = "wand"
GRABCUT = "grabcut"
SAM = "sam"
TOOLS = (BRUSH, ERASER, RECT, LASSO, CONTEXT, WAND, GRABCUT, SAM)

MIN_BRUSH, MAX_BRUSH = 1, 2000


@dataclass
class BrushOptions:
    """Brush diameter in image pixels and hardness in [0, 1] (1 = hard edge)."""

    size: int = 64
    hardness: float = 0.8

    def resized(self, bigger: bool) -> int:
        """The next size for ``]`` / ``[``: ~15 % steps so small and large brushes both feel right."""
        step = max(1, round(self.size * 0.15))
        return clamp_size(self.size + step if bigger else self.size - step)


def clamp_size(size: float) -> int:
    return int(min(MAX_BRUSH, max(MIN_BRUSH, round(size))))


def size_class(width: int, height: int) -> str:
    """The image size class a brush size is remembered for (long side up to 1k, 2k, 4k, 8k, more)."""
    long_side = max(width, height)
    for limit in (1024, 2048, 4096, 8192):
        if long_side <= limit:
            return f"{limit // 1024}k"
    return "huge"


def default_brush_size(width: int, height: int) -> int:
    """A first brush that paints a visible stroke at the fit-to-window zoom: 1/12 of the long
    side (43 px on 512², 500 px on a 24 MP photo, where a fixed 64 px was a hairline at 13 %)."""
    return clamp_size(max(16, max(width, height) / 12))
