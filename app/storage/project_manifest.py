"""The manifest of a project file (``manifest.json``), both ways: what `save_project` writes for
each field and how `load_project` checks that field when it comes back, side by side, so a field
is added or bounded in one place.

On the way in every value is untrusted: numbers must be whole (or finite) and fit the image,
parameters go through `GenerationParams.from_dict`, the images a manifest names are counted and
checked for repeats before any is read, and every failure is a one-line `ProjectError`. The zip
itself is read through `app.storage.project_archive`; older manifests are first brought up to date
by `app.storage.project_format.migrate_manifest`.
"""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from app import __version__
from app.core.geometry import Bounds
from app.core.imageio import MAX_PIXELS, png_header
from app.core.params import SEED_MAX, GenerationParams, ParamError
from app.core.records import GenerationRecord
from app.storage.project_archive import CHANNELS, Archive, decode_png
from app.storage.project_format import FORMAT_TAG, FORMAT_VERSION, ProjectError

if TYPE_CHECKING:
    from app.storage.project import ProjectState

#: Limits for hostile files. A real project never comes near them; tests lower them.
MAX_GENERATIONS = 10000
MAX_CANDIDATES = 64
#: Images one project may hold in all. Each is its own member: our writer never names a member
#: twice, and a file that does (640,000 references to one tiny PNG took 112 s and 1.6 GB) is refused.
MAX_IMAGES = 4096
#: Longest side of any image in a project (PNG allows 2³¹; no editor canvas comes near this).
MAX_SIDE = 65535


# ============================================================================================
# writing
# ============================================================================================
def _layout(arr: np.ndarray) -> dict[str, Any]:
    return {
        "width": int(arr.shape[1]),
        "height": int(arr.shape[0]),
        "channels": 1 if arr.ndim == 2 else int(arr.shape[2]),
        "dtype": arr.dtype.name,
    }


def _finite(value: float, default: float = 0.0) -> float:
    value = float(value)
    return value if math.isfinite(value) else default


def record_json(record: GenerationRecord, names: list[str]) -> dict[str, Any]:
    """One generation record; ``names`` are the members holding its candidates."""
    out = {
        "id": int(record.id),
        "params": record.params.to_dict(),
        "seeds": [int(s) for s in record.seeds],
        "regions": [[int(b.x), int(b.y), int(b.width), int(b.height)] for b in record.regions],
        "backend": str(record.backend),
        "elapsed_s": _finite(record.elapsed_s),
        "created": _finite(record.created, time.time()),
        "applied": None if record.applied is None else int(record.applied),
        "candidates": names,
    }
    if record.candidates:  # made before an expansion, or on one since undone: their own size
        out["size"] = [int(record.candidates[0].shape[1]), int(record.candidates[0].shape[0])]
    return out


def manifest_bytes(state: ProjectState, current: np.ndarray, original: np.ndarray, records: list[dict[str, Any]],
                   controls: list[dict[str, Any]] = ()) -> bytes:
    """The manifest of ``state`` (with its pixel arrays already checked) as UTF-8 JSON; ``controls``:
    the control layers' entries (`app.storage.project_controls`)."""
    ox, oy = (int(v) for v in state.original_offset)
    box = state.context_box
    manifest = {
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "app_version": __version__,
        "saved": time.time(),
        "image": _layout(current),
        "files": {"original": "original.png", "current": "current.png", "mask": "mask.png", "thumbnail": "thumbnail.png"},
        "icc_profile": bool(state.icc_profile),
        "source_path": state.source_path,
        "original_offset": [ox, oy],
        "original_size": [int(original.shape[1]), int(original.shape[0])],
        "context_box": None if box is None else [box.x, box.y, box.width, box.height],
        "params": state.params.to_dict(),
        "generations": records,
        "controls": list(controls),
    }
    return json.dumps(manifest, ensure_ascii=False, indent=1, default=str, allow_nan=False).encode("utf-8")


# ============================================================================================
# reading
# ============================================================================================
def _int(value: Any, what: str, lo: int, hi: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ProjectError(f"{name}: {what} = {str(value)[:40]!r} is not valid (must be a whole number from {lo} to {hi}).")
    return value


def _float(value: Any, what: str, name: str) -> float:
    try:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(float(value))
    except OverflowError:  # an integer with hundreds of digits
        ok = False
    if not ok:
        raise ProjectError(f"{name}: {what} = {str(value)[:40]!r} is not a number; the file is damaged.")
    return float(value)


def read_params(data: Any, where: str, name: str) -> GenerationParams:
    try:
        return GenerationParams.from_dict(data)
    except ParamError as exc:
        raise ProjectError(f"{name}: {where} parameter {exc.field} = {repr(exc.value)[:60]} is not valid: {exc.allowed}.") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProjectError(f"{name}: {where} parameters are not valid ({str(exc)[:80]}).") from None


def read_layout(manifest: dict[str, Any], archive: Archive, current_member: str) -> dict[str, Any]:
    """The image's width, height, channels and dtype (older versions: channels and dtype from the
    current image's PNG header), checked against the pixel limit."""
    layout = manifest.get("image")
    if not isinstance(layout, dict):
        raise ProjectError(f"{archive.name}: the image description is missing; the file is damaged.")
    name = archive.name
    width = _int(layout.get("width"), "image width", 1, MAX_PIXELS, name)
    height = _int(layout.get("height"), "image height", 1, MAX_PIXELS, name)
    if width * height > MAX_PIXELS:
        raise ProjectError(f"{name}: the image is {width}×{height}, larger than the {MAX_PIXELS // 10**6} MP limit; not opened.")
    channels, dtype = layout.get("channels"), layout.get("dtype")
    if channels is None or dtype is None:  # older versions: take them from the PNG header
        try:
            _, _, depth, colour, _ = png_header(archive.read(current_member))
        except (ValueError, struct.error, zlib.error):
            raise ProjectError(f"{name}: the current image is not a valid PNG; the file is damaged.") from None
        if colour not in CHANNELS or depth not in (8, 16):
            raise ProjectError(f"{name}: the current image uses an unsupported PNG layout (type {colour}, {depth}-bit).")
        channels, dtype = CHANNELS[colour], "uint16" if depth == 16 else "uint8"
    if channels not in (1, 3, 4) or isinstance(channels, bool) or dtype not in ("uint8", "uint16"):
        raise ProjectError(f"{name}: unsupported pixel layout ({str(channels)[:10]} channels, {str(dtype)[:10]}).")
    return {"width": width, "height": height, "channels": channels, "dtype": dtype}


def read_member(files: dict[str, Any], key: str, name: str, required: bool = True) -> str | None:
    """The member name the manifest gives for image ``key`` (current, original, mask)."""
    member = files.get(key)
    if member is None and not required:
        return None
    if not isinstance(member, str):
        raise ProjectError(f"{name}: the {key} image is not listed; the file is damaged.")
    return member


def read_generations(manifest: dict[str, Any], name: str) -> list:
    """The raw generation records: a list of at most `MAX_GENERATIONS` (each checked by `read_record`)."""
    raw_gens = manifest.get("generations", [])
    if not isinstance(raw_gens, list) or len(raw_gens) > MAX_GENERATIONS:
        raise ProjectError(f"{name}: the generation history is not valid; the file is damaged.")
    return raw_gens


def referenced_members(files: dict, raw_gens: list, name: str, raw_controls: list = ()) -> list:
    """Every image member the manifest names (control layers' too), checked before any is
    decoded: at most `MAX_IMAGES`, and none named twice."""
    members = [files.get(k) for k in ("current", "original", "mask") if files.get(k) is not None]
    members += [c.get("image") for c in raw_controls]
    for g in raw_gens:
        if isinstance(g, dict) and isinstance(g.get("candidates"), list):
            members += g["candidates"][: MAX_CANDIDATES + 1]
        if len(members) > MAX_IMAGES:
            raise ProjectError(f"{name} names more than {MAX_IMAGES} images; it is not a project Inpaint Studio wrote. Not opened.")
    hashable = [m for m in members if isinstance(m, str)]
    if len(set(hashable)) != len(hashable):
        raise ProjectError(f"{name} names the same image more than once; the file is damaged or crafted. Not opened.")
    return members


def _sized(layout: dict[str, Any], raw: Any, what: str, name: str) -> dict[str, Any]:
    """``layout`` with the [w, h] of ``raw`` (None: unchanged); never larger than the image, so the
    memory estimate made from the image size before decoding stays an upper bound."""
    if raw is None:
        return layout
    if not isinstance(raw, list) or len(raw) != 2:
        raise ProjectError(f"{name}: the {what} size {str(raw)[:40]!r} is not [width, height]; the file is damaged.")
    w = _int(raw[0], f"{what} width", 1, layout["width"], name)
    return {**layout, "width": w, "height": _int(raw[1], f"{what} height", 1, layout["height"], name)}


def _candidate_layout(layout: dict[str, Any], raw: Any, what: str, name: str) -> dict[str, Any]:
    """``layout`` with a generation's own candidate [w, h]: smaller than the image (made before an
    expansion) or larger (made on an expansion since undone), within the one pixel limit."""
    if raw is None:
        return layout
    if not isinstance(raw, list) or len(raw) != 2:
        raise ProjectError(f"{name}: the {what} size {str(raw)[:40]!r} is not [width, height]; the file is damaged.")
    w = _int(raw[0], f"{what} width", 1, MAX_SIDE, name)
    h = _int(raw[1], f"{what} height", 1, MAX_SIDE, name)
    if w * h > MAX_PIXELS:
        raise ProjectError(f"{name}: the {what} size {w}×{h} is over the {MAX_PIXELS:,} pixel limit; the file is damaged.")
    return {**layout, "width": w, "height": h}


def decoded_bytes(layout: dict[str, Any], raw_gens: list, name: str) -> int:
    """Memory all the project's images need once decoded, from the manifest alone (an upper
    bound: the original and the mask are counted at the image's size and channels)."""
    itemsize = 2 if layout["dtype"] == "uint16" else 1

    def size(lay: dict[str, Any]) -> int:
        return lay["width"] * lay["height"] * lay["channels"] * itemsize

    total = 3 * size(layout)
    for index, raw in enumerate(raw_gens):
        if isinstance(raw, dict) and isinstance(raw.get("candidates"), list):
            n = min(len(raw["candidates"]), MAX_CANDIDATES + 1)
            total += n * size(_candidate_layout(layout, raw.get("size"), f"generation {index + 1} candidate", name))
    return total


def read_original_place(manifest: dict[str, Any], layout: dict[str, Any], name: str) -> tuple[tuple[int, int], dict[str, Any]]:
    """Where the original sits in the (possibly expanded) current image, and its layout."""
    original_layout = _sized(layout, manifest.get("original_size"), "original image", name)
    raw = manifest.get("original_offset", [0, 0])
    if not isinstance(raw, list) or len(raw) != 2:
        raise ProjectError(f"{name}: the original offset {str(raw)[:40]!r} is not [x, y]; the file is damaged.")
    x = _int(raw[0], "original offset x", 0, layout["width"] - original_layout["width"], name)
    y = _int(raw[1], "original offset y", 0, layout["height"] - original_layout["height"], name)
    return (x, y), original_layout


def read_context_box(raw: Any, layout: dict[str, Any], name: str) -> Bounds | None:
    """The saved context box, checked against the image; older files have none."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 4:
        raise ProjectError(f"{name}: the context box {str(raw)[:40]!r} is not [x, y, width, height]; the file is damaged.")
    w, h = layout["width"], layout["height"]
    x, y = _int(raw[0], "context box x", 0, w - 1, name), _int(raw[1], "context box y", 0, h - 1, name)
    return Bounds(x, y, _int(raw[2], "context box width", 1, w - x, name), _int(raw[3], "context box height", 1, h - y, name))


def read_record(archive: Archive, raw: Any, index: int, layout: dict[str, Any]) -> GenerationRecord:
    """Generation ``index`` with its candidates decoded (each checked against its layout first)."""
    name = archive.name
    where = f"generation {index + 1}"
    if not isinstance(raw, dict):
        raise ProjectError(f"{name}: {where} is not valid; the file is damaged.")
    params = read_params(raw.get("params", {}), f"{where}'s", name)
    seeds = raw.get("seeds", [])
    if not isinstance(seeds, list):
        raise ProjectError(f"{name}: {where} seeds are not a list.")
    seeds = [_int(s, f"{where} seed", 0, SEED_MAX, name) for s in seeds]
    regions = raw.get("regions", [])
    if not isinstance(regions, list):
        raise ProjectError(f"{name}: {where} regions are not a list.")
    bounds = []
    for r in regions:
        if not isinstance(r, list) or len(r) != 4:
            raise ProjectError(f"{name}: a region of {where} is not [x, y, width, height].")
        x, y, w, h = (_int(v, f"{where} region", -MAX_PIXELS, MAX_PIXELS, name) for v in r)
        bounds.append(Bounds(x, y, w, h))
    members = raw.get("candidates", [])
    if not isinstance(members, list) or len(members) > MAX_CANDIDATES:
        raise ProjectError(f"{name}: the candidates of {where} are not valid.")
    cand_layout = _candidate_layout(layout, raw.get("size"), f"{where} candidate", name)
    candidates = [decode_png(archive, m, cand_layout, f"candidate {k + 1} of {where}")[0] for k, m in enumerate(members)]
    applied = raw.get("applied")
    if applied is not None:  # an autosave that had to leave the candidates out keeps the index
        applied = _int(applied, f"{where} applied candidate", 0, max(len(candidates), len(seeds), 1) - 1, name)
    backend = raw.get("backend", "")
    kwargs: dict[str, Any] = {
        "params": params,
        "candidates": candidates,
        "seeds": seeds,
        "regions": bounds,
        "backend": backend if isinstance(backend, str) else "",
        "elapsed_s": _float(raw.get("elapsed_s", 0.0), f"{where} time", name),
        "created": _float(raw.get("created", 0.0) or 0.0, f"{where} date", name),
        "applied": applied,
    }
    return GenerationRecord(**kwargs)
