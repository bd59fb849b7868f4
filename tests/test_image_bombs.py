"""Small files that claim huge images are refused from their header, before any decoding
(a 631-byte JPEG claiming 30000×29000 took 20 s and 8.3 GB; an 800 KB PNG of 29000² took 2.4 GB)."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from app.core.imageio import ImageLoadError, load_image, load_image_bytes


def _jpeg_claiming(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, "JPEG", quality=50)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100_000, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.mark.parametrize("data, what", [
    (_jpeg_claiming(30000, 29000), "too large"),
    (_jpeg_claiming(6000, 4000), "holds only"),
    (_png_claiming(29000, 29000), "too large"),
])
def test_header_bombs_are_refused_at_once(data, what, tmp_path):
    path = tmp_path / "bomb.bin"
    path.write_bytes(data)
    t0 = time.perf_counter()
    with pytest.raises(ImageLoadError, match=what):
        load_image(path)
    assert time.perf_counter() - t0 < 1.0


def test_a_real_flat_jpeg_still_opens():
    buf = io.BytesIO()
    Image.fromarray(np.full((600, 800, 3), 200, np.uint8)).save(buf, "JPEG", quality=90)
    assert load_image_bytes(buf.getvalue(), "flat.jpg").pixels.shape == (600, 800, 3)


# -- issue 32: one decode budget, checked from the header --------------------------------------------
def _webp_claiming(width: int, height: int) -> bytes:
    """A real 64×64 lossless WebP whose VP8L header is rewritten to claim ``width``×``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    at = data.index(b"VP8L") + 9
    (bits,) = struct.unpack("<I", data[at:at + 4])
    struct.pack_into("<I", data, at, (bits & ~((1 << 28) - 1)) | (width - 1) | ((height - 1) << 14))
    return bytes(data)


def _progressive_jpeg_with_scans(extra: int) -> bytes:
    """A progressive JPEG whose last scan is repeated ``extra`` times before EOI."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * extra + b"\xff\xd9"


def _tiff_with_pages(pages: int) -> bytes:
    """A classic little-endian TIFF of ``pages`` 8×8 gray pages sharing one strip (built by hand)."""
    strip = bytes(range(64))
    out = bytearray(b"II*\x00" + struct.pack("<I", 8 + len(strip)) + strip)
    for page in range(pages):
        start = len(out)
        tags = [(256, 3, 8), (257, 3, 8), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8), (278, 3, 8), (279, 4, 64)]
        out += struct.pack("<H", len(tags))
        for tag, kind, value in tags:
            out += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        following = start + 2 + 12 * len(tags) + 4 if page < pages - 1 else 0
        out += struct.pack("<I", following)
    return bytes(out)


@pytest.mark.parametrize("data, what", [
    (_webp_claiming(16383, 16383), "holds only 40 bytes"),  # was 11.8 s and 4.7 GB
    (_progressive_jpeg_with_scans(200), "progressive scans"),  # 2,200 scans at 16384² took 68 s
    (_png_claiming(8000, 8000), "holds only"),  # under the pixel cap, over any deflate ratio
])
def test_small_files_claiming_costly_decodes_are_refused_from_the_header(data, what):
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match=what):
        load_image_bytes(data, "bomb")
    assert time.perf_counter() - start < 1.0


def test_a_tiff_with_thousands_of_pages_opens_its_first_page_without_walking_them_all():
    data = _tiff_with_pages(5000)  # 100,000 pages took 83 s
    start = time.perf_counter()
    loaded = load_image_bytes(data, "pages.tif")
    assert time.perf_counter() - start < 1.0
    assert loaded.pixels.shape == (8, 8) and loaded.pixels[0, 1] == 1
    assert loaded.info["note"] == "only the first of 1000+ frames/pages is used"
    assert load_image_bytes(_tiff_with_pages(3), "three.tif").info["frames"] == 3


def test_decoded_bytes_are_checked_against_free_memory(monkeypatch):
    from app.core import decode_budget

    buf = io.BytesIO()
    Image.new("RGB", (300, 200)).save(buf, "PNG")
    monkeypatch.setattr(decode_budget, "available_memory", lambda: 300 * 200 * 3 * 2)  # fewer than 3 copies
    with pytest.raises(ImageLoadError, match=r"needs about .* GiB of memory to open"):
        load_image_bytes(buf.getvalue(), "photo.png")
    monkeypatch.setattr(decode_budget, "available_memory", lambda: 300 * 200 * 3 * 3)
    assert load_image_bytes(buf.getvalue(), "photo.png").pixels.shape == (200, 300, 3)


def test_only_regular_files_are_read(tmp_path):
    import os

    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_image("/dev/zero")  # used to read until memory ran out
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_image(fifo)  # no writer: a blocking read would hang
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(ImageLoadError, match="loops"):
        load_image(loop)
    assert time.perf_counter() - start < 1.0


def test_metadata_past_pillows_limits_never_blocks_the_pixels(tmp_path):
    """A 2.1 MB compressed `parameters` chunk, a 2 MB ICC profile in our own output: both used to
    make the file unreadable ("Decompressed data too large")."""
    from PIL import PngImagePlugin

    from app.core.imageio import save_image

    pixels = np.random.default_rng(2).integers(0, 256, (48, 64, 3), np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a " * 1_100_000, zip=True)
    Image.fromarray(pixels).save(tmp_path / "text.png", pnginfo=info)
    loaded = load_image(tmp_path / "text.png")
    assert np.array_equal(loaded.pixels, pixels) and "metadata too large" in loaded.info["note"]

    icc = bytes(np.random.default_rng(3).integers(0, 256, 2 * 1024 * 1024, np.uint8))
    save_image(tmp_path / "ours.png", pixels, icc_profile=icc)
    again = load_image(tmp_path / "ours.png")
    assert np.array_equal(again.pixels, pixels) and again.icc_profile == icc  # kept, read by our own reader


def test_an_oversized_icc_profile_is_dropped_with_a_note(monkeypatch):
    from app.core import decode_budget, imageio

    monkeypatch.setattr(decode_budget, "MAX_ICC_BYTES", 64 * 1024)  # the 8 MB cap, scaled down to keep the test fast
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, "JPEG", icc_profile=b"\x01" * (100 * 1024))
    loaded = load_image_bytes(buf.getvalue(), "photo.jpg")
    assert loaded.icc_profile is None and "oversized colour profile was dropped" in loaded.info["note"]
    png = imageio.encode_png(loaded.pixels, icc_profile=b"\x01" * (100 * 1024))
    assert b"iCCP" not in png  # what we write is what we can read


def test_a_stealth_payload_cannot_inflate_past_its_cap():
    import gzip

    from app.core.sdmeta.stealth import read_stealth

    payload = gzip.compress(b"a" * 50_000_000)  # ~50 KB inflating to 50 MB (was 400 MB: 27 s, 842 MB)
    bits = np.unpackbits(np.frombuffer(b"stealth_pngcomp" + struct.pack(">I", len(payload) * 8) + payload, np.uint8))
    height = 256
    width = -(-bits.size // height)
    alpha = np.full(width * height, 254, np.uint8)
    alpha[: bits.size] |= bits
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 3] = alpha.reshape(width, height).T  # written column by column, as the extension does
    start = time.perf_counter()
    assert read_stealth(Image.fromarray(rgba, "RGBA")) is None
    assert time.perf_counter() - start < 1.0


def test_info_reads_the_header_of_an_image_too_large_to_decode(tmp_path, capsys):
    from app.cli.main import main

    text = b"parameters\x00a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 29000x29000"
    bomb = _png_claiming(29000, 29000)
    bomb = bomb[:33] + _chunk(b"tEXt", text) + bomb[33:]  # before IDAT: readable from the header
    (tmp_path / "bomb.png").write_bytes(bomb)
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8)).save(good)
    start = time.perf_counter()
    code = main(["info", "--json", str(tmp_path / "bomb.png"), "/dev/zero", str(good)])
    assert time.perf_counter() - start < 2.0
    import json

    bomb_row, zero_row, good_row = json.loads(capsys.readouterr().out)
    assert bomb_row["recall"]["seed"] == 5 and any("too large" in n for n in bomb_row["notes"])
    assert "not a regular file" in zero_row["problems"][0]
    assert good_row["format"] == "none" and code == 1  # /dev/zero is unreadable: exit 1, every file reported


def test_gif_frames_are_counted_from_the_block_chain():
    frames = [Image.new("RGB", (8, 8), (60 * i, 0, 0)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=10)
    loaded = load_image_bytes(buf.getvalue(), "anim.gif")
    assert loaded.info["frames"] == 4 and loaded.info["note"] == "only the first of 4 frames/pages is used"


def test_what_we_write_with_a_huge_prompt_reopens(tmp_path, monkeypatch):
    from app.core import metadata
    from app.core.imageio import save_image
    from app.core.params import GenerationParams

    monkeypatch.setattr(metadata, "MAX_TEXT_CHUNK_CHARS", 4096)  # the 16 M-character cap, scaled down
    pixels = np.zeros((8, 8, 3), np.uint8)
    save_image(tmp_path / "big.png", pixels, params=GenerationParams(prompt="word " * 2000, seed=3))
    save_image(tmp_path / "small.png", pixels, params=GenerationParams(prompt="word", seed=3))
    assert load_image(tmp_path / "big.png").params is None  # both texts past the cap: left out
    assert load_image(tmp_path / "small.png").params.seed == 3


def test_info_reads_text_chunks_after_the_pixels_without_decoding_them(tmp_path, monkeypatch):
    from PIL import ImageFile

    from app.core.sdmeta import read_metadata

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    png = buf.getvalue()
    late = (_chunk(b"zTXt", b"parameters\x00\x00" + zlib.compress(b"a fox\nSteps: 12, Sampler: Euler, Seed: 4, CFG scale: 6"))
            + _chunk(b"iTXt", b"Comment\x00\x00\x00\x00\x00" + "späte Notiz".encode()))
    (tmp_path / "late.png").write_bytes(png[:-12] + late + png[-12:])  # after IDAT, before IEND
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels decoded"))
    report = read_metadata(tmp_path / "late.png")
    assert (report.params.steps, report.params.seed, report.params.prompt) == (12, 4, "a fox")
    assert report.raw["Comment"] == "späte Notiz"
