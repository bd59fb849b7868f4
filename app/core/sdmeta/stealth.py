""""Stealth" metadata hidden in the least significant bits of the pixels, written by A1111's
stealth-pnginfo extension and by NovelAI, so it survives sites that strip PNG chunks.

Bits are read column by column (x outer, y inner) from the alpha channel (one bit per pixel) or
from R, G, B (three). A 15-byte signature names the layout — ``stealth_png…`` alpha,
``stealth_rgb…`` RGB; ``…info`` plain UTF-8, ``…comp`` gzip — followed by the payload length in
bits (32-bit big-endian) and the payload.
"""

from __future__ import annotations

import zlib

import numpy as np
from PIL import Image

_SIGNATURES = {b"stealth_pnginfo": False, b"stealth_pngcomp": True, b"stealth_rgbinfo": False, b"stealth_rgbcomp": True}
_MAX_PAYLOAD = 16 * 1024 * 1024  # bits of a sane metadata text; more is noise, not a payload
#: Largest hidden text kept once inflated (A1111's infotext with a ComfyUI graph is ~100 KB).
MAX_TEXT_BYTES = 4 * 1024 * 1024


def read_stealth(image: Image.Image) -> str | None:
    """The hidden text, or None when the pixels carry none; never raises. Reads only the columns
    the signature (and then the payload) occupies, so a plain photo costs one column."""
    if image.mode not in ("RGBA", "RGB"):
        return None
    layouts = [slice(3, 4)] if image.mode == "RGBA" else []
    layouts.append(slice(0, 3))
    try:
        for channels in layouts:
            head = _lsb_bytes(image, channels, 19)
            compressed = _SIGNATURES.get(head[:15])
            if compressed is None:
                continue
            bits = int.from_bytes(head[15:19], "big")
            if not 0 < bits <= _MAX_PAYLOAD:
                return None
            body = _lsb_bytes(image, channels, 19 + bits // 8)[19:]
            return (_gunzip(body) if compressed else body).decode("utf-8")
    except (OSError, ValueError, EOFError, zlib.error, UnicodeDecodeError):
        return None
    return None


def _gunzip(body: bytes) -> bytes:
    """gzip with a cap on the output: a 2 MB payload inflating to 400 MB took 27 s and 842 MB."""
    d = zlib.decompressobj(wbits=31)
    text = d.decompress(body, MAX_TEXT_BYTES)
    if d.unconsumed_tail:
        raise ValueError("hidden text larger than any generation parameters")
    return text


def _lsb_bytes(image: Image.Image, channels: slice, count: int) -> bytes:
    """The first ``count`` bytes of the low bits, column by column."""
    width, height = image.size
    per_column = height * (channels.stop - channels.start)
    columns = min(width, -(-count * 8 // per_column))
    pixels = np.asarray(image.crop((0, 0, columns, height)))
    bits = (pixels[..., channels] & 1).transpose(1, 0, 2).reshape(-1)[: count * 8]
    return np.packbits(bits).tobytes()
