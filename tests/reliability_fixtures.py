"""Builders shared by the reliability tests (projects, images, hand-made zips)."""

from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np
from PIL import ImageCms

from app.core.records import GenerationRecord
from app.core.geometry import Bounds
from app.core.params import GenerationParams
from app.storage.project import ProjectState, member_png


def srgb_icc() -> bytes:
    """A real ICC profile (libpng rejects fake ones), made by LittleCMS: no file needed.

    LittleCMS stamps the creation time into the header, so the date is fixed and the profile ID
    (an MD5 over the header) cleared: two processes must build byte-identical profiles.
    """
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = struct.pack(">6H", 2020, 1, 1, 0, 0, 0)
    data[84:100] = bytes(16)
    return bytes(data)


def random_pixels(rng: np.random.Generator, h: int, w: int, channels: int, dtype=np.uint8) -> np.ndarray:
    hi = 65535 if dtype == np.uint16 else 255
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, hi + 1, shape, dtype=dtype)


def make_state(
    h: int = 24, w: int = 32, channels: int = 3, dtype=np.uint8, *, generations: int = 1, seed: int = 0, icc: bool = True
) -> ProjectState:
    rng = np.random.default_rng(seed)
    original = random_pixels(rng, h, w, channels, dtype)
    current = original.copy()
    current[2:10, 3:12] = random_pixels(rng, 8, 9, channels, dtype)
    mask = np.zeros((h, w), np.uint8)
    mask[2:10, 3:12] = 255
    records = []
    for g in range(generations):
        cands = [random_pixels(rng, h, w, channels, dtype) for _ in range(2)]
        records.append(
            GenerationRecord(
                params=GenerationParams(prompt=f"gen {g}", seed=100 + g, batch_size=2),
                candidates=cands,
                seeds=[100 + g, 101 + g],
                regions=[Bounds(3, 2, 9, 8)],
                backend="builtin:telea",
                elapsed_s=1.25,
                created=1700000000.0 + g,
                applied=0 if g == 0 else None,
            )
        )
    return ProjectState(
        original=original,
        current=current,
        mask=mask,
        params=GenerationParams(prompt="restore the sky", negative_prompt="blurry", steps=30, seed=7),
        generations=records,
        icc_profile=srgb_icc() if icc else None,
        source_path="/photos/old.tif",
    )


def zip_bytes(members: dict[str, bytes], *, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def v1_project(current: np.ndarray, mask: np.ndarray, original: np.ndarray | None = None, params: dict | None = None) -> bytes:
    """A project in format version 1 (the pre-release draft layout), built by hand."""
    h, w = current.shape[:2]
    manifest = {
        "version": 1,
        "width": w,
        "height": h,
        "parameters": params if params is not None else {"prompt": "old file", "steps": 20, "sampler": "ignored"},
        "has_original": original is not None,
        "history": [{"params": {"prompt": "old gen", "seed": 3}, "seeds": [3], "candidates": ["cand0.png"], "applied": 0, "time": 1600000000}],
    }
    members = {
        "manifest.json": json.dumps(manifest).encode(),
        "image.png": member_png(current),
        "mask.png": member_png(mask),
        "cand0.png": member_png(current),
    }
    if original is not None:
        members["original.png"] = member_png(original)
    return zip_bytes(members)


def manifest_of(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("manifest.json"))


def rewrite(data: bytes, *, manifest: dict | None = None, extra: dict[str, bytes] | None = None, drop: tuple = ()) -> bytes:
    """Copy a project zip, replacing the manifest / adding or dropping members."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if info.filename not in drop:
                out[info.filename] = zf.read(info)
    if manifest is not None:
        out["manifest.json"] = json.dumps(manifest).encode()
    out.update(extra or {})
    return zip_bytes(out)


def assert_states_equal(a: ProjectState, b: ProjectState) -> None:
    for name in ("original", "current", "mask"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name
    assert a.params == b.params
    assert a.icc_profile == b.icc_profile
    assert a.source_path == b.source_path
    assert len(a.generations) == len(b.generations)
    for g, h in zip(a.generations, b.generations):
        assert g.params == h.params and g.seeds == h.seeds and g.regions == h.regions
        assert g.backend == h.backend and g.applied == h.applied
        assert g.elapsed_s == h.elapsed_s and g.created == h.created
        assert len(g.candidates) == len(h.candidates)
        for c, d in zip(g.candidates, h.candidates):
            assert c.dtype == d.dtype and np.array_equal(c, d)
