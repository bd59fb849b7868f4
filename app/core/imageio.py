"""Image files in and out, keeping what a photo editor must keep.

Loading gives the pixels in their own depth (8 or 16 bit) and layout (gray, RGB, RGBA) with the
EXIF orientation applied, plus the ICC profile and any generation parameters recalled from the
file. Pillow decodes 16-bit colour PNG/TIFF to 8 bit, so those pixels come from OpenCV instead
(Pillow still reads their metadata). Saving lives in `image_save` and is re-exported here, so
callers have one module for image files; it is atomic (temp file in the same folder, fsync,
``os.replace``): a crash or a full disk never leaves half a file where the user's image was.

Every failure is an `ImageLoadError` whose message is one line saying what is wrong and what to do.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from app.core import decode_budget, density, metadata
from app.core.decode_budget import (  # re-exported: callers import the budget from here
    MAX_FRAMES_COUNTED,
    JPEG_MAX_PIXELS_PER_BYTE,
    MAX_PIXELS,
    ImageHeader,
    ImageLoadError,
    check_decode_budget,
    check_image,
    orientation_of,
    read_image_file,
    too_large,
)
from app.core.image_save import SAVE_FORMATS, encode_image, encode_png, save_image  # noqa: F401 (re-exported: the one place callers load and save)
from app.core.sdmeta import recall

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class LoadedImage:
    """Decoded pixels plus what must survive a round trip through the editor."""

    pixels: np.ndarray  # H×W (gray), H×W×3 (RGB) or H×W×4 (RGBA); uint8 or uint16
    icc_profile: bytes | None = None
    source_format: str = ""  # Pillow's format name: PNG, JPEG, TIFF, WEBP, ...
    params: Any = None  # GenerationParams recalled from the file's metadata, or None
    #: Facts about the decode a user may want to know: original mode, bit depth, conversions
    #: made ("converted": "CMYK → RGB"), EXIF orientation applied, frame count, A1111 text,
    #: "recall": the `app.core.sdmeta.RecallResult` the window's recall applies.
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def has_alpha(self) -> bool:
        return self.pixels.ndim == 3 and self.pixels.shape[2] == 4


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def load_image(path: str | os.PathLike[str], *, read_metadata: bool = True) -> LoadedImage:
    """Load an image file; raise `ImageLoadError` with a user-facing message on any failure.

    ``read_metadata=False`` skips recalling generation parameters (text chunks, EXIF comment,
    stealth pixels): the CLI and mask loading never use them, and the stealth scan reads pixels.
    """
    p = Path(path)
    data = read_image_file(p)  # regular files only: /dev/zero or a FIFO is refused, not read forever
    return load_image_bytes(data, p.name, read_metadata=read_metadata)


def png_header(data: bytes) -> tuple[int, int, int, int, bytes | None]:
    """(width, height, bit depth, colour type, ICC profile) of a PNG, without decoding pixels.

    Every chunk's length and CRC is checked first: OpenCV trusts a chunk length, and a 200-byte
    file claiming a 3 GB IDAT makes it allocate gigabytes and spin for seconds.
    """
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    icc = None
    view = memoryview(data)  # CRC over chunk slices without copying the (tens of MB of) IDAT
    pos = 8
    while True:
        if pos + 12 > len(data):
            raise ValueError("truncated PNG (no IEND chunk)")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ValueError("a PNG chunk runs past the end of the file")
        kind = data[pos + 4 : pos + 8]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(view[pos + 4 : end]) & 0xFFFFFFFF != crc:
            raise ValueError("PNG chunk checksum mismatch")
        if kind == b"iCCP":
            body = data[pos + 8 : end]
            sep = body.find(b"\x00")
            if sep < 0 or sep + 2 > len(body):
                raise ValueError("bad iCCP chunk")
            d = zlib.decompressobj()
            icc = d.decompress(body[sep + 2 :], decode_budget.MAX_ICC_BYTES)
            if d.unconsumed_tail:
                icc = None  # over decode_budget.MAX_ICC_BYTES: dropped (the pixels are fine)
        if kind == b"IEND":
            return width, height, depth, colour, icc
        pos = end + 4


def header_pixels(path: str | os.PathLike[str]) -> int:
    """Width × height from the file's header without decoding (0 when unreadable: the real
    load then says why), so a caller can decide where a load should run."""
    try:
        if not Path(path).is_file():  # a FIFO or /dev/zero: load_image says why
            return 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as pil:
                return int(pil.size[0]) * int(pil.size[1])
    except Exception:  # noqa: BLE001 - any unreadable file: let load_image report it
        return 0


def probe_image(path: str | os.PathLike[str]) -> ImageHeader:
    """`check_decode_budget` of a file: its header (size after EXIF orientation, frames, decoded
    bytes) or `ImageLoadError`, without decoding a pixel. The CLI compares a mask's size with the
    image's this way before decoding either."""
    p = Path(path)
    data = read_image_file(p)
    try:
        return check_decode_budget(data, p.name)
    except ImageLoadError:
        raise
    except Exception:  # noqa: BLE001 - not an image at all: the full loader words that
        load_image_bytes(data, p.name, read_metadata=False)
        raise


def load_image_bytes(data: bytes, name: str = "image", *, read_metadata: bool = True) -> LoadedImage:
    """Decode an image held in memory (drag-and-drop, clipboard, project files); see `load_image`."""
    if not data:
        raise ImageLoadError(f"{name} is empty (0 bytes): the file was not written completely; use another copy.")
    if data.startswith(PNG_SIGNATURE):
        try:
            png_header(data)
        except (ValueError, struct.error, zlib.error) as exc:
            if "truncated" in str(exc) or "past the end" in str(exc):
                raise ImageLoadError(f"{name} is truncated (the file ends early); use a complete copy of the image.") from None
            raise ImageLoadError(f"{name} is damaged and cannot be decoded ({exc}); use another copy of the image.") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check the size ourselves
            try:
                pil = Image.open(io.BytesIO(data))
                header = check_image(pil, data, name)
                return _decode(pil, data, name, read_metadata, header)
            except ValueError as exc:
                stripped = _without_oversized_metadata(data, exc)
                if stripped is None:
                    raise
            # Pillow refuses the whole PNG over one text or ICC chunk past its limits: the pixels
            # are fine, so decode them without those chunks (the ICC profile from our own reader).
            pil = Image.open(io.BytesIO(stripped))
            loaded = _decode(pil, stripped, name, read_metadata, check_image(pil, stripped, name))
            loaded.icc_profile = png_header(data)[4]
            loaded.info["note"] = _join_notes(loaded.info.get("note"), "metadata too large to read was ignored")
            return loaded
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(too_large(name)) from None
    except UnidentifiedImageError:
        raise ImageLoadError(
            f"{name} is not an image Inpaint Studio can read (unknown or corrupt format); open a PNG, JPEG, TIFF or WebP file."
        ) from None
    except MemoryError:
        raise ImageLoadError(f"{name} is too large to fit in memory; close other programs or use a smaller image.") from None
    except (OSError, ValueError, SyntaxError, struct.error, EOFError, IndexError, KeyError, TypeError, zlib.error) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in detail.lower() or isinstance(exc, EOFError):
            raise ImageLoadError(f"{name} is truncated (the file ends early); use a complete copy of the image.") from None
        raise ImageLoadError(f"{name} is damaged and cannot be decoded ({detail}); use another copy of the image.") from None


#: Pillow's messages when a PNG's text or ICC chunks pass its limits (PngImagePlugin.MAX_TEXT_CHUNK,
#: MAX_TEXT_MEMORY): the image is fine, its metadata is not readable.
_METADATA_LIMITS = ("Decompressed data too large", "Too much memory used in text chunks")
_DROPPABLE = (b"tEXt", b"zTXt", b"iTXt", b"iCCP")


def _without_oversized_metadata(data: bytes, exc: ValueError) -> bytes | None:
    """The PNG without its text and ICC chunks when ``exc`` is Pillow refusing those; else None."""
    if not data.startswith(PNG_SIGNATURE) or not any(m in str(exc) for m in _METADATA_LIMITS):
        return None
    view = memoryview(data)
    parts, pos = [view[:8]], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 12 + length
        if data[pos + 4 : pos + 8] not in _DROPPABLE:
            parts.append(view[pos:end])
        pos = end
    return b"".join(parts)


def _join_notes(*notes: str | None) -> str:
    return "; ".join(n for n in notes if n)


def _decode(pil: Image.Image, data: bytes, name: str, read_metadata: bool, header: ImageHeader) -> LoadedImage:
    fmt = pil.format or ""
    info: dict[str, Any] = {"mode": pil.mode, "size": pil.size}
    if (dpi := density.of(pil.info)) is not None:
        info["dpi"] = dpi  # kept for saving: an upscale scales it (`app.core.density`)
    n_frames = header.frames
    if n_frames > 1:
        info["frames"] = n_frames
        many = f"{n_frames - 1}+" if n_frames > MAX_FRAMES_COUNTED else str(n_frames)
        info["note"] = f"only the first of {many} frames/pages is used"
    # Decode fully first: it raises on truncated/corrupt data, and reading EXIF or late text
    # chunks would otherwise trigger (and a blanket except would hide) that same decode. A 16-bit
    # colour TIFF is the exception: its metadata is all in the header's tags, its pixels come
    # from OpenCV (which fails on bad data), and Pillow's 8-bit decode would be thrown away
    # (0.8 s at 24 MP).
    if not (fmt == "TIFF" and _is_16bit_colour(pil, data, fmt)):
        pil.load()
    icc = pil.info.get("icc_profile") or None
    if icc is not None and len(icc) > decode_budget.MAX_ICC_BYTES:
        icc = None  # no real profile is this big, and a PNG carrying it could not be reopened
        info["note"] = _join_notes(info.get("note"), "an oversized colour profile was dropped")
    orientation = orientation_of(pil)  # after load: a PNG's eXIf may follow the pixels
    recalled, a1111_text = _recall(pil) if read_metadata else (None, None)
    params = recalled.params if recalled is not None else None
    if recalled is not None:
        info["recall"] = recalled
    if a1111_text:
        info["parameters"] = a1111_text

    pixels = _decode_high_depth(pil, data, fmt)
    if pixels is None:
        pixels, converted = _to_array(pil, name)
        if converted:
            info["converted"] = converted
            if pil.mode == "CMYK":
                icc = None  # a CMYK profile does not describe the RGB pixels we now hold
    else:
        info["bit_depth"] = 16
    if orientation not in (None, 1):
        pixels = _apply_orientation(pixels, orientation)
        info["exif_orientation"] = orientation
    return LoadedImage(np.ascontiguousarray(pixels), icc, fmt, params, info)


def _recall(pil: Image.Image) -> tuple[Any, str | None]:
    """What "recall parameters" offers for the file (`app.core.sdmeta.RecallResult`: params or
    None, the fields the file sets, a one-line message) and its A1111 text; never fails the load."""
    try:
        return recall(pil), metadata.read_a1111_text(pil)
    except Exception:  # metadata is a bonus: a bad chunk must not make the image unreadable
        return None, None


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation 2–8 on a numpy array (works for 16-bit too, unlike Pillow's transpose)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(orientation)
    return op(arr) if op else arr


def _is_16bit_colour(pil: Image.Image, data: bytes, fmt: str) -> bool:
    if pil.mode not in ("RGB", "RGBA", "RGBX"):
        return False
    if fmt == "PNG" and len(data) > 25 and data[12:16] == b"IHDR":
        return data[24] == 16
    if fmt == "TIFF":
        bits = getattr(pil, "tag_v2", {}).get(258)
        bits = bits if isinstance(bits, tuple) else (bits,)
        return any(b == 16 for b in bits if b)
    return False


def _decode_high_depth(pil: Image.Image, data: bytes, fmt: str) -> np.ndarray | None:
    """16-bit colour PNG/TIFF through OpenCV (Pillow would reduce them to 8 bit); None otherwise."""
    if not _is_16bit_colour(pil, data, fmt):
        return None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise OSError("16-bit image data could not be decoded")
    if arr.dtype != np.uint16:
        return None
    if arr.ndim == 2:
        return arr
    # In place: a second 24 MP 16-bit buffer would cost 144 MB and its page faults.
    return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB, dst=arr)


def _to_array(pil: Image.Image, name: str) -> tuple[np.ndarray, str | None]:
    """Pillow image of any mode → our layouts; return (pixels, description of any conversion)."""
    mode = pil.mode
    if mode in ("L", "RGB", "RGBA"):
        return np.asarray(pil), None
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(pil).astype(np.uint16), None
    if mode == "1":
        return np.asarray(pil.convert("L")), "1-bit → 8-bit gray"
    if mode == "P":
        target = "RGBA" if pil.has_transparency_data else "RGB"
        return np.asarray(pil.convert(target)), f"palette → {target}"
    if mode in ("LA", "La", "PA"):
        return np.asarray(pil.convert("RGBA")), f"{mode} → RGBA (gray with alpha stored as RGBA)"
    if mode in ("RGBa",):
        return np.asarray(pil.convert("RGBA")), "premultiplied RGBA → RGBA"
    if mode in ("RGBX", "YCbCr", "LAB", "HSV"):
        return np.asarray(pil.convert("RGB")), f"{mode} → RGB"
    if mode == "CMYK":
        return np.asarray(pil.convert("RGB")), "CMYK → RGB (print colours converted for screen; the CMYK profile is dropped)"
    if mode == "I":
        arr = np.asarray(pil)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageLoadError(
                f"{name} holds 32-bit integer pixels outside 0–65535; convert it to 8- or 16-bit in another program."
            )
        return arr.astype(np.uint16), "32-bit integer → 16-bit gray"
    raise ImageLoadError(
        f"{name} uses the pixel mode {mode!r}, which is not supported; save it as 8- or 16-bit RGB, RGBA or gray."
    )


def load_mask(path: str | os.PathLike[str] | np.ndarray, shape: tuple[int, int], *, grey: bool = False) -> np.ndarray:
    """A mask file (any mode) → H×W uint8, 255 = repaint, 0 = keep.

    A mask whose colour is uniform but whose alpha varies (painted on a transparent layer) is
    read from its alpha; otherwise from its brightness. Values are thresholded at half so that
    JPEG noise in a black area never marks pixels for repainting; ``grey`` keeps the grey levels
    (soft inpainting reads them as how much each pixel may change).
    """
    shape = tuple(shape)[:2]  # an image's full shape (H, W, C) is fine too
    if isinstance(path, np.ndarray):
        loaded = LoadedImage(np.asarray(path))
    else:
        p = Path(path)
        data = read_image_file(p)
        try:  # the size from the header first: a wrong-size 16384² mask is refused without decoding it
            w, h = check_decode_budget(data, p.name).oriented_size
        except ImageLoadError:
            raise
        except Exception:  # noqa: BLE001 - not an image at all: the loader below words that
            w, h = shape[1], shape[0]
        if (h, w) != shape:
            raise ImageLoadError(_mask_size_message(w, h, shape))
        loaded = load_image_bytes(data, p.name, read_metadata=False)
    px = loaded.pixels
    if px.dtype == np.uint16:
        px = (px >> 8).astype(np.uint8)
    if px.ndim == 3:
        colour = px[:, :, :3].max(axis=2)
        if px.shape[2] == 4 and px[:, :, 3].min() < 255:
            alpha = px[:, :, 3]
            # Uniform colour on a transparent layer: the painted (opaque) part is the mask.
            gray = alpha if int(colour.max()) == int(colour.min()) else np.where(alpha >= 128, colour, 0).astype(np.uint8)
        else:
            gray = colour
    else:
        gray = px
    h, w = gray.shape
    if (h, w) != shape:
        raise ImageLoadError(_mask_size_message(w, h, shape))
    if grey:
        return np.ascontiguousarray(gray)
    # ≥ 128 → 255, else 0: OpenCV's threshold gives exactly that (> 127 on uint8, checked for all
    # 256 values in tests/test_imageio.py) ~15× faster than np.where on a 24 MP mask.
    return cv2.threshold(np.ascontiguousarray(gray), 127, 255, cv2.THRESH_BINARY)[1]


def _mask_size_message(w: int, h: int, shape: tuple[int, int]) -> str:
    return f"The mask is {w}×{h} but the image is {shape[1]}×{shape[0]}: use a mask of the same size as the image."
