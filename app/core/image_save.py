"""Image files out: the one encoder of every format we write and the atomic save, apart from
loading (`imageio`) because writing needs none of the decode guards and loading none of this.

PNG keeps 8/16 bit, gray/RGB/RGBA, the ICC profile and the generation parameters (A1111 text
plus our JSON); TIFF keeps 16 bit and ICC; JPEG/WebP are 8-bit with the A1111 text in EXIF.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from app.core import compositing, decode_budget, density, metadata, tiff_tags
from app.core.atomic import atomic_write_bytes


#: zlib level of every PNG we write: 3 is within ~2 % of level 6's size at about half the time on
#: 24 MP photos (noise does not compress further), and it is the level the CLI floor bench uses.
PNG_LEVEL = 3
#: Row filter of every PNG we write (see `encode_png`).
PNG_FILTER = cv2.IMWRITE_PNG_FILTER_UP
#: zlib strategy of a *fast* PNG (`encode_png(fast=True)`): run-length matches only. On photos and
#: generated images after the "up" filter it encodes in about half the time of `PNG_LEVEL` at a
#: size within a few % (often smaller); flat graphics with repeated patterns (masks, screenshots)
#: compress worse, so only outputs a client is waiting for use it (bench/bench_server.py prints both).
PNG_FAST_STRATEGY = cv2.IMWRITE_PNG_STRATEGY_RLE

SAVE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def save_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    params: Any = None,
    icc_profile: bytes | None = None,
    quality: int = 95,
    fast_png: bool = False,
    dpi: tuple[float, float] | None = None,
) -> Path:
    """Write ``pixels`` atomically; the format comes from the extension.

    PNG keeps 8/16 bit, gray/RGB/RGBA and the ICC profile and, with ``params``, carries the
    AUTOMATIC1111 ``parameters`` chunk plus our JSON chunk. TIFF keeps 16 bit and ICC. JPEG/WebP
    are 8-bit only (16-bit data is rounded) and carry the A1111 text in EXIF UserComment.
    ``fast_png`` trades flat-graphics compression for encode time (`PNG_FAST_STRATEGY`).
    ``dpi``: the pixel density to record (`app.core.density`; not in WebP).
    Raises OSError (with the reason) when the destination cannot be written; nothing is left half.
    """
    dest = Path(path)
    ext = dest.suffix.lower()
    fmt = SAVE_FORMATS.get(ext)
    if fmt is None:
        raise ValueError(f"cannot save {dest.name}: use one of the extensions {', '.join(sorted(SAVE_FORMATS))}")
    arr = np.ascontiguousarray(pixels)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.ascontiguousarray(arr[:, :, 0])
    if arr.dtype not in (np.uint8, np.uint16) or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"cannot save pixels of shape {arr.shape} and type {arr.dtype}")
    data = encode_image(arr, fmt, params=params, icc_profile=icc_profile, quality=quality, fast_png=fast_png)
    atomic_write_bytes(dest, density.with_dpi(data, fmt, dpi))
    return dest


def encode_image(
    arr: np.ndarray, fmt: str, *, params: Any = None, icc_profile: bytes | None = None, quality: int = 95,
    fast_png: bool = False,
) -> bytes:
    """Encode to bytes in ``fmt`` (PNG, TIFF, JPEG, WEBP); see `save_image`."""
    high = arr.dtype == np.uint16
    colour = arr.ndim == 3
    if fmt == "PNG":
        return encode_png(arr, params=params, icc_profile=icc_profile, fast=fast_png)
    if fmt == "TIFF":
        if high and colour:
            ok, buf = cv2.imencode(".tiff", _rgb_to_bgr(arr))
            if not ok:
                raise OSError("TIFF encoding failed")
            data = buf.tobytes()
            return _tiff_add_tag(data, 34675, icc_profile) if icc_profile else data
        out = io.BytesIO()
        kwargs: dict[str, Any] = {"compression": "tiff_lzw"}
        if icc_profile:
            kwargs["icc_profile"] = icc_profile
        Image.fromarray(arr).save(out, "TIFF", **kwargs)
        return out.getvalue()
    # JPEG / WebP: 8 bit, no alpha for JPEG.
    if high:
        arr = compositing.to_8bit(arr)
    if fmt == "JPEG" and colour and arr.shape[2] == 4:
        arr = np.ascontiguousarray(arr[:, :, :3])
    pil = Image.fromarray(arr)
    out = io.BytesIO()
    kwargs = {"quality": quality}
    if icc_profile:
        kwargs["icc_profile"] = icc_profile
    exif = metadata.exif_with_params(params, arr.shape[1], arr.shape[0])
    if exif is not None:
        kwargs["exif"] = exif
    pil.save(out, fmt, **kwargs)
    return out.getvalue()


def encode_png(arr: np.ndarray, *, params: Any = None, icc_profile: bytes | None = None, level: int = PNG_LEVEL,
               fast: bool = False) -> bytes:
    """The one PNG writer (results, masks, project members): OpenCV (8/16 bit, gray/RGB/RGBA) with
    our chunks inserted after IHDR: iCCP, then the A1111 ``parameters`` text and our JSON.

    The "up" filter on every row instead of libpng's adaptive choice: on 24 MP photos it encodes
    20–40 % faster at `PNG_LEVEL` and the file is within ±5 % of the size (bench/bench_cli_floor.py).
    ``fast``: `PNG_FAST_STRATEGY` instead of zlib's default matching (``level`` then only tells
    stored, 0, from compressed).
    """
    source = _rgb_to_bgr(arr) if arr.ndim == 3 else arr
    options = [cv2.IMWRITE_PNG_COMPRESSION, int(level), cv2.IMWRITE_PNG_FILTER, PNG_FILTER]
    if fast:
        options += [cv2.IMWRITE_PNG_STRATEGY, PNG_FAST_STRATEGY]
    ok, buf = cv2.imencode(".png", source, options)
    if not ok:
        raise OSError("PNG encoding failed")
    del source
    chunks = []
    if icc_profile and len(icc_profile) <= decode_budget.MAX_ICC_BYTES:  # a bigger one could not be read back
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    chunks += [_png_text_chunk(k, v) for k, v in metadata.png_text_chunks(params, arr.shape[1], arr.shape[0])]
    return _png_insert_chunks(memoryview(buf.reshape(-1)), chunks)


def _rgb_to_bgr(arr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_text_chunk(key: str, value: str) -> bytes:
    """tEXt when the value is Latin-1, else iTXt (UTF-8), as A1111/Pillow do."""
    try:
        return _png_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _png_chunk(b"iTXt", key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + value.encode("utf-8"))


def _png_insert_chunks(png: bytes | memoryview, chunks: list[bytes]) -> bytes:
    """Insert ancillary chunks right after IHDR (before IDAT, where iCCP must be); one copy of
    the encoded file, however large (slices of a memoryview are views)."""
    view = memoryview(png)
    ihdr_end = 8 + 8 + struct.unpack(">I", view[8:12])[0] + 4
    return b"".join([view[:ihdr_end], *chunks, view[ihdr_end:]])


def _tiff_add_tag(data: bytes, tag: int, value: bytes) -> bytes:
    """Add an UNDEFINED-type tag (the ICC profile: OpenCV writes 16-bit colour TIFFs without one)."""

    def make(order: str, out: bytearray) -> dict[int, bytes]:
        offset = len(out)
        out += value
        return {tag: struct.pack(order + "HHII", tag, 7, len(value), offset)}

    return tiff_tags.with_tags(data, make)

