"""Mask operations: windowed (bounding-box) versions equal the whole-image operation."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from app.core import maskops
from app.core.geometry import Bounds


@st.composite
def masks(draw, max_side=80):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    m = np.zeros((h, w), np.uint8)
    for _ in range(draw(st.integers(0, 4))):
        x, y = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        m[y : y + draw(st.integers(1, 20)), x : x + draw(st.integers(1, 20))] = 255
    return m


def _disk(r):
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


@settings(max_examples=120, deadline=None)
@given(m=masks(), r=st.integers(1, 12))
def test_grow_and_shrink_equal_whole_image_ops(m, r):
    assert np.array_equal(maskops.grow(m, r), cv2.dilate(m, _disk(r)))
    assert np.array_equal(maskops.grow(m, -r), cv2.erode(m, _disk(r), borderType=cv2.BORDER_CONSTANT, borderValue=255))
    assert np.array_equal(maskops.shrink(m, r), maskops.grow(m, -r))


@settings(max_examples=120, deadline=None)
@given(m=masks(), blur=st.integers(0, 10))
def test_feather_support_and_windowing(m, blur):
    full = maskops.feather(m, blur)
    hard = m >= 128
    assert full.dtype == np.float32 and full.shape == m.shape
    assert np.all(full[hard] == 1.0)  # the whole mask is replaced
    assert np.all((full >= 0) & (full <= 1))
    if hard.any():
        dist = cv2.distanceTransform(np.where(hard, 0, 255).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        assert np.all(full[dist >= blur + 1 - 1e-4] == 0)  # exactly zero beyond the feather
        assert np.all(full[(dist > 0) & (dist < blur + 1 - 1e-3)] > 0)
        # weights fall with distance
        near, far = full[(dist > 0) & (dist <= 1.01)], full[(dist > blur - 0.5) & (dist <= blur)]
        if blur >= 2 and near.size and far.size:
            assert near.min() >= far.max()
    else:
        assert not full.any()
    h, w = m.shape
    crop = Bounds(w // 4, h // 3, max(1, w // 2), max(1, h // 2))
    assert np.array_equal(maskops.feather(m, blur, crop), full[crop.slices])


def test_feather_owned_limits_the_mask():
    m = np.zeros((50, 100), np.uint8)
    m[20:30, 10:20] = 255
    m[20:30, 70:80] = 255
    left = Bounds(0, 0, 50, 50)
    w = maskops.feather(m, 4, None, owned=left)
    assert w[25, 15] == 1 and w[25, 75] == 0 and not w[:, 50:].any()


def test_invert_clear_validate():
    m = np.zeros((4, 5), np.uint8)
    m[1, 1] = 255
    assert maskops.invert(m)[1, 1] == 0 and maskops.invert(m)[0, 0] == 255
    assert not maskops.clear(m).any()
    assert maskops.validate_mask(m.astype(bool), (4, 5)).max() == 255
    assert maskops.validate_mask((m > 0).astype(np.uint8), (4, 5)).max() == 255
    assert maskops.validate_mask(m.astype(np.float32) / 255, (4, 5))[1, 1] == 255
    assert maskops.validate_mask(m.astype(np.uint16) * 257, (4, 5))[1, 1] == 255
    assert maskops.validate_mask(np.dstack([m] * 3), (4, 5)).shape == (4, 5)
    with pytest.raises(maskops.MaskError, match="5×4 but the image is 6×4"):
        maskops.validate_mask(m, (4, 6))
    soft = np.array([[0, 127, 128, 255]], np.uint8)
    assert maskops.binarize(soft).tolist() == [[0, 0, 255, 255]]


def test_bounds():
    m = np.zeros((30, 40), np.uint8)
    assert maskops.bounds(m) is None
    m[5:9, 7:20] = 255
    assert maskops.bounds(m) == Bounds(7, 5, 13, 4)


def test_classical_fill_only_touches_mask_and_matches_whole_image_telea():
    img = data.astronaut()
    m = np.zeros(img.shape[:2], np.uint8)
    m[200:215, 100:300] = 255
    filled = maskops.classical_fill(img, m)
    assert np.array_equal(filled[m == 0], img[m == 0])
    whole = cv2.inpaint(img, (m > 0).astype(np.uint8), 3, cv2.INPAINT_TELEA)
    assert np.abs(filled.astype(int) - whole).max() <= 2  # the window gives the same fill
    assert not np.array_equal(filled[m > 0], img[m > 0])


def test_large_mask_ops_work_on_the_bounding_box():
    """24 MP mask with a 2 % blob: the windowed ops are far cheaper than whole-image ones."""
    m = np.zeros((4000, 6000), np.uint8)
    m[1500:2193, 2500:3193] = 255  # 2 % of the image
    t = time.perf_counter()
    grown = maskops.grow(m, 8)
    w = maskops.feather(grown, 4, Bounds(2400, 1400, 900, 900))
    windowed = time.perf_counter() - t
    assert grown[1500 - 8, 2800] == 255 and grown[1500 - 9, 2800] == 0
    assert w.shape == (900, 900) and w[400, 400] == 1.0
    assert windowed < 1.5  # generous on a loaded 2-core machine; typically ~0.1 s


def test_rough_fill_hides_damage_and_keeps_the_rest():
    img = np.full((900, 1300, 3), 90, np.uint8)
    m = np.zeros(img.shape[:2], np.uint8)
    cv2.line(m, (0, 100), (1299, 800), 255, 7)
    img[m > 0] = 255
    out = maskops.rough_fill(img, m)
    assert np.array_equal(out[m == 0], img[m == 0])
    assert out[m > 0].max() < 120  # the white scratch is gone
