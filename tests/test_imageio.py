"""Image files in and out: every kind of input works or fails with one clear line."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage import data

from app.core import imageio
from app.core.imageio import ImageLoadError, load_image, load_image_bytes, load_mask, save_image
from app.core.params import GenerationParams

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _rgb16(h=37, w=53, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 65536, (h, w, channels), dtype=np.uint16)


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pixels",
    [
        data.camera()[:61, :67],  # gray 8
        data.astronaut()[:45, :71],  # RGB 8
        np.dstack([data.coffee()[:33, :41], np.arange(33 * 41, dtype=np.uint16).reshape(33, 41).astype(np.uint8)]),  # RGBA 8
        (np.arange(29 * 31, dtype=np.uint16).reshape(29, 31) * 71),  # gray 16
        _rgb16(),  # RGB 16
        _rgb16(channels=4, seed=1),  # RGBA 16
    ],
    ids=["L8", "RGB8", "RGBA8", "L16", "RGB16", "RGBA16"],
)
@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_lossless_round_trip_keeps_pixels_depth_and_icc(tmp_path, pixels, ext):
    path = tmp_path / f"img{ext}"
    save_image(path, pixels, icc_profile=SRGB)
    loaded = load_image(path)
    assert loaded.pixels.dtype == pixels.dtype
    assert loaded.pixels.shape == pixels.shape
    assert np.array_equal(loaded.pixels, pixels)
    assert loaded.icc_profile == SRGB
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


@pytest.mark.parametrize("ext", [".jpg", ".webp"])
def test_lossy_formats_save_8bit_and_carry_a1111_text(tmp_path, ext):
    pixels = data.chelsea()
    params = GenerationParams(prompt="a cat, on a mat", seed=7, model="sd15.safetensors")
    save_image(tmp_path / f"x{ext}", pixels, params=params)
    loaded = load_image(tmp_path / f"x{ext}")
    assert loaded.pixels.shape == pixels.shape and loaded.pixels.dtype == np.uint8
    assert np.abs(loaded.pixels.astype(int) - pixels).mean() < 4
    assert loaded.params is not None and loaded.params.prompt == "a cat, on a mat" and loaded.params.seed == 7


def test_png_params_recalled_on_load(tmp_path):
    params = GenerationParams(prompt="restore: the sky", negative_prompt="noise", seed=123, steps=30, mask_grow=3,
                              model="/models/sd15-inpainting")
    save_image(tmp_path / "r.png", _rgb16(), params=params)
    loaded = load_image(tmp_path / "r.png")
    assert loaded.params == params  # 16-bit path writes the chunks itself
    assert "Steps: 30" in loaded.info["parameters"]


@pytest.mark.parametrize("pixels", [data.astronaut(), _rgb16(), np.dstack([data.camera()] * 3 + [data.camera()[::-1]])],
                         ids=["rgb8", "rgb16", "rgba8"])
def test_fast_png_is_lossless_and_keeps_metadata(tmp_path, pixels):
    params = GenerationParams(prompt="a server output", seed=99)
    default = imageio.encode_png(pixels, params=params)
    fast = imageio.encode_png(pixels, params=params, fast=True)
    assert fast != default  # another zlib strategy, the same pixels and chunks
    save_image(tmp_path / "f.png", pixels, params=params, fast_png=True)
    assert (tmp_path / "f.png").read_bytes() == fast
    for encoded in (default, fast):
        loaded = load_image_bytes(encoded)
        assert np.array_equal(loaded.pixels, pixels) and loaded.params == params


def test_jpeg_16bit_is_rounded_and_alpha_dropped(tmp_path):
    save_image(tmp_path / "a.jpg", _rgb16(channels=4))
    assert load_image(tmp_path / "a.jpg").pixels.shape == (37, 53, 3)


# -- kinds of input ------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied(tmp_path, orientation):
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:20, :30] = (255, 0, 0)  # red top-left quadrant
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(tmp_path / "o.jpg", exif=exif, quality=98)
    px = load_image(tmp_path / "o.jpg").pixels
    expected = {3: np.rot90(arr, 2), 6: np.rot90(arr, -1), 8: np.rot90(arr, 1)}[orientation]
    assert px.shape == expected.shape
    red = (px[..., 0] > 128) & (px[..., 1] < 100)
    assert np.mean(red == (expected[..., 0] > 128)) > 0.97


def test_palette_with_and_without_transparency():
    pal = Image.fromarray(data.astronaut()[:50, :50]).convert("P")
    plain = load_image_bytes(_png_bytes(pal), "p.png")
    assert plain.pixels.shape == (50, 50, 3) and "palette" in plain.info["converted"]
    transparent = load_image_bytes(_png_bytes(pal, transparency=0), "t.png")
    assert transparent.pixels.shape == (50, 50, 4)
    assert (transparent.pixels[..., 3] == 0).any()


def test_cmyk_converted_with_a_note():
    cmyk = Image.fromarray(data.coffee()[:40, :40]).convert("CMYK")
    buf = io.BytesIO()
    cmyk.save(buf, "JPEG")
    loaded = load_image_bytes(buf.getvalue(), "c.jpg")
    assert loaded.pixels.shape == (40, 40, 3)
    assert "CMYK" in loaded.info["converted"]
    assert np.abs(loaded.pixels.astype(int) - data.coffee()[:40, :40]).mean() < 12


def test_la_becomes_rgba_and_modes_1_and_I():
    la = Image.merge("LA", [Image.fromarray(data.camera()[:20, :20])] * 2)
    px = load_image_bytes(_png_bytes(la), "la.png").pixels
    assert px.shape == (20, 20, 4) and np.array_equal(px[..., 0], data.camera()[:20, :20])
    one = Image.fromarray(data.camera()[:16, :16] > 100)
    assert load_image_bytes(_png_bytes(one), "1.png").pixels.dtype == np.uint8
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 40000, np.int32), mode="I").save(buf, "TIFF")
    assert load_image_bytes(buf.getvalue(), "i.tif").pixels.max() == 40000


def test_float_tiff_is_refused_clearly():
    buf = io.BytesIO()
    Image.fromarray(np.ones((8, 8), np.float32)).save(buf, "TIFF")
    with pytest.raises(ImageLoadError, match="not supported"):
        load_image_bytes(buf.getvalue(), "f.tif")


@pytest.mark.parametrize("shape", [(1, 97), (97, 1), (16, 16), (1, 1)])
def test_tiny_and_thin_images(tmp_path, shape):
    arr = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    save_image(tmp_path / "t.png", arr)
    assert np.array_equal(load_image(tmp_path / "t.png").pixels, arr)


def test_10000_square_loads(tmp_path):
    Image.new("L", (10000, 10000), 7).save(tmp_path / "big.png", compress_level=1)
    px = load_image(tmp_path / "big.png").pixels
    assert px.shape == (10000, 10000) and px[9999, 9999] == 7


def test_multiframe_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    loaded = load_image_bytes(buf.getvalue(), "m.tif")
    assert loaded.info["frames"] == 2 and tuple(loaded.pixels[0, 0]) == (255, 0, 0)


# -- bad input -----------------------------------------------------------------------------------
def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 300
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError) as exc:
        load_image(tmp_path / "nope.png")
    assert "not found" in _one_line(exc)


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError) as exc:
        load_image(tmp_path / "empty.png")
    assert "0 bytes" in _one_line(exc)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_truncated_file(fmt):
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, fmt)
    raw = buf.getvalue()
    with pytest.raises(ImageLoadError) as exc:
        load_image_bytes(raw[: len(raw) // 2], f"cut.{fmt.lower()}")
    msg = _one_line(exc)
    assert "truncated" in msg or "damaged" in msg


def test_truncated_16bit_png():
    raw = imageio.encode_image(_rgb16(64, 64), "PNG")
    with pytest.raises(ImageLoadError):
        load_image_bytes(raw[: len(raw) // 2], "cut16.png")


def test_not_an_image_with_image_extension(tmp_path):
    (tmp_path / "notes.png").write_text("these are my notes, not a picture\n" * 20)
    with pytest.raises(ImageLoadError) as exc:
        load_image(tmp_path / "notes.png")
    assert "not an image" in _one_line(exc)


def test_corrupt_png_data():
    raw = bytearray(_png_bytes(Image.fromarray(data.coffee())))
    raw[200:400] = bytes(200)  # inside the compressed pixel data
    with pytest.raises(ImageLoadError):
        load_image_bytes(bytes(raw), "bad.png")


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_from_header():
    with pytest.raises(ImageLoadError) as exc:
        load_image_bytes(_png_header_only(40000, 40000), "bomb.png")
    msg = _one_line(exc)
    assert "too large" in msg and "1600 MP" in msg


def test_pillow_bomb_guard_is_also_caught(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's guard trips before ours
    with pytest.raises(ImageLoadError, match="too large"):
        load_image_bytes(_png_bytes(Image.new("L", (100, 100))), "b.png")


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        # root reads anything: prove the message path with a file that vanishes instead
        with pytest.raises(ImageLoadError, match="not found"):
            load_image(tmp_path / "gone.png")
        return
    path = tmp_path / "locked.png"
    save_image(path, data.camera()[:8, :8])
    path.chmod(0)
    with pytest.raises(ImageLoadError, match="permission"):
        load_image(path)


# -- masks ---------------------------------------------------------------------------------------
def test_mask_from_rgb_gray_alpha_and_jpeg(tmp_path):
    hard = np.zeros((40, 50), np.uint8)
    hard[10:20, 5:30] = 255
    save_image(tmp_path / "m.png", np.dstack([hard] * 3))
    assert np.array_equal(load_mask(tmp_path / "m.png", (40, 50)), hard)
    alpha_only = np.dstack([np.full_like(hard, 255)] * 3 + [hard])  # white paint on a transparent layer
    save_image(tmp_path / "a.png", alpha_only)
    assert np.array_equal(load_mask(tmp_path / "a.png", (40, 50)), hard)
    Image.fromarray(hard).save(tmp_path / "m.jpg", quality=60)
    assert np.mean(load_mask(tmp_path / "m.jpg", (40, 50)) == hard) > 0.98
    out = load_mask(tmp_path / "m.jpg", (40, 50))
    assert set(np.unique(out)) <= {0, 255}


def test_mask_of_another_size(tmp_path):
    save_image(tmp_path / "m.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(ImageLoadError) as exc:
        load_mask(tmp_path / "m.png", (11, 12))
    assert "12×10" in _one_line(exc) and "same size" in str(exc.value)


# -- atomic writes -------------------------------------------------------------------------------
def test_failed_save_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    save_image(path, data.camera()[:10, :10])
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imageio.os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        save_image(path, data.astronaut())
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_unknown_extension_refused(tmp_path):
    with pytest.raises(ValueError, match="extensions"):
        save_image(tmp_path / "x.bmpx", data.camera())


def test_16bit_gray_alpha_png_keeps_16_bits():
    """Pillow opens a 16-bit gray+alpha PNG as 8-bit RGBA; we must not lose the low byte."""
    h, w = 5, 7
    la = np.random.default_rng(0).integers(0, 65536, (h, w, 2)).astype(">u2")
    raw = b"".join(b"\x00" + la[y].tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    px = load_image_bytes(png, "la16.png").pixels
    assert px.dtype == np.uint16 and px.shape == (h, w, 4)
    assert np.array_equal(px[..., 0], la[..., 0].astype(np.uint16))
    assert np.array_equal(px[..., 3], la[..., 1].astype(np.uint16))


def test_png_with_a_lying_chunk_length_is_refused_before_decoding():
    """A 1 kB PNG whose IDAT claims 2.9 GB made OpenCV allocate gigabytes for seconds."""
    import time

    arr = (np.random.default_rng(0).random((20, 20, 3)) * 65535).astype(np.uint16)
    data = bytearray(imageio.encode_image(arr, "PNG"))
    at = data.find(b"IDAT") - 4
    data[at : at + 4] = struct.pack(">I", 0xAE000000)
    start = time.perf_counter()
    with pytest.raises(imageio.ImageLoadError, match="truncated|damaged"):
        imageio.load_image_bytes(bytes(data), "lying.png")
    assert time.perf_counter() - start < 1.0


def test_mask_threshold_is_half_for_every_value():
    """A mask value v marks the pixel for repainting exactly when v >= 128 (gray, RGB and 16 bit)."""
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = np.where(values >= 128, 255, 0).astype(np.uint8)
    assert np.array_equal(imageio.load_mask(values, (16, 16)), expected)
    assert np.array_equal(imageio.load_mask(np.dstack([values] * 3), (16, 16)), expected)
    assert np.array_equal(imageio.load_mask(values.astype(np.uint16) * 257, (16, 16)), expected)


def test_a_mask_of_the_wrong_size_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    """Issue 32: the window's Import Mask (and the CLI) compare the mask's size from its header,
    so a huge wrong-size mask costs nothing to refuse."""
    from PIL import Image

    path = tmp_path / "wrong.png"
    Image.new("L", (4000, 3000)).save(path)
    decoded = []
    real = imageio.load_image_bytes
    monkeypatch.setattr(imageio, "load_image_bytes", lambda *a, **k: decoded.append(1) or real(*a, **k))
    with pytest.raises(imageio.ImageLoadError, match="4000×3000 but the image is 64×48"):
        imageio.load_mask(path, (48, 64))
    assert not decoded
    Image.new("L", (64, 48), 255).save(path)
    assert imageio.load_mask(path, (48, 64, 3)).min() == 255 and decoded == [1]
