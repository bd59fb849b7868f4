"""Project files (``.inpaint``): a whole session in one versioned zip, written atomically.

Layout (format version 3)::

    manifest.json        format tag + version, app version, image layout, params, context box
                         ([x, y, w, h] or null; absent in older files), generation records,
                         original_offset [x, y] and original_size [w, h] (v3: the canvas may have
                         been expanded since opening; each record's ``size`` is its candidates')
    original.png         pixels as first opened   (8/16 bit, gray/RGB/RGBA kept, ICC embedded)
    current.png          pixels now                (same depth and channels; may be larger)
    mask.png             H×W 8-bit gray, 255 = repaint
    controls/cN.png      control layer N, H×W 8-bit RGB (optional: `app.storage.project_controls`)
    candidates/gN_K.png  every candidate of generation N (same depth and channels as current)
    thumbnail.png        small RGB preview for the recovery dialog (optional; never trusted)

Why this shape: PNG is lossless for every pixel layout the editor holds, a zip of PNGs + JSON can
be inspected with ordinary tools, and nothing in it is ever unpickled or executed.

This module turns a session into that file and back: pixel checks, PNG encoding (cached for
autosave), the atomic write, the memory cap, and decoding the images in order. Its helpers each
own one concern: loading treats the file as hostile, so members are read into memory only (never
extracted, so a ``../`` name cannot write anywhere, and such names are refused outright), sizes are
capped before anything is decompressed (zip bombs) and every PNG header is checked against the
manifest's image layout *before* its pixels are decoded (decompression bombs:
`app.storage.project_archive`); every manifest field is written and checked in
`app.storage.project_manifest` (parameters through `GenerationParams.from_dict`; unknown members
are ignored); older format versions are migrated to the current one step by step
(`app.storage.project_format`). Every failure is a `ProjectError` whose message is one line for
the user. Qt-free and torch-free.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.core import decode_budget, imageio
from app.core.atomic import atomic_write_with, describe_write_error
from app.core.compositing import to_8bit
from app.core.geometry import Bounds
from app.core.params import GenerationParams, ParamError
from app.core.records import GenerationRecord
from app.storage.project_controls import SavedControl, control_members, raw_controls, read_controls
from app.storage.project_archive import Archive, LoadCancelled, Progress, decode_png, open_zip, parse_manifest
from app.storage.project_format import FORMAT_VERSION, PROJECT_SUFFIX, ProjectError, migrate_manifest
from app.storage.project_manifest import (
    decoded_bytes,
    manifest_bytes,
    read_context_box,
    read_generations,
    read_layout,
    read_member,
    read_original_place,
    read_params,
    read_record,
    record_json,
    referenced_members,
)

#: All decoded pixel arrays of one project together (a hostile file's limit; tests lower it).
MAX_DECODED_BYTES = 16 * 1024**3


@dataclass
class ProjectState:
    original: np.ndarray  # pixels as first opened (native dtype/channels)
    current: np.ndarray  # pixels now, results applied
    mask: np.ndarray  # H×W uint8
    params: GenerationParams = field(default_factory=GenerationParams)
    generations: list[GenerationRecord] = field(default_factory=list)
    icc_profile: bytes | None = None
    source_path: str | None = None
    context_box: Bounds | None = None  # the area the model sees; older files have none
    original_offset: tuple[int, int] = (0, 0)  # where `original` sits in `current` (expanded canvas)
    controls: tuple[SavedControl, ...] = ()  # control layers (ControlNet images + settings); older files have none


@dataclass(frozen=True)
class ProjectInfo:
    """What a project holds, read from its manifest alone (cheap: no pixels are decoded)."""

    width: int
    height: int
    generations: int
    format_version: int
    app_version: str
    saved: float | None
    source_path: str | None
    thumbnail_png: bytes | None


# ============================================================================================
# saving
# ============================================================================================
class PngCache:
    """Encoded PNGs of arrays that do not change (the original, candidates), by identity.

    Autosave writes the whole project every time; re-encoding an unchanged 24 MP original and a
    dozen candidates each time would cost seconds. An entry keeps its array alive so its id stays
    unique, and carries a sampled checksum so an array edited in place is re-encoded anyway.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[np.ndarray, tuple, bytes]] = {}
        self.hits = 0

    @staticmethod
    def _key(arr: np.ndarray) -> tuple:
        flat = arr.reshape(-1)
        step = max(1, flat.size // 65536)
        return arr.shape, arr.dtype.str, zlib.crc32(np.ascontiguousarray(flat[::step]).tobytes())

    def get(self, arr: np.ndarray, encode) -> bytes:
        key = self._key(arr)
        entry = self._entries.get(id(arr))
        if entry is not None and entry[0] is arr and entry[1] == key:
            self.hits += 1
            return entry[2]
        data = encode(arr)
        self._entries[id(arr)] = (arr, key, data)
        return data

    def retain(self, arrays: list[np.ndarray]) -> None:
        """Forget every entry whose array is not in ``arrays`` (called after each save)."""
        keep = {id(a) for a in arrays}
        self._entries = {k: v for k, v in self._entries.items() if k in keep}


def member_png(arr: np.ndarray, *, icc_profile: bytes | None = None, compress_level: int = 3) -> bytes:
    """Lossless PNG of a project member (gray/RGB/RGBA, 8 or 16 bit, optional ICC) through the
    one PNG writer, `app.core.imageio.encode_png`."""
    arr = _normalise_pixels(arr, "image")
    try:
        return imageio.encode_png(arr, icc_profile=icc_profile, level=compress_level)
    except OSError:
        raise ProjectError("Could not encode the image as PNG.") from None


def _normalise_pixels(arr: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype not in (np.uint8, np.uint16) or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"{what}: unsupported pixel array {arr.shape} {arr.dtype}")
    return arr


#: The painted mask in the thumbnail: the canvas's red at half strength, so the recovery dialog
#: shows the work a restore brings back (a mask is often all of it).
MASK_TINT = np.array([255, 40, 40], np.float32)


def _thumbnail(arr: np.ndarray, mask: np.ndarray | None = None, size: int = 256) -> bytes:
    rgb = to_8bit(arr)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        rgb = rgb[:, :, :3]
    h, w = rgb.shape[:2]
    scale = min(1.0, size / max(h, w))
    dsize = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(np.ascontiguousarray(rgb), dsize, interpolation=cv2.INTER_AREA)
    if mask is not None and mask.any():
        cover = cv2.resize(mask, dsize, interpolation=cv2.INTER_AREA).astype(np.float32)[:, :, None] / 510.0
        small = np.clip(small * (1 - cover) + MASK_TINT * cover + 0.5, 0, 255).astype(np.uint8)
    return member_png(small, compress_level=6)


def save_project(
    path: str | os.PathLike[str],
    state: ProjectState,
    *,
    compress_level: int = 3,
    cache: PngCache | None = None,
    private: bool = False,
) -> Path:
    """Write ``state`` to ``path`` atomically: the old file stays intact if anything fails.
    ``private`` keeps the file 0600 (recovery files); otherwise it follows `app.core.atomic`.

    Raises `ProjectError` with a user-facing message (full disk, no permission, …); the cause
    (the OSError) is chained. ``cache`` lets autosave skip re-encoding unchanged arrays.
    """
    dest = Path(path)
    current, original, mask = _checked_arrays(state)
    _check_params(state, dest)
    icc = state.icc_profile or None

    def enc(arr: np.ndarray, *, cached: bool, with_icc: bool = True) -> bytes:
        encode = lambda a: member_png(a, icc_profile=icc if with_icc else None, compress_level=compress_level)  # noqa: E731
        return cache.get(arr, encode) if (cache is not None and cached) else encode(arr)

    records, members = _candidate_members(state, current)
    controls = control_members(state.controls, current.shape[:2])
    members += [(name, image) for name, image, _ in controls]  # snapshots share an unchanged layer's copy: cached
    manifest = manifest_bytes(state, current, original, records, [entry for _, _, entry in controls])

    def write(fh) -> None:
        with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
            zf.writestr("manifest.json", manifest, compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr("original.png", enc(original, cached=True))
            zf.writestr("current.png", enc(current, cached=False))
            zf.writestr("mask.png", enc(mask, cached=False, with_icc=False))
            zf.writestr("thumbnail.png", _thumbnail(current, mask))
            for name, arr in members:
                zf.writestr(name, enc(arr, cached=True, with_icc=not name.startswith("controls/")))

    try:
        atomic_write_with(dest, write, private=private)
    except OSError as exc:
        raise ProjectError(describe_write_error(exc, dest)) from exc
    if cache is not None:
        cache.retain([original] + [arr for _, arr in members])
    return dest


def _checked_arrays(state: ProjectState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(current, original, mask), normalised, or ValueError: the original must fit inside the
    current image at its offset, and the mask must cover the current image."""
    current = _normalise_pixels(state.current, "current image")
    original = _normalise_pixels(state.original, "original image")
    ox, oy = (int(v) for v in state.original_offset)
    if original.shape[2:] != current.shape[2:] or original.dtype != current.dtype or not Bounds.of_image(
        current.shape[1], current.shape[0]
    ).contains(Bounds(ox, oy, original.shape[1], original.shape[0])):
        raise ValueError(f"original {original.shape} {original.dtype} at {(ox, oy)} does not fit current {current.shape} {current.dtype}")
    mask = np.asarray(state.mask)
    if mask.shape != current.shape[:2] or mask.dtype != np.uint8:
        raise ValueError(f"mask {mask.shape} {mask.dtype} does not match the image {current.shape[:2]}")
    return current, original, mask


def _check_params(state: ProjectState, dest: Path) -> None:
    """Refuse to save parameters that would not load again: a file that would not reopen is
    worse than an error now."""
    try:
        state.params.validate()
        for record in state.generations:
            record.params.validate()
    except ParamError as exc:
        raise ProjectError(f"Cannot save {dest.name}: parameter {exc.field} = {exc.value!r} is not valid ({exc.allowed}).") from None


def _candidate_members(state: ProjectState, current: np.ndarray) -> tuple[list[dict], list[tuple[str, np.ndarray]]]:
    """The generations' manifest records and their candidate images as (member name, pixels)."""
    records = []
    members: list[tuple[str, np.ndarray]] = []
    for g_index, record in enumerate(state.generations):
        names = []
        for c_index, cand in enumerate(record.candidates):
            cand = _normalise_pixels(cand, "candidate")
            # Any size: made before an expansion (smaller) or on an expansion since undone (larger).
            if cand.shape[2:] != current.shape[2:] or cand.dtype != current.dtype or cand.shape[:2] != record.candidates[0].shape[:2]:
                raise ValueError(f"candidate {cand.shape} {cand.dtype} does not match the image {current.shape} or its generation")
            name = f"candidates/g{g_index}_{c_index}.png"
            names.append(name)
            members.append((name, cand))
        records.append(record_json(record, names))
    return records, members


# ============================================================================================
# loading
# ============================================================================================
def load_project(path: str | os.PathLike[str], progress: Progress | None = None) -> ProjectState:
    """Open a project file of this or any older format version; raise `ProjectError` on any problem.
    ``progress`` is called before each image is decoded (for a progress bar and Cancel)."""
    return _load_from(Path(path), None, progress)


def load_project_bytes(data: bytes, name: str = "project.inpaint") -> ProjectState:
    """`load_project` for a file held in memory (fuzzing, drag-and-drop)."""
    return _load_from(Path(name), bytes(data))


def _load_from(p: Path, data: bytes | None, progress: Progress | None = None) -> ProjectState:
    try:
        with open_zip(p, data) as zf:
            return _load(Archive(zf, p.name, progress))
    except (ProjectError, LoadCancelled):
        raise
    except MemoryError:
        raise ProjectError(f"{p.name} is too large to fit in memory; close other programs and try again.") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError, struct.error, ValueError, OSError) as exc:
        detail = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        raise ProjectError(f"{p.name} is damaged ({detail}); try the recovery copy or a backup.") from None
    except Exception as exc:  # last resort: a bad file must never crash the app (fuzzing flags these)
        error = ProjectError(f"{p.name} could not be read ({type(exc).__name__}); the file may be damaged.")
        error.unexpected = True
        raise error from exc


def _load(archive: Archive) -> ProjectState:
    name = archive.name
    manifest = migrate_manifest(parse_manifest(archive), name)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ProjectError(f"{name}: the list of images is missing; the file is damaged.")
    current_member = read_member(files, "current", name)
    layout = read_layout(manifest, archive, current_member)
    params = read_params(manifest.get("params", {}), "the project's", name)
    source = manifest.get("source_path")
    source = source if isinstance(source, str) else None

    raw_gens = read_generations(manifest, name)
    raw_ctrl = raw_controls(manifest, name)
    referenced = referenced_members(files, raw_gens, name, raw_ctrl)
    archive.images_total = len(referenced)
    decoded = decoded_bytes(layout, raw_gens, name) + len(raw_ctrl) * layout["width"] * layout["height"] * 3
    if decoded > MAX_DECODED_BYTES:
        raise ProjectError(
            f"{name} needs {decoded / 2**30:.1f} GiB of memory to open, more than the {MAX_DECODED_BYTES / 2**30:.0f} GiB limit."
        )
    # The same budget as every image (app.core.decode_budget): what decoding needs must fit in the
    # memory free now, plus the decoder's and the editor's copies of one image. An 8.6 MB project
    # inflating to 4 × 16384² × 16-bit RGBA took 52 s and 10.5 GB before.
    itemsize = 2 if layout["dtype"] == "uint16" else 1
    one_image = layout["width"] * layout["height"] * layout["channels"] * itemsize
    need, free = decoded + 2 * one_image, decode_budget.available_memory()
    if need > free:
        raise ProjectError(f"{name} needs about {need / 2**30:.1f} GiB of memory to open, but only {free / 2**30:.1f} GiB "
                           "is free; close other programs and try again.")

    current, icc = decode_png(archive, current_member, layout, "current image")
    original_member = read_member(files, "original", name, required=False)
    original_offset, original_layout = read_original_place(manifest, layout, name)
    original = decode_png(archive, original_member, original_layout, "original image")[0] if original_member else current.copy()
    mask_layout = {"width": layout["width"], "height": layout["height"], "channels": 1, "dtype": "uint8"}
    mask = decode_png(archive, read_member(files, "mask", name), mask_layout, "mask")[0]

    generations = [read_record(archive, raw, index, layout) for index, raw in enumerate(raw_gens)]
    controls = read_controls(archive, raw_ctrl, layout)
    return ProjectState(
        original=original,
        current=current,
        mask=mask,
        params=params,
        generations=generations,
        icc_profile=icc if manifest.get("icc_profile") else None,
        source_path=source,
        context_box=read_context_box(manifest.get("context_box"), layout, name),
        original_offset=original_offset,
        controls=controls,
    )


def project_info(path: str | os.PathLike[str]) -> ProjectInfo:
    """Summary from the manifest and thumbnail only (for the recovery dialog); `ProjectError` if unreadable."""
    p = Path(path)
    try:
        with open_zip(p) as zf:
            archive = Archive(zf, p.name)
            manifest = migrate_manifest(parse_manifest(archive), p.name)
            files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
            layout = read_layout(manifest, archive, read_member(files, "current", p.name))
            thumb = None
            thumb_member = files.get("thumbnail")
            if isinstance(thumb_member, str) and thumb_member in archive.names:
                thumb = _small_png_or_none(archive.read(thumb_member, 4 * 1024 * 1024))
            gens = manifest.get("generations")
            saved = manifest.get("saved")
            return ProjectInfo(
                width=layout["width"],
                height=layout["height"],
                generations=len(gens) if isinstance(gens, list) else 0,
                format_version=FORMAT_VERSION,
                app_version=str(manifest.get("app_version", ""))[:40],
                saved=float(saved) if isinstance(saved, (int, float)) and not isinstance(saved, bool) else None,
                source_path=manifest.get("source_path") if isinstance(manifest.get("source_path"), str) else None,
                thumbnail_png=thumb,
            )
    except ProjectError:
        raise
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, struct.error, ValueError, OSError, MemoryError) as exc:
        raise ProjectError(f"{p.name} is damaged ({type(exc).__name__}).") from None


#: Largest thumbnail the recovery dialog is given to decode (ours are 256 px).
MAX_THUMBNAIL_SIDE = 1024


def _small_png_or_none(data: bytes) -> bytes | None:
    """The thumbnail only if its header says a valid PNG of at most `MAX_THUMBNAIL_SIDE` per side:
    the dialog decodes it on the GUI thread, and 4 MB of PNG can claim gigabytes of pixels."""
    try:
        width, height = imageio.png_header(data)[:2]
    except (ValueError, struct.error, zlib.error):
        return None
    return data if 0 < width <= MAX_THUMBNAIL_SIDE and 0 < height <= MAX_THUMBNAIL_SIDE else None


def is_project_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` looks like a project (by extension or zip signature), for "Open" dispatch."""
    p = Path(path)
    if p.suffix.lower() == PROJECT_SUFFIX:
        return True
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def project_bytes(state: ProjectState, **kwargs: Any) -> bytes:
    """The project file's bytes (tests, fuzzing), written through the same atomic path."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / ("project" + PROJECT_SUFFIX)
        save_project(target, state, **kwargs)
        return target.read_bytes()
