"""Every metadata text an image carries, by name: PNG tEXt/iTXt/zTXt chunks, EXIF UserComment
(ASCII, UNICODE = UTF-16 either byte order, UTF-8 or no header) and ImageDescription.

Readers then recognise the content, not the name: JSON under ``parameters`` is SwarmUI or
Fooocus, text in a UserComment may be A1111's or NovelAI's JSON.
"""

from __future__ import annotations

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
