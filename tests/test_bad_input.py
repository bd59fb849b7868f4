"""Every bad input of issue 5 gets a clear message, and nothing the user has is lost."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reliability_fixtures import make_state

import app.core.atomic
import app.core.imageio as imageio
from app.cli import main as cli
from app.editor.document import Document
from app.core.imageio import ImageLoadError, load_image, load_mask, save_image
from app.inference.classical import ClassicalBackend
from app.core.errors import NothingToInpaintFromError
from app.inference.engine import Cancelled, EmptyMaskError, Engine, Job
from app.inference.errors import GpuOutOfMemory, ModelLoadError, PickleRefusedError, UnsupportedModelError
from app.core.maskops import MaskError
from app.core.params import GenerationParams, ParamError
from app.storage.project import ProjectError, load_project, save_project
from app.editor.worker import GenerationWorker
from app.service import GenerationRequest
from app.editor.snapshot import project_state
from worker_recorder import Recorder


def _photo(h: int = 48, w: int = 64) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100 : 100 + h, 150 : 150 + w])


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def files(tmp_path):
    """A good photo, its mask, and the bad files of the issue, all made here."""
    photo = _photo()
    good = tmp_path / "photo.png"
    good.write_bytes(_png_bytes(photo))
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[10:30, 20:40] = 255
    (tmp_path / "mask.png").write_bytes(_png_bytes(mask))
    (tmp_path / "empty_mask.png").write_bytes(_png_bytes(np.zeros_like(mask)))
    (tmp_path / "white_mask.png").write_bytes(_png_bytes(np.full_like(mask, 255)))
    (tmp_path / "small_mask.png").write_bytes(_png_bytes(mask[:20, :20]))
    data = good.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    jpeg = io.BytesIO()
    Image.fromarray(photo).save(jpeg, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 3])
    corrupt = bytearray(data)
    for i in range(60, len(corrupt) - 20, 7):
        corrupt[i] ^= 0x5A
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    (tmp_path / "notes.png").write_text("these are my notes, not a picture\n" * 20)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "bomb.png").write_bytes(_bomb_png(60000, 60000))
    return tmp_path


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb's first step)."""
    data = bytearray(_png_bytes(np.zeros((1, 1), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


# -- images ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,message",
    [
        ("truncated.png", r"truncated|damaged"),
        ("truncated.jpg", r"truncated|damaged"),
        ("corrupt.png", r"damaged|not an image"),
        ("notes.png", r"not an image Inpaint Studio can read"),
        ("empty.png", r"is empty \(0 bytes\)"),
        ("bomb.png", r"too large.*decompression bomb"),
        ("missing.png", r"file not found"),
    ],
)
def test_bad_image_files_give_one_clear_line(files, name, message):
    with pytest.raises(ImageLoadError, match=message) as info:
        load_image(files / name)
    text = str(info.value)
    assert "\n" not in text and name in text and "Traceback" not in text


def test_failed_open_leaves_the_open_document_and_its_autosave_alone(files, tmp_path):
    doc = Document()
    doc.set_image(load_image(files / "photo.png"))
    doc.fill_rect((0, 0, 10, 10))
    before_pixels, before_mask = doc.pixels.copy(), doc.mask.copy()
    project = tmp_path / "work.inpaint"
    save_project(project, project_state(doc, GenerationParams()))
    saved = project.read_bytes()
    for bad in ("truncated.png", "notes.png", "empty.png", "bomb.png"):
        with pytest.raises(ImageLoadError):
            doc.set_image(load_image(files / bad))
    assert np.array_equal(doc.pixels, before_pixels) and np.array_equal(doc.mask, before_mask)
    assert doc.undo_stack.count() == 1 and project.read_bytes() == saved


def test_directory_with_image_extension(tmp_path):
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageLoadError, match="is a folder"):
        load_image(tmp_path / "folder.png")


# -- masks ----------------------------------------------------------------------------------------
def test_mask_of_another_size_is_refused_everywhere(files):
    with pytest.raises(ImageLoadError, match=r"mask is 20×20 but the image is 64×48"):
        load_mask(files / "small_mask.png", (48, 64))
    doc = Document()
    doc.set_image(_photo())
    with pytest.raises(MaskError, match="same size"):
        doc.set_mask(np.zeros((20, 20), np.uint8))
    assert doc.mask.shape == (48, 64) and doc.undo_stack.count() == 0
    with pytest.raises(MaskError, match="same size"):
        Engine(ClassicalBackend()).run(Job(GenerationParams(seed=1), _photo(), np.zeros((20, 20), np.uint8)))


def test_empty_and_all_white_masks_are_explained(files):
    image = _photo()
    with pytest.raises(EmptyMaskError, match="mask is empty"):
        Engine(ClassicalBackend()).run(Job(GenerationParams(seed=1), image, load_mask(files / "empty_mask.png", (48, 64))))
    white = load_mask(files / "white_mask.png", (48, 64))
    assert Engine(ClassicalBackend()).plan(Job(GenerationParams(mask_blur=0), image, white))[2][0].crop.area == 48 * 64
    with pytest.raises(NothingToInpaintFromError, match="Nothing left to inpaint from"):  # not the input, called a result
        Engine(ClassicalBackend()).run(Job(GenerationParams(seed=1, mask_blur=0), image, white))


# -- parameters -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field,value",
    [("steps", 0), ("steps", 151), ("guidance", 31.0), ("guidance", float("nan")), ("strength", 0.0), ("seed", -2),
     ("seed", 2**64), ("batch_size", 9), ("width", 250), ("width", 515), ("mask_blur", 65), ("padding", 300),
     ("mode", "outpaint"), ("masked_content", "noise")],
)
def test_out_of_range_params_name_the_field(field, value):
    with pytest.raises(ParamError) as info:
        GenerationParams(**{field: value}).validate()
    assert info.value.field == field and field in str(info.value)
    with pytest.raises(ParamError) as info:
        GenerationParams.from_dict({field: value})
    assert info.value.field == field


def test_out_of_range_params_in_a_project_file(tmp_path):
    import zipfile

    path = save_project(tmp_path / "p.inpaint", make_state())
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["params"]["guidance"] = 99
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    with pytest.raises(ProjectError, match=r"guidance = 99(\.0)? is not valid: must be from 0 to 30"):
        load_project(path)


def test_out_of_range_params_cannot_be_entered_in_the_ui(qtbot):
    from app.widgets.params_panel import ParamsPanel

    panel = ParamsPanel()
    qtbot.addWidget(panel)
    for box, typed in ((panel.steps, "999"), (panel.batch, "50"), (panel.mask_blur, "500"), (panel.padding, "9999")):
        box.selectAll()
        box.lineEdit().selectAll()
        qtbot.keyClicks(box.lineEdit(), typed)
        box.interpretText()
    params = panel.params()
    assert params.steps <= 150 and params.batch_size <= 8 and params.mask_blur <= 64 and params.padding <= 256
    assert params.validate() is params and "steps" not in panel.validation_message()


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    err = capsys.readouterr().err
    return code, err


def test_cli_bad_inputs_exit_2_with_one_line(files, capsys):
    img, mask, out = str(files / "photo.png"), str(files / "mask.png"), str(files / "out.png")
    cases = [
        (["--steps", "500"], r"--steps"),
        (["--guidance", "-1"], r"--guidance"),
        (["--seed", "-7"], r"--seed"),
        (["--samples", "20"], r"--samples"),
    ]
    for extra, pattern in cases:
        code, err = _cli(capsys, "inpaint", "-i", img, "-m", mask, "-o", out, *extra)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert re.search(pattern, err), err
    for bad_img, pattern in (("truncated.png", "truncated|damaged"), ("notes.png", "not an image"), ("empty.png", "0 bytes"), ("bomb.png", "too large")):
        code, err = _cli(capsys, "inpaint", "-i", str(files / bad_img), "-m", mask, "-o", out)
        assert code == 2 and bad_img in err, err
    code, err = _cli(capsys, "inpaint", "-i", img, "-m", str(files / "small_mask.png"), "-o", out)
    assert code == 2 and "20×20" in err
    code, err = _cli(capsys, "inpaint", "-i", img, "-m", str(files / "empty_mask.png"), "-o", out)
    assert code == 2 and "empty" in err
    code, err = _cli(capsys, "inpaint", "-i", img, "-m", mask, "-o", str(files / "nowhere" / "out.png"))
    assert code == 2 and "does not exist" in err
    assert not (files / "out.png").exists()


def test_cli_full_disk_keeps_the_previous_output(files, capsys, monkeypatch):
    out = files / "out.png"
    out.write_bytes(b"previous result")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imageio.os, "fsync", full)
    code, err = cli.main(["inpaint", "-i", str(files / "photo.png"), "-m", str(files / "mask.png"), "-o", str(out)]), capsys.readouterr().err
    assert code == 1 and "the disk is full" in err and "[Errno" not in err
    assert out.read_bytes() == b"previous result" and sorted(p.name for p in files.iterdir() if p.name.startswith(".")) == []


# -- unwritable / full destinations -------------------------------------------------------------------
def test_save_image_full_disk_keeps_previous_file_and_removes_temp(tmp_path, monkeypatch):
    dest = tmp_path / "result.png"
    save_image(dest, _photo())
    before = dest.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imageio.os, "fsync", full)
    with pytest.raises(OSError) as info:
        save_image(dest, np.zeros((48, 64, 3), np.uint8))
    assert info.value.errno == errno.ENOSPC
    assert dest.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["result.png"]


def test_project_save_to_full_or_unwritable_destination(tmp_path, monkeypatch):
    dest = tmp_path / "work.inpaint"
    save_project(dest, make_state(seed=1))
    before = dest.read_bytes()
    for code, phrase in ((errno.ENOSPC, "disk is full"), (errno.EACCES, "permission denied"), (errno.EROFS, "read-only")):
        def fail(*a, _code=code, **k):
            raise OSError(_code, os.strerror(_code))

        monkeypatch.setattr(app.core.atomic.os, "replace", fail)
        with pytest.raises(ProjectError, match=phrase):
            save_project(dest, make_state(seed=2))
        assert dest.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["work.inpaint"]


# -- models --------------------------------------------------------------------------------------------
def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _sd15_folder(root: Path, *, unet_channels: int = 9) -> Path:
    folder = root / "sd15"
    _write_json(folder / "model_index.json", {"_class_name": "StableDiffusionInpaintPipeline"})
    _write_json(folder / "unet" / "config.json", {"in_channels": unet_channels, "cross_attention_dim": 768})
    _write_json(folder / "scheduler" / "scheduler_config.json", {"prediction_type": "epsilon"})
    return folder


class _Evil:
    """Unpickling this would create ``marker``: proof that no code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_model_problems_are_refused_with_clear_messages(tmp_path):
    from app.inference.registry import LoadOptions, load_backend

    # wrong family: SDXL (folder and checkpoint header)
    sdxl = tmp_path / "sdxl"
    _write_json(sdxl / "model_index.json", {"_class_name": "StableDiffusionXLPipeline", "text_encoder_2": ["x", "y"]})
    with pytest.raises(UnsupportedModelError, match="XL is not supported"):
        load_backend(str(sdxl), LoadOptions(device="cpu"))
    header = json.dumps({"conditioner.embedders.0.transformer.x": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}).encode()
    xl_file = tmp_path / "xl.safetensors"
    xl_file.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00\x00")
    with pytest.raises(UnsupportedModelError, match="XL"):
        load_backend(str(xl_file), LoadOptions(device="cpu"))
    # pickle checkpoint: refused, and nothing in it runs
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(pickle.dumps({"state_dict": _Evil(str(marker))}))
    with pytest.raises(PickleRefusedError, match="pickle"):
        load_backend(str(ckpt), LoadOptions(device="cpu"))
    assert not marker.exists()
    # a model folder with missing files
    folder = _sd15_folder(tmp_path)
    with pytest.raises(ModelLoadError, match=r"missing folder (vae|text_encoder|tokenizer)/"):
        load_backend(str(folder), LoadOptions(device="cpu"))
    # a folder whose weights are only pickles: refused without opening them
    for part in ("vae", "text_encoder", "tokenizer"):
        (folder / part).mkdir()
    _write_json(folder / "vae" / "config.json", {})
    _write_json(folder / "text_encoder" / "config.json", {})
    (folder / "tokenizer" / "tokenizer.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(PickleRefusedError, match="pickle"):
        load_backend(str(folder), LoadOptions(device="cpu"))
    assert not marker.exists()
    with pytest.raises(ModelLoadError, match="model not found"):
        load_backend(str(tmp_path / "no-such-model"), LoadOptions(device="cpu"))


# -- GPU out of memory and cancel, through the real worker ------------------------------------------------
class _OomBackend:
    name = "fake-gpu"
    native_resolution = True

    def __init__(self):
        self.calls = 0

    def generate(self, request, progress, cancelled):
        self.calls += 1
        progress(1, 4, None)
        raise GpuOutOfMemory("cuda:0", low_memory_active=False, detail="tried to allocate 2.00 GiB")


class _SlowBackend:
    name = "slow"
    native_resolution = True

    def generate(self, request, progress, cancelled):
        import time

        for step in range(1, 2000):
            if cancelled():
                raise Cancelled()
            progress(step, 2000, None)
            time.sleep(0.005)
        return [request.image] * len(request.seeds)


def _doc_with_mask() -> Document:
    doc = Document()
    doc.set_image(_photo())
    doc.fill_rect((10, 10, 20, 15))
    return doc


def test_gpu_oom_mid_run_is_reported_and_the_document_is_untouched(qtbot):
    doc = _doc_with_mask()
    before, mask_before, undo_before = doc.pixels.copy(), doc.mask.copy(), doc.undo_stack.count()
    backends = {"fake": _OomBackend()}
    worker = GenerationWorker(lambda model, options: backends[model] if model in backends else ClassicalBackend(model))
    worker.start()
    try:
        params = GenerationParams(seed=3)
        rec = Recorder(worker)
        assert worker.submit(GenerationRequest(params.replace(model="fake"), doc.pixels.copy(), doc.mask.copy()))
        qtbot.waitUntil(lambda: bool(rec.oom) and bool(rec.failed), timeout=10000)
        title, message = rec.failed[0]
        assert title == "Out of memory" and "Nothing in your image was changed" in message and "low-memory" in message
        assert np.array_equal(doc.pixels, before) and np.array_equal(doc.mask, mask_before)
        assert doc.undo_stack.count() == undo_before and not worker.busy
        # the worker stays usable: the next run (classical) succeeds
        assert worker.submit(GenerationRequest(params, doc.pixels.copy(), doc.mask.copy()))
        qtbot.waitUntil(lambda: bool(rec.finished), timeout=10000)
        assert rec.finished[0].candidates[0].shape == before.shape
    finally:
        worker.shutdown()


def test_cancelled_run_changes_nothing_and_worker_stays_usable(qtbot):
    doc = _doc_with_mask()
    before, undo_before = doc.pixels.copy(), doc.undo_stack.count()
    worker = GenerationWorker(lambda model, options: _SlowBackend() if model == "slow" else ClassicalBackend(model))
    worker.start()
    try:
        params = GenerationParams(seed=3)
        rec = Recorder(worker)
        assert worker.submit(GenerationRequest(params.replace(model="slow"), doc.pixels.copy(), doc.mask.copy()))
        qtbot.waitUntil(lambda: bool(rec.progress), timeout=10000)
        worker.cancel()
        qtbot.waitUntil(lambda: bool(rec.cancelled), timeout=10000)
        assert np.array_equal(doc.pixels, before) and doc.undo_stack.count() == undo_before and not worker.busy
        assert worker.submit(GenerationRequest(params, doc.pixels.copy(), doc.mask.copy()))
        qtbot.waitUntil(lambda: bool(rec.finished), timeout=10000)
        assert not rec.failed
    finally:
        worker.shutdown()


def test_engine_cancel_is_honoured_within_one_step():
    steps = []
    flag = {"cancel": False}

    def progress(p):
        steps.append(p.step)
        if p.step == 5:
            flag["cancel"] = True

    image = _photo()
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[5:20, 5:20] = 255
    with pytest.raises(Cancelled):
        Engine(_SlowBackend()).run(Job(GenerationParams(seed=1), image, mask), progress, lambda: flag["cancel"])
    assert max(steps) == 5


def test_gpu_oom_in_the_main_window_keeps_the_work_and_offers_low_memory(qtbot, tmp_path, monkeypatch):
    """The whole chain a user sees: Generate → OOM on the worker → message with a retry in
    low-memory mode; image, mask and undo history exactly as before."""
    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))
    from app.editor.settings import Settings
    from app.widgets.main_window import MainWindow

    window = MainWindow(Settings(tmp_path / "s.ini"), worker=GenerationWorker(lambda *a: _OomBackend()), discover=lambda: [])
    qtbot.addWidget(window)
    window.files.open_image_array(_photo())
    window.document.fill_rect((10, 10, 20, 15))
    before, mask_before, undo_before = window.document.pixels.copy(), window.document.mask.copy(), window.document.undo_stack.count()
    with qtbot.waitSignal(window.generation_failed, timeout=10000) as failed:
        assert window.generation.generate()
    assert failed.args[0] == "Out of memory" and "Nothing in your image was changed" in failed.args[1]
    assert window.message_bar.button("Use low-memory mode and retry") is not None
    assert np.array_equal(window.document.pixels, before) and np.array_equal(window.document.mask, mask_before)
    assert window.document.undo_stack.count() == undo_before and window.document.generations == []
    window.force_close()
