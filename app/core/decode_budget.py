"""One decode budget for every image that enters the app, checked from the header before decoding.

A few bytes can claim gigabytes of pixels: a 34-byte lossless WebP of 16383² took 11.8 s and
4.7 GB, a 1.4 MB progressive JPEG with 2,200 scans 68 s, a TIFF with 100,000 pages 83 s. Every
load path (CLI, window, ``info``, projects, recovery, server) asks `check_decode_budget` first;
it reads only the header (Pillow's lazy open, a TIFF's IFD chain, a JPEG's markers) and refuses:

- more than `MAX_PIXELS`, or a large image with more pixels per file byte than any real encoder
  gives (`MAX_PIXELS_PER_BYTE`; JPEG: `JPEG_MAX_PIXELS_PER_BYTE`);
- a JPEG with more than `MAX_JPEG_SCANS` scans (each progressive scan re-walks every block);
- decoded bytes (our layout: 1, 3 or 4 channels, 8 or 16 bit) that do not fit in the memory
  available now, times `WORKING_COPIES` (decoder buffer, our array, the editor's copies).

Frames/pages beyond the first are never decoded; they are counted up to `MAX_FRAMES_COUNTED`
without walking the rest. Only regular files are read (`read_image_file`: /dev/zero, a FIFO or
a folder is refused before a byte is read). Qt-free, torch-free.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from app.core.errors import UserError

#: Largest image accepted (16384² ≈ 268 MP, 0.8 GB as RGB8: eleven 24 MP photos).
MAX_PIXELS = 16384 * 16384
# Pillow's own bomb guard warns above MAX_IMAGE_PIXELS and fails (at open, without saying the
# size) above twice that. We check right after open, from the header, with a message naming the
# size; Pillow's guard stays as a backstop well above ours.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS * 8

#: A JPEG spends at least a few bits on every 8×8 block even when flat; one that claims more than
#: this many pixels per byte of file is truncated or crafted, and decoding it would only allocate.
JPEG_MAX_PIXELS_PER_BYTE = 256
#: Any other format: deflate stops at ~1032:1 (a 1-bit PNG: ~8,300 pixels per byte), GIF's LZW
#: lower still; lossless WebP has no bound (16383² in 34 bytes). Images above `SMALL_PIXELS` that
#: claim more are crafted; below it a flat image may compress as well as it likes.
MAX_PIXELS_PER_BYTE = 20_000
SMALL_PIXELS = 16 * 1024 * 1024
#: libjpeg-turbo's advice for untrusted files is a scan limit; real progressive JPEGs have ≤ ~12.
MAX_JPEG_SCANS = 150
#: Largest ICC profile kept (real ones are 0.5–600 KB). A bigger one (a JPEG can carry any size)
#: is dropped at load (`imageio`) with a note, so no PNG we write carries one our reader would refuse.
MAX_ICC_BYTES = 8 * 1024 * 1024
#: Frames or pages counted for the "only the first of N is used" note; past this: "N+".
MAX_FRAMES_COUNTED = 1000
#: Copies of the decoded image alive at once while loading and editing it.
WORKING_COPIES = 3
#: Largest file read as an image (a 16384² 16-bit RGBA TIFF uncompressed is 2 GiB).
MAX_FILE_BYTES = 3 * 1024**3


class ImageLoadError(UserError, ValueError):
    """The file cannot be used as an image; ``str(error)`` is one line for the user."""

    title = "Cannot read the image"


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, before any pixel is decoded."""

    format: str
    width: int
    height: int
    mode: str
    frames: int  # counted up to MAX_FRAMES_COUNTED + 1
    orientation: int | None
    decoded_bytes: int  # our array's size once decoded

    @property
    def oriented_size(self) -> tuple[int, int]:
        """(width, height) after the EXIF orientation is applied (5–8 swap the axes)."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


def read_image_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an image file, only if it is a regular file of sane size; `ImageLoadError`
    otherwise (a device, FIFO, folder, link loop, missing or unreadable file), one line each."""
    p = Path(path)
    name = p.name or str(p)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise ImageLoadError(f"{name}: file not found ({p}); check the path.") from None
    except PermissionError:
        raise ImageLoadError(f"{name}: permission denied; make the file readable or copy it elsewhere.") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{name} is a folder, not an image file: choose an image file.") from None
    except OSError as exc:
        raise ImageLoadError(_unreadable(name, exc)) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageLoadError(f"{name} is a folder, not an image file: choose an image file.")
        if not stat.S_ISREG(st.st_mode):
            raise ImageLoadError(f"{name} is not a regular file (a device, pipe or socket); choose an image file.")
        if st.st_size > MAX_FILE_BYTES:
            raise ImageLoadError(f"{name} is {st.st_size / 2**30:.1f} GiB, larger than any image Inpaint Studio opens "
                                 f"({MAX_FILE_BYTES / 2**30:.0f} GiB); use a smaller copy.")
        with open(fd, "rb", closefd=False) as fh:
            return fh.read(MAX_FILE_BYTES)
    except OSError as exc:
        raise ImageLoadError(_unreadable(name, exc)) from None
    finally:
        os.close(fd)


def _unreadable(name: str, exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return f"{name} is a symbolic link that loops (it points back at itself); fix or remove the link."
    return f"{name}: cannot be read ({exc.strerror or exc}); check the disk or path."


def check_decode_budget(data: bytes, name: str = "image") -> ImageHeader:
    """Refuse, from the header alone, an image that would cost more to decode than it may (see the
    module docstring); return what the header says. Raises `ImageLoadError`; a header Pillow
    cannot read at all raises what Pillow raises (the loader turns that into its own message)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limits, with sizes in the message
        try:
            pil = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise ImageLoadError(too_large(name)) from None
        with pil:
            return check_image(pil, data, name)


def check_image(pil: Image.Image, data: bytes, name: str) -> ImageHeader:
    """`check_decode_budget` for an image Pillow has already opened (lazily) from ``data``."""
    w, h = pil.size
    fmt = pil.format or ""
    if w <= 0 or h <= 0:
        raise ImageLoadError(f"{name} has no pixels ({w}×{h}); use another image.")
    pixels = w * h
    if pixels > MAX_PIXELS:
        raise ImageLoadError(too_large(name, w, h))
    per_byte = JPEG_MAX_PIXELS_PER_BYTE if fmt in ("JPEG", "MPO") else MAX_PIXELS_PER_BYTE
    if (fmt in ("JPEG", "MPO") or pixels > SMALL_PIXELS) and pixels > per_byte * len(data):
        raise ImageLoadError(
            f"{name} claims {w}×{h} pixels but holds only {len(data)} bytes: it is truncated or not a real image "
            "(possibly a decompression bomb); use a complete copy of the image."
        )
    if fmt in ("JPEG", "MPO"):
        scans = data.count(b"\xff\xda")  # SOS markers: 0xFF inside entropy data is always stuffed
        if scans > MAX_JPEG_SCANS:
            raise ImageLoadError(f"{name} is a JPEG with {scans} progressive scans (real photos have about 10); "
                                 "decoding it would take minutes: it is damaged or crafted. Re-save it in another program.")
    decoded = pixels * _bytes_per_pixel(pil, data)
    _check_memory(name, w, h, decoded)
    return ImageHeader(fmt, w, h, pil.mode, count_frames(pil, data), orientation_of(pil), decoded)


def _bytes_per_pixel(pil: Image.Image, data: bytes) -> int:
    """Bytes per pixel of the array we will hold (see `app.core.imageio._to_array`)."""
    mode = pil.mode
    depth16 = mode.startswith("I;16") or mode == "I" or _declared_16bit(pil, data)
    channels = {"1": 1, "L": 1, "I": 1, "I;16": 1, "I;16L": 1, "I;16B": 1, "I;16N": 1, "F": 1}.get(mode)
    if channels is None:
        channels = 4 if mode in ("RGBA", "LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in pil.info) else 3
    return channels * (2 if depth16 else 1)


def _declared_16bit(pil: Image.Image, data: bytes) -> bool:
    if pil.format == "PNG" and len(data) > 25:
        return data[24] == 16
    if pil.format == "TIFF":
        bits = getattr(pil, "tag_v2", {}).get(258)
        bits = bits if isinstance(bits, tuple) else (bits,)
        return any(b == 16 for b in bits if isinstance(b, int))
    return False


def available_memory() -> int:
    """Bytes the system can give us now without swapping (psutil; a large number if unknown)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no psutil or no /proc: do not block loads on it
        return 1 << 62


def _check_memory(name: str, w: int, h: int, decoded: int) -> None:
    need = decoded * WORKING_COPIES
    free = available_memory()
    if need > free:
        raise ImageLoadError(
            f"{name} ({w}×{h}) needs about {need / 2**30:.1f} GiB of memory to open, but only "
            f"{free / 2**30:.1f} GiB is free; close other programs or use a smaller image."
        )


def too_large(name: str, w: int | None = None, h: int | None = None) -> str:
    size = f" ({w}×{h} = {w * h / 1e6:.0f} MP)" if w and h else ""
    return (
        f"{name} is too large{size}: the limit is {MAX_PIXELS / 1e6:.0f} MP; "
        "reduce the image size in another program (or it may be a decompression bomb)."
    )


def orientation_of(pil: Image.Image) -> int | None:
    try:
        value = pil.getexif().get(0x0112)
        return int(value) if value else None
    except Exception:  # noqa: BLE001 - a damaged EXIF block: no orientation
        return None


def count_frames(pil: Image.Image, data: bytes) -> int:
    """Frames/pages in the file, counted up to `MAX_FRAMES_COUNTED` + 1 without decoding any.
    A TIFF's IFD chain is walked here (Pillow's ``n_frames`` parses every page: 83 s for
    100,000); other formats' counts come from their headers."""
    if pil.format == "TIFF":
        return _tiff_pages(data)
    if pil.format == "GIF":
        return _gif_frames(data)  # Pillow's n_frames seeks through (and half-reads) every frame
    try:
        return min(int(getattr(pil, "n_frames", 1) or 1), MAX_FRAMES_COUNTED + 1)
    except Exception:  # noqa: BLE001 - a count is a note, never a reason to fail
        return 1


def _tiff_pages(data: bytes) -> int:
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8:
        return 1
    try:
        (magic,) = struct.unpack(order + "H", data[2:4])
        big = magic == 43
        offset = struct.unpack(order + ("Q" if big else "I"), data[8:16] if big else data[4:8])[0]
        count_fmt, entry, ptr = ("Q", 20, "Q") if big else ("H", 12, "I")
        count_size, ptr_size = (8, 8) if big else (2, 4)
        pages, seen = 0, set()
        while offset and offset not in seen and pages <= MAX_FRAMES_COUNTED:
            seen.add(offset)
            (n,) = struct.unpack(order + count_fmt, data[offset : offset + count_size])
            pages += 1
            at = offset + count_size + n * entry
            (offset,) = struct.unpack(order + ptr, data[at : at + ptr_size])
        return max(pages, 1)
    except struct.error:
        return 1


def _gif_frames(data: bytes) -> int:
    """Image descriptors in a GIF's block chain (skipping data sub-blocks), up to the cap."""
    if len(data) < 13:
        return 1
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    while pos < len(data) and frames <= MAX_FRAMES_COUNTED:
        kind = data[pos]
        if kind == 0x21:  # extension: introducer, label, sub-blocks
            pos += 2
        elif kind == 0x2C:  # image: descriptor, optional local colour table, LZW size, sub-blocks
            frames += 1
            if pos + 10 > len(data):
                break
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
        else:  # trailer (0x3B) or damage: stop counting
            break
        while pos < len(data):
            size = data[pos]
            pos += 1 + size
            if size == 0:
                break
    return max(frames, 1)
