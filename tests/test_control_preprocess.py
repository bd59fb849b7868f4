"""The built-in ControlNet preprocessors (app/core/control_preprocess.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.control_preprocess import BUILT_IN, MODEL_FILES, PreprocessorModelMissing, inpaint_condition, preprocess
from app.core.errors import UserError
from app.core.guides import CONTROL_MODULES
from app.core.params import ParamError


def square(size: int = 64) -> np.ndarray:
    """A white square on black: every edge detector finds its outline and nothing else."""
    img = np.zeros((size, size, 3), np.uint8)
    img[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    return img


def test_every_control_module_is_built_in_or_names_its_model():
    assert set(BUILT_IN) | set(MODEL_FILES) == set(CONTROL_MODULES)


def test_none_normalises_gray_rgba_and_16_bit_to_a_new_rgb8_array():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(preprocess("none", gray), np.repeat(gray[:, :, None], 3, axis=2))
    rgba = np.dstack([square(8), np.full((8, 8), 7, np.uint8)])
    assert np.array_equal(preprocess("none", rgba), square(8))
    sixteen = (square(8).astype(np.uint16) * 257)
    assert np.array_equal(preprocess("none", sixteen), square(8))
    rgb = square(8)
    out = preprocess("none", rgb)
    assert out is not rgb and not np.shares_memory(out, rgb)


def test_canny_finds_the_squares_outline_only():
    out = preprocess("canny", square())
    edges = out[:, :, 0]
    assert set(np.unique(edges)) == {0, 255}
    assert np.array_equal(out[:, :, 0], out[:, :, 2])
    ys, xs = np.nonzero(edges)
    assert ys.min() >= 14 and ys.max() <= 49 and xs.min() >= 14 and xs.max() <= 49
    assert edges[32, 32] == 0 and edges[2, 2] == 0  # inside and outside are flat
    # A faint square's gradient stays under the default high threshold: no edges; lower ones find it.
    faint = square() // 8
    assert not preprocess("canny", faint).any()
    assert preprocess("canny", faint, low_threshold=20, high_threshold=40).any()


def test_softedge_is_soft_and_strongest_on_the_edge():
    out = preprocess("softedge", square())[:, :, 0]
    assert out[16, 32] > 200 and out[32, 32] == 0 and out[2, 2] == 0
    assert len(np.unique(out)) > 10  # grey levels, not a binary map
    assert not preprocess("softedge", np.full((16, 16, 3), 90, np.uint8)).any()


def test_softedge_on_a_big_image_works_at_reduced_scale_and_returns_full_size():
    img = cv2.resize(square(), (3000, 2000), interpolation=cv2.INTER_NEAREST)
    out = preprocess("softedge", img)
    assert out.shape == (2000, 3000, 3)
    assert out[500, 1500, 0] > 150 and out[1000, 1500, 0] == 0


def test_scribble_gives_thick_binary_lines():
    out = preprocess("scribble", square())[:, :, 0]
    assert set(np.unique(out)) == {0, 255}
    assert out[32, 32] == 0 and out[0, 0] == 0
    # A line several pixels thick across the top edge of the square, at x = 32.
    column = out[8:24, 32]
    assert column.sum() // 255 >= 2


def test_lineart_turns_dark_lines_on_white_into_white_on_black():
    img = np.full((64, 64, 3), 255, np.uint8)
    img[30:33, 8:56] = 0
    out = preprocess("lineart", img)[:, :, 0]
    assert out[31, 32] > 100 and out[5, 5] == 0


def test_mlsd_draws_the_straight_sides_and_drops_short_segments():
    img = np.zeros((200, 300, 3), np.uint8)
    cv2.rectangle(img, (50, 40), (250, 160), (255, 255, 255), -1)
    out = preprocess("mlsd", img)[:, :, 0]
    assert set(np.unique(out)) == {0, 255}
    for y, x in ((39, 150), (160, 150), (100, 49), (100, 250)):  # each side, at the edge between the areas
        assert out[y - 1: y + 2, x - 1: x + 2].any(), (y, x)
    assert not out[60:140, 70:230].any() and not out[:30].any()
    assert not preprocess("mlsd", img, min_length=1.0).any()  # no segment is as long as the diagonal


def test_tile_and_blur_keep_colour_and_lose_detail():
    img = square()
    assert np.array_equal(preprocess("tile", img), img)  # A1111's default rate 1: as is
    tiled = preprocess("tile", img, down_sampling_rate=8)
    blurred = preprocess("blur", img, sigma=4)
    for out in (tiled, blurred):
        assert out.shape == img.shape
        assert 0 < out[16, 16, 0] < 255  # the sharp corner is gone
        assert abs(float(out.mean()) - float(img.mean())) < 8


def test_shuffle_is_deterministic_per_seed_and_keeps_the_palette():
    img = square()
    a, b = preprocess("shuffle", img, seed=3), preprocess("shuffle", img, seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, preprocess("shuffle", img, seed=4)) or not np.array_equal(a, img)
    assert a.min() >= 0 and a.max() <= 255


def test_inpaint_marks_masked_pixels_and_its_condition_is_minus_one_there():
    img = np.full((8, 8, 3), 200, np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 255
    mask[5, 5] = 127  # below the binarize threshold: not masked
    out = preprocess("inpaint", img, mask)
    assert (out[2:4, 2:4] == 0).all() and (out[5, 5] == 200).all()
    cond = inpaint_condition(img, mask)
    assert cond.dtype == np.float32 and cond.shape == (8, 8, 3)
    assert (cond[2:4, 2:4] == -1.0).all()
    assert np.allclose(cond[0, 0], 200 / 255) and np.allclose(cond[5, 5], 200 / 255)
    with pytest.raises(ParamError, match="needs the mask"):
        preprocess("inpaint", img)
    with pytest.raises(ParamError, match="size"):
        preprocess("inpaint", img, np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("module", sorted(MODEL_FILES))
def test_model_modules_say_which_file_they_need(module):
    with pytest.raises(PreprocessorModelMissing) as info:
        preprocess(module, square())
    assert isinstance(info.value, UserError)
    assert MODEL_FILES[module].split()[0] in str(info.value)
    assert "import it into the control layer" in str(info.value)


def test_bad_module_option_and_image_are_param_errors():
    with pytest.raises(ParamError, match="one of"):
        preprocess("sobel", square())
    with pytest.raises(ParamError, match="not an option of canny"):
        preprocess("canny", square(), sigma=2)
    with pytest.raises(ParamError, match="from 0 to 1000"):
        preprocess("canny", square(), low_threshold=-1)
    with pytest.raises(ParamError, match="finite"):
        preprocess("blur", square(), sigma=float("nan"))
    for bad in (np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros(5, np.uint8)):
        with pytest.raises(ParamError, match="image"):
            preprocess("canny", bad)


@settings(max_examples=40, deadline=None)
@given(
    module=st.sampled_from(BUILT_IN),
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    channels=st.sampled_from([None, 1, 3, 4]),
    dtype=st.sampled_from([np.uint8, np.uint16, np.bool_]),
    seed=st.integers(0, 2**16),
)
def test_output_is_always_hxwx3_uint8(module, height, width, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels is None else (height, width, channels)
    if dtype is np.bool_:
        image = rng.random(shape) > 0.5
    else:
        image = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True, dtype=dtype)
    mask = (rng.random((height, width)) > 0.5).astype(np.uint8) * 255
    out = preprocess(module, image, mask)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8


def _whole_image_scribble(rgb: np.ndarray, threshold: float = 32.0) -> np.ndarray:
    """A1111's scribble_xdog as written there: whole-image float filters."""
    x = rgb.astype(np.float32)
    g1, g2 = cv2.GaussianBlur(x, (0, 0), 0.5), cv2.GaussianBlur(x, (0, 0), 5.0)
    dog = (255.0 - np.min(g2 - g1, axis=2)).clip(0, 255).astype(np.uint8)
    out = np.zeros(rgb.shape[:2], np.uint8)
    out[2 * (255 - dog.astype(np.int32)) > threshold] = 255
    return np.repeat(out[:, :, None], 3, axis=2)


def _whole_image_lineart(rgb: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    """A1111's lineart_standard as written there."""
    x = rgb.astype(np.float32)
    intensity = np.min(cv2.GaussianBlur(x, (0, 0), sigma) - x, axis=2).clip(0, 255)
    strong = intensity[intensity > 8]
    intensity /= max(16.0, float(np.median(strong)) if strong.size else 16.0)
    intensity *= 127
    return np.repeat(intensity.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (33, 20, 3), (70, 41, 3), (16, 90, 3)])
def test_banded_filters_equal_the_whole_image_ones_bit_for_bit(monkeypatch, shape):
    from app.core import control_preprocess

    monkeypatch.setattr(control_preprocess, "BAND_ROWS", 8)  # many bands, edges inside the blur reach
    img = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    img[shape[0] // 3:, : shape[1] // 2] //= 4  # dark and light areas: lines of both kinds
    assert np.array_equal(preprocess("scribble", img), _whole_image_scribble(img))
    for sigma in (0.5, 6.0, 20.0):
        assert np.array_equal(preprocess("lineart", img, sigma=sigma), _whole_image_lineart(img, sigma))
