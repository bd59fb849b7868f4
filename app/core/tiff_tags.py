"""Tags added to a classic TIFF after it is encoded (OpenCV writes no ICC profile, Pillow's and
OpenCV's writers no density we choose): a new first IFD appended at the end, holding the old
entries plus the new ones, so every offset of the old IFD stays valid (only bytes are added)."""

from __future__ import annotations

import struct
from collections.abc import Callable

#: ``make(order, out)`` appends the new tags' values to ``out`` (a ``struct`` byte order, "<" or
#: ">") and returns their 12-byte IFD entries by tag.
MakeEntries = Callable[[str, bytearray], dict[int, bytes]]


def with_tags(data: bytes, make: MakeEntries) -> bytes:
    """``data`` (a TIFF) with the entries ``make`` adds, replacing entries of the same tags."""
    order = "<" if data[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[first:first + 2])
    entries = [data[first + 2 + 12 * i: first + 14 + 12 * i] for i in range(count)]
    (next_ifd,) = struct.unpack(order + "I", data[first + 2 + 12 * count: first + 6 + 12 * count])
    out = bytearray(data)
    if len(out) % 2:
        out += b"\x00"
    new = make(order, out)
    if len(out) % 2:
        out += b"\x00"

    def tag_of(entry: bytes) -> int:
        return struct.unpack(order + "H", entry[:2])[0]

    entries = sorted([e for e in entries if tag_of(e) not in new] + list(new.values()), key=tag_of)
    ifd = len(out)
    out += struct.pack(order + "H", len(entries)) + b"".join(entries) + struct.pack(order + "I", next_ifd)
    out[4:8] = struct.pack(order + "I", ifd)
    return bytes(out)
