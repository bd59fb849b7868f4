"""The speed work (issue 21) changed how files are read and written, never what they hold.

Each test builds the result the way the code did before — Pillow decode, a mask thresholded
through an int64 array, Pillow's PNG encoder with its adaptive filter — next to today's path,
decodes both files and compares the pixels, the ICC profile and the exact text of the
``parameters`` and ``inpaint-studio`` chunks.
"""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image
from PIL.ImageCms import ImageCmsProfile, createProfile
from skimage import data

from png_reference import pillow_pnginfo
from app.cli.generate import params_from_args
from app.cli.main import build_parser, main
from app.core import imageio
from app.core.metadata import A1111_KEY, JSON_KEY
from app.core.params import GenerationParams
from app.service import GenerationRequest, GenerationService
from app.service.records import candidate_params

ICC = ImageCmsProfile(createProfile("sRGB")).tobytes()
PARAMS = GenerationParams(prompt="a lighthouse, ünïcode ✓", model="builtin:telea", seed=7)


def _old_png(arr: np.ndarray, params, icc) -> bytes:
    """The encoder before issue 21: Pillow at level 3 (16-bit colour went through OpenCV with
    the same inserted chunks as now, so Pillow is the reference for every layout it keeps)."""
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "PNG", pnginfo=pillow_pnginfo(params, arr.shape[1], arr.shape[0]),
                              icc_profile=icc, compress_level=3)
    return out.getvalue()


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, in file order."""
    pos, found = 8, []
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        found.append((png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return found


def _texts(png: bytes) -> dict[str, str]:
    texts = {}
    for kind, body in _chunks(png):
        if kind == b"tEXt":
            key, value = body.split(b"\x00", 1)
            texts[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, rest = body.split(b"\x00", 1)
            texts[key.decode("latin-1")] = rest[4:].decode("utf-8")  # flag, method, empty lang and key
    return texts


def _opencv_pixels(png: bytes) -> np.ndarray:
    """Decoded by a decoder other than the one that wrote it, in RGB order."""
    arr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return arr


def _photo(channels: int, dtype) -> np.ndarray:
    rgb = data.astronaut()[::3, ::3]
    arr = {1: rgb[:, :, 1], 3: rgb, 4: np.dstack([rgb, rgb[:, :, 0]])}[channels]
    return np.ascontiguousarray(arr.astype(dtype) * (257 if dtype == np.uint16 else 1))


LAYOUTS = [(1, np.uint8), (3, np.uint8), (4, np.uint8), (1, np.uint16)]


@pytest.mark.parametrize("channels,dtype", LAYOUTS)
def test_png_encoder_keeps_pixels_icc_and_chunk_texts(channels, dtype):
    arr = _photo(channels, dtype)
    new = imageio.encode_image(arr, "PNG", params=PARAMS, icc_profile=ICC)
    old = _old_png(arr, PARAMS, ICC)
    assert np.array_equal(_opencv_pixels(new), _opencv_pixels(old))
    assert np.array_equal(imageio.load_image_bytes(new).pixels, arr)
    assert _texts(new) == _texts(old)
    assert set(_texts(new)) == {A1111_KEY, JSON_KEY} and "ünïcode ✓" in _texts(new)[A1111_KEY]
    assert imageio.load_image_bytes(new).icc_profile == imageio.load_image_bytes(old).icc_profile == ICC
    # iCCP and the texts sit before the pixels, in the order Pillow wrote them.
    kinds = [k for k, _ in _chunks(new)]
    assert kinds[0] == b"IHDR" and kinds[1] == b"iCCP" and kinds.index(b"IDAT") > 3
    assert [k for k in kinds if k not in (b"IDAT",)] == [k for k, _ in _chunks(old) if k not in (b"IDAT",)]


def test_sixteen_bit_colour_png_matches_the_previous_encoder():
    arr = _photo(3, np.uint16)
    new = imageio.encode_image(arr, "PNG", params=PARAMS, icc_profile=ICC)
    ok, before = cv2.imencode(".png", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok
    assert np.array_equal(_opencv_pixels(new), _opencv_pixels(before.tobytes()))
    assert imageio.load_image_bytes(new).params == imageio.load_image_bytes(_old_png(_photo(3, np.uint8), PARAMS, ICC)).params


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_loading_without_metadata_gives_the_same_pixels_and_profile(fmt):
    arr = _photo(3, np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, fmt, icc_profile=ICC, pnginfo=pillow_pnginfo(PARAMS, 1, 1) if fmt == "PNG" else None)
    full = imageio.load_image_bytes(out.getvalue())
    bare = imageio.load_image_bytes(out.getvalue(), read_metadata=False)
    assert np.array_equal(full.pixels, bare.pixels) and full.icc_profile == bare.icc_profile == ICC
    assert bare.params is None and "recall" not in bare.info
    if fmt == "PNG":
        assert full.params is not None and full.params.prompt == PARAMS.prompt  # the window still recalls


def test_mask_threshold_is_unchanged_and_stays_uint8(tmp_path):
    gray = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    Image.fromarray(gray).save(tmp_path / "m.png")
    mask = imageio.load_mask(tmp_path / "m.png", gray.shape)
    assert mask.dtype == np.uint8
    assert np.array_equal(mask, np.where(gray >= 128, 255, 0).astype(np.uint8))


def test_cli_output_is_what_the_previous_pipeline_wrote(tmp_path, capsys):
    """Whole CLI run against the old pipeline rebuilt here: Pillow decode, int64 mask, the same
    classical fill, Pillow's PNG encoder with the same metadata."""
    photo = np.ascontiguousarray(data.astronaut())
    mask = np.zeros(photo.shape[:2], np.uint8)
    cv2.circle(mask, (260, 200), 40, 255, -1)
    Image.fromarray(photo).save(tmp_path / "in.png", icc_profile=ICC)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ["inpaint", "-i", str(tmp_path / "in.png"), "-m", str(tmp_path / "mask.png"),
            "-o", str(tmp_path / "out.png"), "--model", "builtin:telea", "--seed", "3", "--progress"]
    assert main(args) == 0
    new = (tmp_path / "out.png").read_bytes()

    pixels = np.asarray(Image.open(tmp_path / "in.png").convert("RGB"))
    old_mask = np.where(np.asarray(Image.open(tmp_path / "mask.png")) >= 128, 255, 0).astype(np.uint8)
    filled = cv2.inpaint(pixels, (old_mask > 0).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    params = params_from_args(build_parser().parse_args(args[:-1]), "inpaint")
    record = GenerationService().run(GenerationRequest(params, pixels, old_mask), lambda p: None, lambda: False)
    assert np.array_equal(record.candidates[0], filled)
    old = _old_png(filled, candidate_params(record, 0), ICC)
    written = imageio.load_image_bytes(new)
    assert np.array_equal(_opencv_pixels(new), _opencv_pixels(old))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(new))), filled)
    assert _texts(new) == _texts(old) and "builtin:telea" in _texts(new)[A1111_KEY]
    assert written.icc_profile == ICC
    iccp = dict(_chunks(new))[b"iCCP"]
    assert zlib.decompress(iccp.split(b"\x00", 1)[1][1:]) == ICC


def test_sixteen_bit_tiff_loads_the_same_without_pillows_decode():
    """Pillow no longer decodes a 16-bit colour TIFF first; OpenCV's pixels, the ICC profile
    and the failure on a damaged file are what they were."""
    arr = _photo(3, np.uint16)
    tiff = imageio.encode_image(arr, "TIFF", icc_profile=ICC)
    loaded = imageio.load_image_bytes(tiff)
    reference = cv2.cvtColor(cv2.imdecode(np.frombuffer(tiff, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert np.array_equal(loaded.pixels, reference) and np.array_equal(loaded.pixels, arr)
    assert loaded.icc_profile == ICC and loaded.info["bit_depth"] == 16
    with pytest.raises(imageio.ImageLoadError) as err:
        imageio.load_image_bytes(tiff[: len(tiff) // 2], "half.tif")
    assert "half.tif" in str(err.value) and "\n" not in str(err.value)
