"""Compositing, colour matching and the seam score."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from app.core import compositing, maskops, seams
from app.core.geometry import Bounds


def test_to_rgb8_layouts():
    assert compositing.to_rgb8(np.full((2, 3), 7, np.uint8)).shape == (2, 3, 3)
    assert compositing.to_rgb8(np.full((2, 3, 4), 9, np.uint8)).shape == (2, 3, 3)
    assert compositing.to_rgb8(np.full((2, 2, 3), 65535, np.uint16)).max() == 255
    assert compositing.to_rgb8(np.full((1, 1, 3), 257 * 10, np.uint16))[0, 0, 0] == 10
    with pytest.raises(TypeError):
        compositing.to_rgb8(np.zeros((2, 2), np.float32))


@settings(max_examples=100, deadline=None)
@given(
    layout=st.sampled_from([(), (3,), (4,), (1,)]),
    dtype=st.sampled_from([np.uint8, np.uint16]),
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    seed=st.integers(0, 2**16),
    density=st.sampled_from([0.05, 0.2, 0.6, 1.0]),  # both the sparse and the dense path
)
def test_composite_writes_only_weighted_pixels_and_never_alpha(layout, dtype, h, w, seed, density):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    target = rng.integers(0, top + 1, (h, w, *layout), dtype=dtype)
    original = target.copy()
    crop = Bounds(w // 4, h // 4, max(1, w // 2), max(1, h // 2))
    weights = rng.random((crop.height, crop.width)).astype(np.float32)
    weights[rng.random(weights.shape) > density] = 0
    weights[(rng.random(weights.shape) < 0.3) & (weights > 0)] = 1.0
    gen = rng.integers(0, 256, (crop.height, crop.width, 3), dtype=np.uint8)
    compositing.composite_into(target, gen, crop, weights)
    touched = np.zeros((h, w), bool)
    touched[crop.slices] = weights > 0
    assert np.array_equal(target[~touched], original[~touched])
    if layout == (4,):
        assert np.array_equal(target[..., 3], original[..., 3])
    full = weights == 1
    if full.any():
        native = compositing.rgb8_to_native(gen, original[crop.slices][..., :3] if layout == (4,) else original[crop.slices])
        region = target[crop.slices]
        colour = region[..., :3] if layout == (4,) else region
        assert np.array_equal(colour[full], native[full])


def test_weights_none_replaces_colour_but_keeps_alpha():
    target = np.dstack([np.zeros((4, 4, 3), np.uint16), np.full((4, 4), 1234, np.uint16)])
    compositing.composite_into(target, np.full((4, 4, 3), 200, np.uint8), Bounds(0, 0, 4, 4), None)
    assert (target[..., :3] == 200 * 257).all() and (target[..., 3] == 1234).all()


def test_resize_mask_never_loses_masked_pixels():
    m = np.zeros((100, 100), np.uint8)
    m[50, 50] = 255
    small = compositing.resize_mask(m, (10, 10))
    assert small.max() == 255 and set(np.unique(small)) <= {0, 255}


def _scene():
    img = data.coffee()
    m = np.zeros(img.shape[:2], np.uint8)
    m[150:230, 200:330] = 255
    return img, m


def test_match_colour_removes_a_drift_seen_on_the_surround():
    img, m = _scene()
    crop = Bounds(150, 100, 250, 200)
    orig, hard = img[crop.slices], m[crop.slices]
    drifted = np.clip(orig.astype(int) * [1.1, 0.9, 1.0] + [12, -8, 15], 0, 255).astype(np.uint8)
    fixed = seams.match_colour(drifted, orig, hard)
    err_before = np.abs(drifted.astype(int) - orig).mean()
    err_after = np.abs(fixed.astype(int) - orig).mean()
    assert err_after < err_before / 4
    # the boundary reference also pulls the inside toward the surround
    fixed_b = seams.match_colour(drifted, orig, hard, reference="boundary")
    assert np.abs(fixed_b[hard > 0].astype(int) - orig[hard > 0]).mean() < err_before
    with pytest.raises(ValueError):
        seams.match_colour(drifted, orig, hard, reference="nope")


def test_match_colour_is_identity_without_drift():
    img, m = _scene()
    gen = img.copy()
    gen[m > 0] = 0  # new content inside, surround reproduced exactly (classical backend)
    assert seams.match_colour(gen, img, m) is gen


def test_seam_score_identity_is_one_and_a_step_raises_it():
    img, m = _scene()
    assert seams.seam_score(img, img, m, blur=4) == pytest.approx(1.0)
    shifted = np.clip(img.astype(int) + 40, 0, 255).astype(np.uint8)
    w = maskops.feather(m, 4)[..., None]
    stepped = np.rint(img * (1 - w) + shifted * w).astype(np.uint8)
    assert seams.seam_score(img, stepped, m, blur=4) > 1.1
    assert seams.seam_step(img, stepped, m) > 10
    assert abs(seams.seam_step(img, img, m)) < 1e-6
    with pytest.raises(ValueError):
        seams.seam_score(img, img, np.zeros_like(m), blur=4)


def test_the_one_16_to_8_bit_rule_rounds_every_value_like_integer_arithmetic():
    values = np.arange(65536, dtype=np.uint16)
    expected = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    for shape in ((65536,), (256, 256), (128, 128, 4), (64, 1024)):
        got = compositing.to_8bit(values[: int(np.prod(shape))].reshape(shape))
        assert got.dtype == np.uint8 and np.array_equal(got.reshape(-1), expected[: got.size])
    rgb = np.random.default_rng(2).integers(0, 65536, (17, 23, 3), dtype=np.uint16)
    assert np.array_equal(compositing.to_8bit(rgb), ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8))
