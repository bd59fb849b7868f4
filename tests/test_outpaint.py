"""Expand canvas: original pixels bit-exact at their new place, fills, mask, context box, parsing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.geometry import Bounds
from app.core.outpaint import (
    FILL_MODES,
    ExpandError,
    Expansion,
    context_box_for,
    expand_mask,
    expand_pixels,
    expansion_for_aspect,
    parse_aspect,
    parse_expansion,
)

EXP = Expansion(37, 0, 64, 5)


def _images():
    rng = np.random.default_rng(7)
    return {
        "rgb8": rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),
        "rgba16": rng.integers(0, 65536, (40, 50, 4), dtype=np.uint16),
        "gray8": rng.integers(0, 256, (40, 50), dtype=np.uint8),
        "gray16": rng.integers(0, 65536, (40, 50), dtype=np.uint16),
    }


@pytest.mark.parametrize("fill", list(FILL_MODES))
@pytest.mark.parametrize("kind", list(_images()))
def test_expand_keeps_every_original_pixel_bit_exact(kind, fill):
    img = _images()[kind]
    out = expand_pixels(img, EXP, fill)
    assert out.dtype == img.dtype
    assert out.shape == (40 + 5, 50 + 37 + 64) + img.shape[2:]
    assert np.array_equal(out[0:40, 37:87], img)


def test_fills_continue_the_border_colour():
    img = np.zeros((30, 30, 3), np.uint8)
    img[:, :] = (200, 50, 10)
    for fill in ("stretch", "inpaint", "blur"):
        out = expand_pixels(img, Expansion(0, 0, 20, 0), fill)
        assert np.abs(out[:, 30:].astype(int) - (200, 50, 10)).max() <= 6, fill  # Telea drifts a few levels
    solid = expand_pixels(img, Expansion(0, 0, 20, 0), "solid", (0, 255, 0))
    assert (solid[:, 30:] == (0, 255, 0)).all()


def test_solid_fill_is_opaque_and_scaled_on_rgba16():
    img = np.zeros((4, 4, 4), np.uint16)
    out = expand_pixels(img, Expansion(0, 2, 0, 0), "solid", (255, 0, 0))
    assert out[0, 0].tolist() == [65535, 0, 0, 65535]


def test_mask_new_area_is_painted_old_mask_kept():
    mask = np.zeros((40, 50), np.uint8)
    mask[3:9, 4:7] = 99
    out = expand_mask(mask, EXP)
    assert np.array_equal(out[0:40, 37:87], mask)
    new = np.ones(out.shape, bool)
    new[0:40, 37:87] = False
    assert (out[new] == 255).all()


def test_context_box_holds_new_area_and_old_border():
    assert context_box_for(100, 80, Expansion(0, 0, 50, 0), border=16) == Bounds(84, 0, 66, 80)
    assert context_box_for(100, 80, Expansion(0, 30, 0, 0), border=16) == Bounds(0, 0, 100, 46)
    assert context_box_for(100, 80, EXP) == Bounds(0, 0, 201, 85)


def test_aspect_presets_only_grow_and_hit_the_ratio():
    for ratio in ((3, 2), (4, 3), (16, 9), (1, 1), (5, 7)):
        exp = expansion_for_aspect(300, 200, ratio)
        w, h = exp.new_size(300, 200)
        assert w >= 300 and h >= 200
        assert abs(w / h - ratio[0] / ratio[1]) < 0.01
    left = expansion_for_aspect(300, 200, (2, 1), anchor=(0.0, 0.5))
    assert left.left == 0 and left.right == 100


def test_parsing_and_bad_input_messages():
    assert parse_expansion("37, 0,64,5") == EXP
    assert parse_aspect("16:9") == (16, 9)
    for bad in ("1,2,3", "a,b,c,d", "-1,0,0,0", ""):
        with pytest.raises(ExpandError, match="LEFT,TOP,RIGHT,BOTTOM"):
            parse_expansion(bad)
    with pytest.raises(ExpandError, match="W:H"):
        parse_aspect("wide")
    with pytest.raises(ExpandError, match="not one of"):
        expand_pixels(np.zeros((2, 2), np.uint8), EXP, "sparkle")
    with pytest.raises(ExpandError, match="MP limit"):
        expand_pixels(np.zeros((2, 2), np.uint8), Expansion(0, 0, 200000, 200000))


@settings(max_examples=60, deadline=None)
@given(
    sides=st.tuples(*(st.integers(0, 40),) * 4),
    shape=st.sampled_from([(7, 9), (7, 9, 3), (5, 11, 4), (1, 1), (1, 6, 3)]),
    dtype=st.sampled_from([np.uint8, np.uint16]),
    fill=st.sampled_from(list(FILL_MODES)),
    seed=st.integers(0, 2**16),
)
def test_any_expansion_keeps_the_original_exactly(sides, shape, dtype, fill, seed):
    img = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    exp = Expansion(*sides)
    out = expand_pixels(img, exp, fill)
    h, w = shape[:2]
    assert out.shape == (h + sides[1] + sides[3], w + sides[0] + sides[2]) + shape[2:] and out.dtype == dtype
    assert np.array_equal(out[sides[1] : sides[1] + h, sides[0] : sides[0] + w], img)
    box = context_box_for(w, h, exp)
    assert Bounds.of_image(*exp.new_size(w, h)).contains(box)
