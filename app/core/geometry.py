"""Small geometry value types, so region code reads like the problem (after Krita AI's Bounds/Extent)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bounds:
    """An axis-aligned pixel rectangle: x, y of the top-left corner, width and height."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    @property
    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    @property
    def slices(self) -> tuple[slice, slice]:
        """Numpy index for rows, columns: ``array[b.slices]``."""
        return slice(self.y, self.bottom), slice(self.x, self.right)

    def pad(self, amount: int) -> Bounds:
        return Bounds(self.x - amount, self.y - amount, self.width + 2 * amount, self.height + 2 * amount)

    def clamp(self, width: int, height: int) -> Bounds:
        """Intersect with the image rectangle (0, 0, width, height)."""
        x0, y0 = max(0, self.x), max(0, self.y)
        x1, y1 = min(width, self.right), min(height, self.bottom)
        return Bounds(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def union(self, other: Bounds) -> Bounds:
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.right, other.right), max(self.bottom, other.bottom)
        return Bounds(x0, y0, x1 - x0, y1 - y0)

    def intersects(self, other: Bounds) -> bool:
        return self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom

    def contains(self, other: Bounds) -> bool:
        return self.x <= other.x and self.y <= other.y and self.right >= other.right and self.bottom >= other.bottom

    @staticmethod
    def of_image(width: int, height: int) -> Bounds:
        return Bounds(0, 0, width, height)
