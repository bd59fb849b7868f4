"""Small files that claim huge images are refused from their header, before any decoding
(a 631-byte JPEG claiming 30000×29000 took 20 s and 8.3 GB; an 800 KB PNG of 29000² took 2.4 GB)."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from app.core.imageio import ImageLoadError, load_image, load_image_bytes


def _jpeg_claiming(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, "JPEG", quality=50)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100_000, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.mark.parametrize("data, what", [
    (_jpeg_claiming(30000, 29000), "too large"),
    (_jpeg_claiming(6000, 4000), "holds only"),
    (_png_claiming(29000, 29000), "too large"),
])
def test_header_bombs_are_refused_at_once(data, what, tmp_path):
    path = tmp_path / "bomb.bin"
    path.write_bytes(data)
    t0 = time.perf_counter()
    with pytest.raises(ImageLoadError, match=what):
        load_image(path)
    assert time.perf_counter() - t0 < 1.0


def test_a_real_flat_jpeg_still_opens():
    buf = io.BytesIO()
    Image.fromarray(np.full((600, 800, 3), 200, np.uint8)).save(buf, "JPEG", quality=90)
    assert load_image_bytes(buf.getvalue(), "flat.jpg").pixels.shape == (600, 800, 3)
