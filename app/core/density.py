"""Pixel density (DPI): read from a decoded file, scaled with an upscale, written into encoded bytes.

The rule for an upscale by s: the DPI is multiplied by s, so the print size stays what it was
and the extra pixels become extra detail. That is what a restoration user wants (a 6×4 in print
scanned at 300 dpi and upscaled ×4 prints at 6×4 in, 1200 dpi) — keeping 300 dpi would silently
make it a 24×16 in print. Photoshop's Image Size asks (Resample on keeps the DPI and grows the
print; off keeps the print size); A1111 and chaiNNer drop the density altogether (viewers then
assume 72 or 96 dpi, a print size nobody chose). An image without a density gets none.

Written formats: PNG (``pHYs``, pixels per metre), JPEG (the JFIF header's density), TIFF
(XResolution/YResolution/ResolutionUnit). WebP has no density field of its own; it gets none.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from app.core import tiff_tags

DPI = tuple[float, float]
_INCH = 0.0254  # metres


def of(info: dict[str, Any]) -> DPI | None:
    """The density Pillow read (its ``info["dpi"]``), when it is a pair of positive numbers."""
    dpi = info.get("dpi")
    try:
        x, y = (float(v) for v in dpi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (_tidy(x), _tidy(y)) if x > 0 and y > 0 else None


def _tidy(value: float) -> float:
    """A PNG stores pixels per metre, so 300 dpi reads back as 299.9994: within PNG's step
    (1 px/m = 0.0254 dpi) of a whole number, it is that number."""
    whole = round(value)
    return float(whole) if abs(value - whole) < 0.03 else round(value, 3)


def scaled(dpi: DPI | None, sx: float, sy: float) -> DPI | None:
    """``dpi`` after the pixels were scaled by ``sx``×``sy``: the same print size."""
    if dpi is None:
        return None
    return round(dpi[0] * sx, 3), round(dpi[1] * sy, 3)


def with_dpi(data: bytes, fmt: str, dpi: DPI | None) -> bytes:
    """``data`` (encoded as ``fmt``: PNG, JPEG, TIFF, WEBP) carrying ``dpi``."""
    if dpi is None:
        return data
    if fmt == "PNG":
        return _png(data, dpi)
    if fmt == "JPEG":
        return _jpeg(data, dpi)
    if fmt == "TIFF":
        return _tiff(data, dpi)
    return data


def _png(data: bytes, dpi: DPI) -> bytes:
    """A ``pHYs`` chunk (unit: metre) right after IHDR, replacing any other."""
    body = struct.pack(">IIB", round(dpi[0] / _INCH), round(dpi[1] / _INCH), 1)
    chunk = struct.pack(">I", len(body)) + b"pHYs" + body + struct.pack(">I", zlib.crc32(b"pHYs" + body) & 0xFFFFFFFF)
    view = memoryview(data)
    parts, pos = [view[:8]], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", view[pos:pos + 4])
        end = pos + 12 + length
        kind = bytes(view[pos + 4:pos + 8])
        if kind != b"pHYs":
            parts.append(view[pos:end])
        if kind == b"IHDR":
            parts.append(memoryview(chunk))
        pos = end
    return b"".join(parts)


def _jpeg(data: bytes, dpi: DPI) -> bytes:
    """The JFIF APP0 segment's density in dots per inch (inserted when the file has none)."""
    x, y = (min(65535, max(1, round(v))) for v in dpi)
    if data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00":
        return data[:13] + struct.pack(">BHH", 1, x, y) + data[18:]
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01" + struct.pack(">BHHBB", 1, x, y, 0, 0)
    return data[:2] + app0 + data[2:]


def _tiff(data: bytes, dpi: DPI) -> bytes:
    """XResolution, YResolution (RATIONAL) and ResolutionUnit = inch (`tiff_tags.with_tags`)."""

    def make(order: str, out: bytearray) -> dict[int, bytes]:
        new = {}
        for tag, value in ((282, dpi[0]), (283, dpi[1])):
            offset = len(out)
            out += struct.pack(order + "II", round(value * 1000), 1000)
            new[tag] = struct.pack(order + "HHII", tag, 5, 1, offset)
        new[296] = struct.pack(order + "HHIHH", 296, 3, 1, 2, 0)
        return new

    return tiff_tags.with_tags(data, make)


__all__ = ["DPI", "of", "scaled", "with_dpi"]
