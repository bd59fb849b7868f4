"""Reading a project zip as a hostile file: member names checked (never extracted, no ``..``,
no links, no encryption, no duplicates), sizes capped before anything is decompressed (zip
bombs), and every PNG header checked against the manifest's image layout before its pixels are
decoded (decompression bombs). Every failure is a `ProjectError`."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.core.imageio import png_header
from app.storage.project_format import ProjectError

#: Limits for hostile files. A real project never comes near them; tests lower them.
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_MEMBER_BYTES = 4 * 1024**3
MAX_TOTAL_BYTES = 32 * 1024**3  # sum of declared uncompressed sizes of the members we read
MAX_RATIO = 200  # uncompressed/compressed above this (for members > 1 MiB) = zip bomb

#: ``progress(done, total)`` of the images in a project; it may raise `LoadCancelled`.
Progress = Callable[[int, int], None]


class LoadCancelled(Exception):
    """Raised by a ``progress`` callback to stop loading a project (the user pressed Cancel)."""


COLOUR_TYPE = {1: 0, 3: 2, 4: 6}  # channels → PNG colour type (gray, RGB, RGBA)
CHANNELS = {v: k for k, v in COLOUR_TYPE.items()}


def safe_member_name(name: str) -> bool:
    """Relative, forward-slash, no ``..``/empty parts, no drive letter, no control characters."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\x00" in name:
        return False
    if len(name) > 1 and name[1] == ":":
        return False
    parts = name.rstrip("/").split("/")
    return all(p not in ("", ".", "..") for p in parts) and not any(ord(ch) < 32 for ch in name)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


class Archive:
    """Read-only, in-memory access to the members of a project zip, with every cap enforced."""

    def __init__(self, zf: zipfile.ZipFile, name: str, progress: Progress | None = None):
        self.zf = zf
        self.name = name
        self.read_total = 0
        self.progress = progress  # called with (images decoded, images named) after each image
        self.images_total = self.images_done = 0
        seen: set[str] = set()
        for info in zf.infolist():
            if not safe_member_name(info.filename):
                raise ProjectError(
                    f"{name} contains an unsafe entry {info.filename[:80]!r} (absolute path or '..'): "
                    "it was not made by Inpaint Studio and is not opened."
                )
            if info.flag_bits & 0x1:
                raise ProjectError(f"{name} contains an encrypted entry {info.filename[:80]!r}: projects are never encrypted.")
            if _is_symlink(info):
                raise ProjectError(f"{name} contains a symbolic link {info.filename[:80]!r}: it is not opened.")
            if info.filename in seen:
                raise ProjectError(f"{name} contains {info.filename[:80]!r} twice: the file is damaged.")
            seen.add(info.filename)
        self.names = seen

    def read(self, member: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
        if not isinstance(member, str) or not safe_member_name(member):
            raise ProjectError(f"{self.name} refers to an unsafe file name {str(member)[:80]!r}: the file is damaged.")
        try:
            info = self.zf.getinfo(member)
        except KeyError:
            raise ProjectError(f"{self.name} is incomplete: {member} is missing.") from None
        if info.file_size > limit:
            raise ProjectError(f"{self.name}: {member} is too large ({info.file_size} bytes); the file is damaged or hostile.")
        if info.file_size > 1024 * 1024 and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise ProjectError(f"{self.name}: {member} is compressed suspiciously well (a zip bomb?); not opened.")
        self.read_total += info.file_size
        if self.read_total > MAX_TOTAL_BYTES:
            raise ProjectError(f"{self.name} is too large to open (more than {MAX_TOTAL_BYTES >> 30} GiB uncompressed).")
        with self.zf.open(info) as fh:
            data = fh.read(limit + 1)  # zipfile stops at the declared size and checks the CRC
        if len(data) > limit:
            raise ProjectError(f"{self.name}: {member} is larger than it claims; the file is damaged.")
        return data


def decode_png(archive: Archive, member: str, layout: dict[str, Any], what: str) -> tuple[np.ndarray, bytes | None]:
    """Decode a member whose header must match ``layout`` (checked before any pixel is decoded)."""
    data = archive.read(member)
    archive.images_done += 1
    if archive.progress is not None:
        archive.progress(archive.images_done, max(archive.images_total, archive.images_done))
    try:
        width, height, depth, colour, icc = png_header(data)
    except (ValueError, struct.error, zlib.error):
        raise ProjectError(f"{archive.name}: the {what} ({member}) is not a valid PNG; the file is damaged.") from None
    want_depth = 16 if layout["dtype"] == "uint16" else 8
    if (width, height) != (layout["width"], layout["height"]) or depth != want_depth or colour != COLOUR_TYPE[layout["channels"]]:
        raise ProjectError(
            f"{archive.name}: the {what} is {width}×{height} ({depth}-bit, type {colour}) but the project says "
            f"{layout['width']}×{layout['height']} ({want_depth}-bit, {layout['channels']} channels); the file is damaged."
        )
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        arr = None
    except MemoryError:
        raise ProjectError(f"{archive.name} is too large to fit in memory; close other programs and try again.") from None
    expected_shape = (height, width) if layout["channels"] == 1 else (height, width, layout["channels"])
    if arr is None or arr.shape != expected_shape or arr.dtype.name != layout["dtype"]:
        raise ProjectError(f"{archive.name}: the {what} ({member}) cannot be decoded; the file is damaged.")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(arr), icc


def parse_manifest(archive: Archive) -> dict[str, Any]:
    if "manifest.json" not in archive.names:
        raise ProjectError(f"{archive.name} is not an Inpaint Studio project (it has no manifest.json).")
    raw = archive.read("manifest.json", MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProjectError(f"{archive.name}: manifest.json is not valid JSON; the file is damaged.") from None
    if not isinstance(manifest, dict):
        raise ProjectError(f"{archive.name}: manifest.json is not a JSON object; the file is damaged.")
    return manifest




def open_zip(path: Path, data: bytes | None = None) -> zipfile.ZipFile:
    name = path.name
    try:
        if data is None and not stat.S_ISREG(os.stat(path).st_mode) and not path.is_dir():
            # /dev/zero or a FIFO: zipfile would read forever or block waiting for a writer
            raise ProjectError(f"{name} is not a regular file (a device, pipe or socket); choose a project file.")
        return zipfile.ZipFile(io.BytesIO(data) if data is not None else path, "r")
    except ProjectError:
        raise
    except FileNotFoundError:
        raise ProjectError(f"{name}: file not found ({path}).") from None
    except IsADirectoryError:
        raise ProjectError(f"{name} is a folder, not a project file.") from None
    except PermissionError:
        raise ProjectError(f"{name}: permission denied; make the file readable.") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, struct.error):
        raise ProjectError(
            f"{name} is not an Inpaint Studio project or is damaged (not a readable zip file); "
            "try the recovery copy or a backup."
        ) from None
    except OSError as exc:
        raise ProjectError(f"{name}: cannot be read ({exc.strerror or exc}).") from None
