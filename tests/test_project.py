"""Project files: round trips, older versions, hostile zips, atomic writes."""

from __future__ import annotations

import ast
import errno
import inspect
import io
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from reliability_fixtures import assert_states_equal, make_state, manifest_of, rewrite, v1_project, zip_bytes

import app.core.atomic
import app.storage.project as project
import app.storage.project_archive as project_archive
import app.storage.project_format as project_format
import app.storage.project_manifest as project_manifest
from app.storage.project import (
    FORMAT_VERSION,
    PngCache,
    ProjectError,
    is_project_file,
    load_project,
    load_project_bytes,
    project_bytes,
    project_info,
    save_project,
)


@pytest.mark.parametrize(
    "channels,dtype", [(1, np.uint8), (3, np.uint8), (4, np.uint8), (1, np.uint16), (3, np.uint16), (4, np.uint16)]
)
def test_round_trip_keeps_every_pixel_layout(tmp_path, channels, dtype):
    state = make_state(channels=channels, dtype=dtype, generations=2)
    path = save_project(tmp_path / "work.inpaint", state)
    loaded = load_project(path)
    assert_states_equal(state, loaded)
    assert loaded.current.dtype == dtype and loaded.generations[1].applied is None


def test_manifest_records_versions_params_and_generation_details(tmp_path):
    state = make_state()
    data = project_bytes(state)
    m = manifest_of(data)
    assert m["format"] == "inpaint-studio-project" and m["format_version"] == FORMAT_VERSION
    assert m["app_version"] and m["params"]["prompt"] == "restore the sky"
    g = m["generations"][0]
    assert g["seeds"] == [100, 101] and g["regions"] == [[3, 2, 9, 8]] and g["backend"] == "builtin:telea"
    assert g["elapsed_s"] == 1.25 and g["applied"] == 0 and len(g["candidates"]) == 2
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        # the PNGs carry the ICC profile themselves, so extracted files show the right colours
        assert b"iCCP" in zf.read("current.png")[:200] and b"iCCP" in zf.read(g["candidates"][0])[:200]
    assert {"manifest.json", "original.png", "current.png", "mask.png", "thumbnail.png"} <= names
    assert not any(n.endswith((".pkl", ".pickle", ".npy")) for n in names)


def test_project_code_never_unpickles_or_extracts():
    """Checked on the syntax tree of every project module: no unpickling module is imported,
    nothing is extracted or eval'd."""
    modules = (project, project_archive, project_format, project_manifest)
    tree = ast.Module(body=[node for m in modules for node in ast.parse(inspect.getsource(m)).body], type_ignores=[])
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"pickle", "marshal", "shelve", "dill", "joblib", "torch", "PySide6", "tarfile"}
    called = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "") for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not called & {"extract", "extractall", "load", "loads_pickle", "eval", "exec", "__import__"} - {"loads"}
    assert "json" in imported and "zipfile" in imported


def test_project_info_reads_summary_without_pixels(tmp_path):
    path = save_project(tmp_path / "a.inpaint", make_state(h=20, w=30, generations=3))
    info = project_info(path)
    assert (info.width, info.height, info.generations) == (30, 20, 3)
    assert info.thumbnail_png.startswith(b"\x89PNG") and info.source_path == "/photos/old.tif"
    assert is_project_file(path) and not is_project_file(tmp_path / "missing.png")


def test_a_thumbnail_claiming_a_huge_image_is_not_handed_to_the_dialog(tmp_path):
    """The recovery dialog decodes the thumbnail on the GUI thread: a few KB may claim 16384²."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16384, 16384, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 10_000)) + chunk(b"IEND", b""))
    data = rewrite(project_bytes(make_state(h=20, w=30)), extra={"thumbnail.png": bomb})
    (tmp_path / "b.inpaint").write_bytes(data)
    info = project_info(tmp_path / "b.inpaint")
    assert info.thumbnail_png is None and (info.width, info.height) == (30, 20)


def test_png_cache_reuses_unchanged_arrays_and_notices_edits(tmp_path):
    state = make_state()
    cache = PngCache()
    save_project(tmp_path / "a.inpaint", state, cache=cache)
    hits = cache.hits
    save_project(tmp_path / "a.inpaint", state, cache=cache)
    assert cache.hits == hits + 1 + 2  # original + both candidates were not encoded again
    state.generations[0].candidates[0][:] = 0  # edited in place: must be re-encoded
    save_project(tmp_path / "a.inpaint", state, cache=cache)
    assert np.array_equal(load_project(tmp_path / "a.inpaint").generations[0].candidates[0], state.generations[0].candidates[0])


# -- older versions -------------------------------------------------------------------------------
def test_version_1_project_opens_through_the_migration(tmp_path):
    rng = np.random.default_rng(3)
    current = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    original = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    mask = np.zeros((16, 20), np.uint8)
    mask[4:8, 4:8] = 255
    path = tmp_path / "old.inpaint"
    path.write_bytes(v1_project(current, mask, original))
    state = load_project(path)
    assert np.array_equal(state.current, current) and np.array_equal(state.original, original)
    assert np.array_equal(state.mask, mask)
    assert state.params.prompt == "old file" and state.params.steps == 20  # unknown key "sampler" ignored
    (gen,) = state.generations
    assert gen.params.prompt == "old gen" and gen.seeds == [3] and gen.applied == 0 and gen.regions == []
    # saving it again writes the current version, which reads back identically
    again = load_project(save_project(tmp_path / "new.inpaint", state))
    assert_states_equal(state, again)
    assert manifest_of((tmp_path / "new.inpaint").read_bytes())["format_version"] == FORMAT_VERSION


def test_version_1_without_original_uses_current_and_keeps_16_bit():
    current = (np.arange(12 * 10 * 4, dtype=np.uint16).reshape(12, 10, 4) * 97).astype(np.uint16)
    state = load_project_bytes(v1_project(current, np.zeros((12, 10), np.uint8)))
    assert state.original.dtype == np.uint16 and np.array_equal(state.original, current)


def test_newer_version_is_refused_with_advice():
    data = project_bytes(make_state())
    m = manifest_of(data)
    m["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ProjectError, match="newer Inpaint Studio"):
        load_project_bytes(rewrite(data, manifest=m))


# -- validation ------------------------------------------------------------------------------------
def _bad(data_manifest_change, match):
    data = project_bytes(make_state())
    m = manifest_of(data)
    data_manifest_change(m)
    with pytest.raises(ProjectError, match=match):
        load_project_bytes(rewrite(data, manifest=m))


def test_bad_project_params_name_the_field():
    _bad(lambda m: m["params"].update(steps=500), r"steps = 500.*1 to 150")
    _bad(lambda m: m["generations"][0]["params"].update(guidance="loud"), r"guidance")
    _bad(lambda m: m["params"].update(seed=-5), r"seed")


def test_inconsistent_sizes_are_refused():
    _bad(lambda m: m["image"].update(width=33), r"is 32×24.*project says 33×24")
    _bad(lambda m: m["image"].update(channels=4), r"damaged")
    _bad(lambda m: m["image"].update(dtype="float64"), r"unsupported pixel layout")
    _bad(lambda m: m["image"].update(width=-1), r"image width")


def test_bad_records_are_refused():
    _bad(lambda m: m["generations"][0].update(applied=5), r"applied")
    _bad(lambda m: m["generations"][0].update(seeds=["x"]), r"seed")
    _bad(lambda m: m["generations"][0].update(regions=[[1, 2]]), r"region")
    _bad(lambda m: m["generations"][0].update(candidates=["nope.png"]), r"nope.png is missing")
    _bad(lambda m: m.update(generations="many"), r"history")


def test_unknown_members_and_keys_are_ignored():
    state = make_state()
    data = project_bytes(state)
    m = manifest_of(data)
    m["future_feature"] = {"x": 1}
    loaded = load_project_bytes(rewrite(data, manifest=m, extra={"notes/readme.txt": b"hello", "layers/0.png": b"junk"}))
    assert_states_equal(state, loaded)


def test_not_a_zip_and_missing_manifest():
    with pytest.raises(ProjectError, match="not an Inpaint Studio project or is damaged"):
        load_project_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    with pytest.raises(ProjectError, match="no manifest.json"):
        load_project_bytes(zip_bytes({"current.png": b"x"}))
    with pytest.raises(ProjectError, match="missing"):
        load_project_bytes(rewrite(project_bytes(make_state()), drop=("mask.png",)))


# -- hostile archives -----------------------------------------------------------------------------
@pytest.mark.parametrize("evil", ["../evil.png", "/etc/evil.png", "a/../../evil.png", "C:/evil.png", "..\\evil.png"])
def test_traversal_names_are_refused_and_nothing_is_written(tmp_path, evil):
    data = rewrite(project_bytes(make_state()), extra={evil: b"pwned"})
    before = sorted(p.relative_to(tmp_path.parent) for p in tmp_path.parent.rglob("*"))
    target = tmp_path / "sub" / "p.inpaint"
    target.parent.mkdir()
    target.write_bytes(data)
    with pytest.raises(ProjectError, match="unsafe entry"):
        load_project(target)
    after = sorted(p.relative_to(tmp_path.parent) for p in tmp_path.parent.rglob("*"))
    assert set(after) - set(before) == {Path(tmp_path.name) / "sub", Path(tmp_path.name) / "sub" / "p.inpaint"}
    assert not (tmp_path / "evil.png").exists() and not (tmp_path.parent / "evil.png").exists()


def test_manifest_pointing_outside_is_refused():
    _bad(lambda m: m["files"].update(current="../../current.png"), r"unsafe file name")


def test_symlink_member_is_refused():
    data = project_bytes(make_state())
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("link.png")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ProjectError, match="symbolic link"):
        load_project_bytes(buf.getvalue())


def test_zip_bomb_member_is_refused_before_decompressing():
    bomb = zip_bytes({"manifest.json": b" " * (20 * 1024 * 1024)}, compression=zipfile.ZIP_DEFLATED)
    assert len(bomb) < 100_000
    with pytest.raises(ProjectError, match="zip bomb"):
        load_project_bytes(bomb)


def test_total_uncompressed_size_is_capped(monkeypatch):
    data = project_bytes(make_state())
    monkeypatch.setattr(project_archive, "MAX_TOTAL_BYTES", 3000)
    with pytest.raises(ProjectError, match="too large to open"):
        load_project_bytes(data)


def test_decompression_bomb_dimensions_are_refused_before_decoding(monkeypatch):
    _bad(lambda m: m["image"].update(width=100000, height=100000), r"larger than the 268 MP limit")
    # one small PNG referenced 6000 times would decode to 6000 images: refused up front
    data = project_bytes(make_state())
    m = manifest_of(data)
    m["generations"][0]["candidates"] = ["current.png"] * 60
    m["generations"] = m["generations"] * 100
    with pytest.raises(ProjectError, match="more than 4096 images"):
        load_project_bytes(rewrite(data, manifest=m))


def test_an_image_named_twice_is_refused_before_decoding():
    """640,000 references to one tiny PNG took 112 s and 1.6 GB to load; two are already refused."""
    data = project_bytes(make_state())
    m = manifest_of(data)
    m["generations"][0]["candidates"] = [m["files"]["current"]]
    with pytest.raises(ProjectError, match="same image more than once"):
        load_project_bytes(rewrite(data, manifest=m))


def test_decoded_memory_is_capped(monkeypatch):
    monkeypatch.setattr(project, "MAX_DECODED_BYTES", 5000)
    with pytest.raises(ProjectError, match="GiB of memory"):
        load_project_bytes(project_bytes(make_state()))


def test_a_project_needing_more_than_the_free_memory_is_refused_before_decoding(monkeypatch):
    """Issue 32: an 8.6 MB project inflating to 4 × 16384² 16-bit RGBA took 52 s and 10.5 GB."""
    from app.core import decode_budget, imageio

    data = project_bytes(make_state())
    monkeypatch.setattr(decode_budget, "available_memory", lambda: 1000)
    monkeypatch.setattr(imageio.cv2, "imdecode", lambda *a: pytest.fail("decoded before the memory check"))
    with pytest.raises(ProjectError, match="only 0.0 GiB is free"):
        load_project_bytes(data)


def test_duplicate_members_are_refused():
    data = project_bytes(make_state())
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf, pytest.warns(UserWarning):
        zf.writestr("current.png", b"other")
    with pytest.raises(ProjectError, match="twice"):
        load_project_bytes(buf.getvalue())


# -- atomic writes -------------------------------------------------------------------------------
def test_full_disk_keeps_the_previous_file_and_removes_the_temp(tmp_path, monkeypatch):
    path = tmp_path / "work.inpaint"
    first = make_state(seed=1)
    save_project(path, first)
    before = path.read_bytes()

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(app.core.atomic.os, "fsync", full)
    with pytest.raises(ProjectError, match="disk is full.*previous file.*unchanged"):
        save_project(path, make_state(seed=2))
    monkeypatch.setattr(app.core.atomic.os, "fsync", real_fsync)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work.inpaint"]
    assert_states_equal(first, load_project(path))


def test_write_failure_midway_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "work.inpaint"
    save_project(path, make_state(seed=1))
    before = path.read_bytes()
    calls = {"n": 0}
    real = zipfile.ZipFile.writestr

    def failing(self, name, data, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, name, data, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    with pytest.raises(ProjectError, match="disk is full"):
        save_project(path, make_state(seed=2))
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_unwritable_destination_says_so(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    missing = tmp_path / "does-not-exist" / "p.inpaint"
    with pytest.raises(ProjectError, match="folder does not exist"):
        save_project(missing, make_state())
    # a destination that is a folder cannot be replaced by a file
    with pytest.raises(ProjectError, match="Could not save"):
        save_project(folder, make_state())
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_permission_denied_says_so(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(app.core.atomic.tempfile, "mkstemp", denied)
    with pytest.raises(ProjectError, match="permission denied"):
        save_project(tmp_path / "p.inpaint", make_state())
    assert list(tmp_path.iterdir()) == []


# -- regressions found by bench/fuzz_loaders.py ---------------------------------------------------
def test_png_claiming_a_huge_chunk_is_refused_at_once():
    """A 200-byte PNG whose IDAT claims 2.9 GB made OpenCV allocate gigabytes for seconds."""
    import struct
    import time

    data = project_bytes(make_state())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        png = bytearray(zf.read("current.png"))
    pos = 8
    while png[pos + 4 : pos + 8] != b"IDAT":
        pos += 12 + struct.unpack(">I", png[pos : pos + 4])[0]
    png[pos : pos + 4] = struct.pack(">I", 0xAE000000)
    t0 = time.perf_counter()
    with pytest.raises(ProjectError, match="current image .* is not a valid PNG"):
        load_project_bytes(rewrite(data, extra={"current.png": bytes(png)}))
    assert time.perf_counter() - t0 < 1.0


def test_encrypted_member_and_giant_numbers_are_project_errors():
    data = project_bytes(make_state())
    raw = bytearray(data)
    header = raw.find(b"PK\x03\x04")
    raw[header + 6] |= 1  # "encrypted" flag in the local header …
    central = raw.find(b"PK\x01\x02")
    raw[central + 8] |= 1  # … and in the central directory
    with pytest.raises(ProjectError, match="encrypted"):
        load_project_bytes(bytes(raw))
    _bad(lambda m: m["generations"][0].update(elapsed_s=10**400), r"time")


def test_core_modules_import_no_qt_and_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, app.storage.project, app.storage.autosave, app.core.atomic; "
        "bad = [m for m in ('PySide6', 'torch', 'diffusers') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "[]"


def test_only_regular_files_are_opened_as_projects(tmp_path):
    """/dev/zero or a FIFO: zipfile would read forever or wait for a writer."""
    fifo = tmp_path / "pipe.inpaint"
    os.mkfifo(fifo)
    for path in ("/dev/zero", fifo):
        with pytest.raises(ProjectError, match="not a regular file"):
            load_project(path)
