"""Magic wand and GrabCut on synthetic images with known regions."""

import numpy as np
import pytest

from app.core.geometry import Bounds
from app.core.selection import SelectionError, combine, grabcut, magic_wand


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def _scene(seed=0):
    """Noisy background, a flat-ish disc (the region), and a second disc of the same colour apart."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:200, :300]
    disc = (yy - 100) ** 2 + (xx - 90) ** 2 < 50**2
    other = (yy - 100) ** 2 + (xx - 240) ** 2 < 30**2
    colour = np.array([40, 160, 220], np.int16)
    flat = np.clip(colour + rng.integers(-6, 7, (200, 300, 3)), 0, 255).astype(np.uint8)
    img[disc | other] = flat[disc | other]
    return img, disc, other


def test_wand_contiguous_selects_the_flat_region():
    img, disc, _ = _scene()
    sel = magic_wand(img, 90, 100, tolerance=20, contiguous=True)
    assert iou(sel, disc) >= 0.95


def test_wand_global_selects_every_region_of_that_colour():
    img, disc, other = _scene()
    sel = magic_wand(img, 90, 100, tolerance=20, contiguous=False)
    assert iou(sel, disc | other) >= 0.95


def test_wand_on_gray_and_rgba_and_zero_tolerance():
    gray = np.zeros((50, 50), np.uint8)
    gray[10:20, 10:40] = 7
    assert np.array_equal(magic_wand(gray, 15, 15, 0), gray == 7)
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[..., 3] = np.arange(50, dtype=np.uint8)  # alpha is not what the wand compares
    rgba[30:, :, 0] = 200
    assert np.array_equal(magic_wand(rgba, 0, 0, 10), np.arange(50)[:, None].repeat(50, 1) < 30)


def test_grabcut_finds_the_object_in_the_rectangle():
    img, disc, _ = _scene(1)
    img[~disc] = np.random.default_rng(2).integers(0, 90, ((~disc).sum(), 3), dtype=np.uint8)  # dark clutter
    sel = grabcut(img, Bounds(30, 40, 120, 120))
    assert iou(sel, disc) >= 0.9
    assert not sel[:, 160:].any()  # nothing outside the rectangle


def test_grabcut_on_a_large_image_works_scaled():
    img, disc, _ = _scene(1)
    big = np.repeat(np.repeat(img, 8, 0), 8, 1)
    big_disc = np.repeat(np.repeat(disc, 8, 0), 8, 1)
    big[~big_disc] = 30
    sel = grabcut(big, Bounds(240, 320, 960, 960))
    assert iou(sel, big_disc) >= 0.9


def test_bad_input_messages():
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(SelectionError, match="outside"):
        magic_wand(img, 10, 0)
    with pytest.raises(SelectionError, match="too small"):
        grabcut(img, Bounds(0, 0, 2, 2))
    with pytest.raises(SelectionError, match="8-bit"):
        magic_wand(img.astype(np.uint16), 0, 0)
    with pytest.raises(SelectionError, match="not one of"):
        combine(np.zeros((10, 10), np.uint8), np.zeros((10, 10), bool), "xor")
