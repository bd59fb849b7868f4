"""Every metadata text an image carries, by name: PNG tEXt/iTXt/zTXt chunks, EXIF UserComment
(ASCII, UNICODE = UTF-16 either byte order, UTF-8 or no header) and ImageDescription.

Readers then recognise the content, not the name: JSON under ``parameters`` is SwarmUI or
Fooocus, text in a UserComment may be A1111's or NovelAI's JSON.
"""

from __future__ import annotations

import zlib
from typing import Any

from PIL import Image

from app.core import boundedjson

_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
_IMAGE_DESCRIPTION = 0x010E
#: Our own JSON chunk: we write it correctly (tEXt only when Latin-1), so it is never "repaired"
#: ("Â\xa0" is a valid prompt, not UTF-8 misread).
_OURS = "inpaint-studio"


def collect_texts(image: Image.Image) -> dict[str, str]:
    """{name: text} of the image's metadata; never raises."""
    texts: dict[str, str] = {}
    for key, value in image.info.items():
        if isinstance(value, bytes) and key not in ("exif", "icc_profile", "xmp", "dpi"):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and value.strip():
            texts[str(key)] = value if key == _OURS else repair_mojibake(value)
    try:
        exif = image.getexif()
        comment = decode_user_comment(exif.get_ifd(_EXIF_IFD).get(_USER_COMMENT))
        description = exif.get(_IMAGE_DESCRIPTION)
    except Exception:  # a damaged EXIF block is no reason to lose the PNG chunks
        return texts
    if comment:
        texts["UserComment"] = repair_mojibake(comment)
    if isinstance(description, str) and description.strip():
        texts.setdefault("ImageDescription", description)
    from app.core.sdmeta.exif_graphs import graph_texts  # ComfyUI graphs in EXIF tags (WebP, JPEG)

    for key, text in graph_texts(exif, texts.get("UserComment")).items():
        texts.setdefault(key, repair_mojibake(text))
    return texts


def repair_mojibake(text: str) -> str:
    """UTF-8 bytes read as Latin-1 (Stability Matrix writes UTF-8 into Latin-1 tEXt chunks):
    "cafÃ©" → "café". Text that is not such a misreading comes back unchanged."""
    if text.isascii():
        return text
    try:
        repaired = text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text
    return repaired


def decode_user_comment(raw: Any) -> str | None:
    """EXIF UserComment → text. The 8-byte header names the encoding; A1111 writes UNICODE as
    big-endian UTF-16 (piexif), some tools little-endian: the byte order that yields printable
    text wins. No header: UTF-8."""
    if isinstance(raw, str):
        return raw.strip("\x00").strip() or None
    if not isinstance(raw, (bytes, bytearray)) or not raw:
        return None
    raw = bytes(raw)
    head, body = raw[:8], raw[8:]
    if head.startswith(b"UNICODE"):
        for enc in ("utf-16-be", "utf-16-le"):
            try:
                text = body.decode(enc)
            except UnicodeDecodeError:
                continue
            if text and all(ch.isprintable() or ch in "\n\r\t" for ch in text[:200]):
                return text.strip("\x00") or None
        return None
    if head.startswith(b"ASCII") or head == b"\x00" * 8:
        body_text = body.decode("utf-8", "replace")
    elif head.startswith(b"UTF-8") or head.startswith(b"UTF8"):
        body_text = body.decode("utf-8", "replace")
    else:
        body_text = raw.decode("utf-8", "replace")
    return body_text.strip("\x00").strip() or None


def json_object(text: str | None) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None (not JSON, or JSON but not an object)."""
    if not text or text.lstrip()[:1] != "{":
        return None
    try:
        value = boundedjson.loads(text)  # Python's json also takes the NaN some tools write; depth-capped
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


#: Largest text taken from one PNG chunk (an A1111 infotext with a ComfyUI graph is ~100 KB);
#: a compressed chunk is inflated at most this far.
MAX_CHUNK_TEXT = 16 * 1024 * 1024


def png_texts(data: bytes) -> tuple[dict[str, str], bytes]:
    """Every tEXt/zTXt/iTXt chunk of a PNG held in ``data`` by keyword, and its EXIF block as
    Pillow keeps it (``b"Exif\\0\\0" + eXIf``, or b"" when none), read without decoding a pixel:
    Pillow reads the chunks after the image data, and even looks for EXIF, only by decoding it
    all (`info` on a 29000² PNG took 9 s and 3.3 GB). Damaged or oversized chunks are skipped."""
    texts: dict[str, str] = {}
    exif = b""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND":
            break
        if kind == b"eXIf" and not exif:
            exif = b"Exif\x00\x00" + body
        if kind not in (b"tEXt", b"zTXt", b"iTXt") or length > MAX_CHUNK_TEXT:
            continue
        key, _, rest = body.partition(b"\x00")
        try:
            text = _chunk_text(kind, rest)
        except (ValueError, zlib.error):
            continue
        if text is not None:
            texts.setdefault(key.decode("latin-1"), text)
    return texts, exif


def _chunk_text(kind: bytes, rest: bytes) -> str | None:
    if kind == b"tEXt":
        return rest.decode("latin-1")
    if kind == b"zTXt":
        return _inflate(rest[1:]).decode("latin-1")
    compressed, _method = rest[:1] == b"\x01", rest[1:2]
    _lang, _, rest = rest[2:].partition(b"\x00")
    _translated, _, rest = rest.partition(b"\x00")
    return (_inflate(rest) if compressed else rest).decode("utf-8", "replace")


def _inflate(body: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(body, MAX_CHUNK_TEXT)
    if d.unconsumed_tail:
        raise ValueError("text chunk inflates past the cap")
    return out
