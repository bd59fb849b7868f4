"""Restore faces without a selection (issue 27): the YuNet file is looked for where users keep
face models, a missing or unreadable one is a message saying what to install (never a
download), and faces a detector finds are restored inside their feathered ellipses only.
Upscaled files keep their print size: the DPI is scaled with the pixels."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

import restoration_models as rm
from app.cli.main import main
from app.core import density, maskops
from app.core.geometry import Bounds
from app.core.imageio import load_image, save_image
from app.inference.restoration import detect, faces
from app.service.restoration import RestorationRequest, RestorationService


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    base = tmp_path_factory.mktemp("detect")
    models, a1111 = base / "models", base / "a1111"
    (a1111 / "models").mkdir(parents=True)
    paths = {
        "faces": rm.save(rm.restoreformer(), models / "facerestore_models" / "tiny-restoreformer.safetensors"),
        "x4": rm.save(rm.compact_x4(), models / "ESRGAN" / "tiny-compact-x4.safetensors"),
        "models": models, "a1111": a1111,
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INPAINT_STUDIO_MODELS", str(models))
        mp.setenv("INPAINT_STUDIO_A1111", str(a1111))
        mp.setenv("TORCH_HOME", str(base / "torch"))  # IOPaint's cache: none here
        yield paths


@pytest.fixture(scope="module")
def yunet_bytes(tmp_path_factory):
    """A YuNet-shaped ONNX graph (OpenCV's input and twelve output names, its layout) that
    "finds a face" in every 32-px cell of the 32-px grid that is bright: a real file for OpenCV's
    own FaceDetectorYN, made here (the real weights are never downloaded). torch writes it; its
    last export step only adds onnxscript functions (none here) and needs the onnx package,
    which we do not install, so that step is skipped."""
    import torch
    import torch.nn.functional as F
    from torch.onnx._internal.torchscript_exporter import onnx_proto_utils

    class BrightCells(torch.nn.Module):
        def forward(self, x):
            bright = x.mean(1, keepdim=True) / 255.0
            outputs = {}
            for stride in (8, 16, 32):
                share = F.avg_pool2d(bright, stride, stride)
                score = share if stride == 32 else share * 0  # one face per bright 32-px cell
                zero = share * 0

                def rows(t):
                    return t.flatten(2).transpose(1, 2)

                # cls, obj: the score; bbox: the cell's centre, exp(0)·stride = 32 px wide and high
                outputs[stride] = (rows(score), rows(score), rows(torch.cat([zero + 0.5, zero + 0.5, zero, zero], 1)),
                                   rows(torch.cat([zero] * 10, 1)))
            return tuple(outputs[s][k] for k in range(4) for s in (8, 16, 32))

    path = tmp_path_factory.mktemp("yunet") / "yunet.onnx"
    names = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: enough for this graph
        mp.setattr(onnx_proto_utils, "_add_onnxscript_fn", lambda model_bytes, custom_opsets: model_bytes)
        torch.onnx.export(BrightCells(), torch.zeros(1, 3, 64, 64), str(path), input_names=["input"],
                          output_names=names, dynamic_axes={"input": {2: "h", 3: "w"}}, opset_version=13, dynamo=False)
    return path.read_bytes()


@pytest.fixture
def yunet_installed(library, yunet_bytes):
    path = library["models"] / "facedetection" / detect.YUNET_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(yunet_bytes)
    yield path
    path.unlink()


def test_opencvs_yunet_from_the_models_folder_finds_the_faces_to_restore(yunet_installed, tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.setattr(faces, "FACE_SIZE", 32)  # the tiny model's working size (real ones: 512)
    image = np.zeros((96, 160, 3), np.uint8)
    image[32:64, 64:96] = 230  # one bright 32-px cell: the "face"
    image[40:56, 70:90] = (180, 120, 90)
    assert detect.default_detector()(image) == [Bounds(64, 32, 32, 32)]
    Image.fromarray(image).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert main(["restore-faces", str(tmp_path / "in.png"), "-o", str(out)]) == 0, capsys.readouterr().err
    result = np.asarray(Image.open(out))
    selection = detect.faces_mask([Bounds(64, 32, 32, 32)], 96, 160)
    outside = maskops.feather_full(selection, 4) == 0  # the CLI's feather
    assert np.array_equal(result[outside], image[outside]) and not np.array_equal(result, image)


def test_without_a_yunet_file_the_message_says_what_to_put_where(library):
    assert detect.find_yunet() is None
    with pytest.raises(detect.NoFaceDetector) as caught:
        detect.default_detector()
    message = caught.value.message
    assert message.startswith("no face detector: select the faces, or put face_detection_yunet_2023mar.onnx")
    assert str(library["models"] / "facedetection") in message and not caught.value.bad_input


def test_the_yunet_file_is_found_in_a1111s_face_folders_and_an_unreadable_one_is_named(library):
    a1111_file = library["a1111"] / "models" / "GFPGAN" / "face_detection_yunet_2023mar.onnx"
    a1111_file.parent.mkdir(parents=True)
    a1111_file.write_bytes(b"not an onnx graph")
    ours = library["models"] / "facedetection" / "face_detection_yunet_2023mar.onnx"
    in_torch_hub = detect.torch_hub_checkpoints() / "face_detection_yunet_2023mar.onnx"
    try:
        assert detect.find_yunet() == a1111_file
        ours.parent.mkdir(exist_ok=True)
        ours.write_bytes(b"not an onnx graph either")
        assert detect.find_yunet() == ours  # the models folder is searched first
        with pytest.raises(detect.NoFaceDetector, match="is not a face detector OpenCV can load"):
            detect.default_detector()  # OpenCV's own FaceDetectorYN refuses it; we say so in one line
        ours.unlink()
        a1111_file.unlink()
        in_torch_hub.parent.mkdir(parents=True)
        in_torch_hub.write_bytes(b"")
        assert detect.find_yunet() == in_torch_hub  # where IOPaint keeps what it fetches
    finally:
        for path in (a1111_file, ours, in_torch_hub):
            path.unlink(missing_ok=True)


def test_detected_faces_are_restored_inside_their_ellipses_and_nothing_else_changes(library, monkeypatch):
    monkeypatch.setattr(faces, "FACE_SIZE", 32)  # the tiny model's working size (real ones: 512)
    seen = []

    def detector(rgb):
        seen.append((rgb.dtype, rgb.shape))
        return [Bounds(8, 10, 26, 30), Bounds(60, 20, 20, 24)]

    rgb = rm.photo(72, 96).astype(np.uint16) * 257
    rgba = np.dstack([rgb, np.full((72, 96), 40000, np.uint16)])
    service = RestorationService(face_detector=detector)
    full = service.run(RestorationRequest("restore-faces", rgba, strength=1.0, mask_blur=6)).pixels
    assert seen == [(np.uint8, (72, 96, 3))]  # the detector sees 8-bit RGB, the model the 16-bit data
    selection = detect.faces_mask([Bounds(8, 10, 26, 30), Bounds(60, 20, 20, 24)], 72, 96)
    outside = maskops.feather_full(selection, 6) == 0
    assert full.dtype == np.uint16 and np.array_equal(full[outside], rgba[outside])
    assert np.array_equal(full[:, :, 3], rgba[:, :, 3])  # alpha untouched everywhere
    for box in (Bounds(8, 10, 26, 30), Bounds(60, 20, 20, 24)):  # each face restored
        centre = rgba[box.y + box.height // 2, box.x + box.width // 2]
        assert not np.array_equal(full[box.y + box.height // 2, box.x + box.width // 2], centre)
    none = service.run(RestorationRequest("restore-faces", rgba, strength=0.0)).pixels
    assert np.array_equal(none, rgba)  # strength 0: every pixel as it was


def test_a_detector_that_finds_no_face_asks_for_a_selection(library):
    service = RestorationService(face_detector=lambda rgb: [])
    with pytest.raises(detect.NoFacesFound, match="select the faces"):
        service.run(RestorationRequest("restore-faces", rm.photo(32, 32)))


def test_faces_mask_draws_one_grown_ellipse_per_box():
    mask = detect.faces_mask([Bounds(10, 10, 20, 40)], 64, 64)
    assert mask[30, 20] == 255 and mask[0, 0] == 0
    ys, xs = np.nonzero(mask)
    assert xs.max() - xs.min() + 1 == pytest.approx(20 * (1 + detect.GROW), abs=2)
    assert ys.max() - ys.min() + 1 == pytest.approx(40 * (1 + detect.GROW), abs=2)
    assert len(faces.face_boxes(detect.faces_mask([Bounds(2, 2, 12, 12), Bounds(40, 40, 12, 12)], 64, 64))) == 2


# -- DPI: the print size is kept ------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_an_upscaled_file_has_its_dpi_times_the_scale(library, tmp_path, suffix, capsys):
    src, out = tmp_path / f"in{suffix}", tmp_path / "out.png"
    pixels = rm.photo(12, 16).astype(np.uint16) * 257 if suffix == ".tif" else rm.photo(12, 16)
    save_image(src, pixels, dpi=(300, 150))
    assert load_image(src).info["dpi"] == (300, 150)
    assert main(["upscale", str(src), "-o", str(out), "--model", "tiny-compact-x4"]) == 0, capsys.readouterr().err
    result = load_image(out)
    assert result.pixels.shape[:2] == (48, 64) and result.pixels.dtype == pixels.dtype
    assert result.info["dpi"] == (1200, 600)  # 16×12 px at 300 dpi and ×4 at 1200 dpi: the same inches


def test_a_file_without_a_density_gets_none(library, tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(rm.photo(12, 16)).save(src)
    assert main(["upscale", str(src), "-o", str(out), "--model", "tiny-compact-x4"]) == 0, capsys.readouterr().err
    assert "dpi" not in load_image(out).info and "dpi" not in Image.open(out).info


def test_density_is_written_into_jpeg_and_replaces_an_older_one():
    buffer = io.BytesIO()
    Image.fromarray(rm.photo(8, 8)).save(buffer, "JPEG", dpi=(72, 72))
    data = density.with_dpi(buffer.getvalue(), "JPEG", density.scaled((72, 72), 2, 2))
    assert Image.open(io.BytesIO(data)).info["dpi"] == (144, 144)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(Image.open(buffer)))
    png = io.BytesIO()
    Image.fromarray(rm.photo(8, 8)).save(png, "PNG", dpi=(96, 96))
    again = density.with_dpi(png.getvalue(), "PNG", (192, 192))
    assert again.count(b"pHYs") == 1 and density.of(Image.open(io.BytesIO(again)).info) == (192, 192)
    assert density.scaled(None, 4, 4) is None


def test_yunet_boxes_come_back_in_the_images_own_coordinates(monkeypatch, tmp_path):
    """A large photo is shown to YuNet shrunk to `DETECT_SIDE`; its boxes are scaled back and
    clamped to the image. (OpenCV's net is replaced by one that finds one face at a fixed spot of
    what it is shown: no model file is downloaded.)"""
    shown = []

    class Net:
        def setInputSize(self, size):
            self.size = size

        def detect(self, bgr):
            shown.append((bgr.shape, self.size))
            w, h = self.size
            faces = np.array([[w * 0.25, h * 0.5, w * 0.1, h * 0.1, *([0] * 10), 0.9],
                              [w * 0.95, h * 0.9, w * 0.2, h * 0.2, *([0] * 10), 0.8]], np.float32)
            return 1, faces

    monkeypatch.setattr(detect.cv2.FaceDetectorYN, "create", lambda *args: Net())
    find = detect.yunet(tmp_path / "face_detection_yunet_2023mar.onnx")
    boxes = find(np.zeros((2000, 3000, 3), np.uint8))
    assert shown == [((853, 1280, 3), (1280, 853))]  # shrunk to 1280 px on the long side, BGR
    assert boxes[0] == Bounds(750, 1000, 300, 200)  # back in the photo's own pixels
    assert boxes[1].right <= 3000 and boxes[1].bottom <= 2000  # a face over the edge is clamped
    assert find(np.zeros((100, 60, 3), np.uint8))[0] == Bounds(15, 50, 6, 10)  # small images as they are
