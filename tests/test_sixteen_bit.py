"""16-bit images: the feathered ring blends with the original's own 16-bit values, so a pixel the
model left at the original's 8-bit value keeps its exact 16-bit value (it used to move by up to
115/65535 next to the mask, from an 8-bit copy of the original)."""

import numpy as np
import pytest

from app.core import compositing, maskops
from app.core.params import GenerationParams
from app.inference.classical import ClassicalBackend
from app.inference.engine import Engine, Job


@pytest.mark.parametrize("layout", ["rgb", "rgba", "gray"])
def test_classical_16_bit_keeps_every_pixel_outside_the_hard_mask(layout):
    rng = np.random.default_rng(3)
    shape = {"rgb": (96, 120, 3), "rgba": (96, 120, 4), "gray": (96, 120)}[layout]
    image = rng.integers(0, 65536, shape, dtype=np.uint16)
    mask = np.zeros((96, 120), np.uint8)
    mask[30:60, 40:80] = 255
    params = GenerationParams(model="builtin:telea", mask_blur=8, seed=1)
    out = Engine(ClassicalBackend()).run(Job(params, image, mask)).candidates[0].image
    outside = maskops.binarize(mask) == 0
    # OpenCV's inpaint leaves unmasked pixels at their 8-bit value: the composite must then give
    # back the exact 16-bit original, ring included.
    assert np.array_equal(out[outside], image[outside])
    assert not np.array_equal(out[~outside], image[~outside])


def test_native_like_restores_the_residual_and_moves_with_the_model():
    original = np.array([[[1000, 40000, 65535]]], np.uint16)
    ring = np.array([[0.5]], np.float32)
    same = compositing.to_rgb8(original)
    assert np.array_equal(compositing.native_like(same, original, ring), original)
    brighter = np.clip(same.astype(int) + 10, 0, 255).astype(np.uint8)
    moved = compositing.native_like(brighter, original, ring).astype(int) - original.astype(int)
    assert moved[0, 0, 0] == 2570 and moved[0, 0, 1] == 2570 and moved[0, 0, 2] == 0  # clipped at white
    full = compositing.native_like(brighter, original, np.ones((1, 1), np.float32))
    assert np.array_equal(full, brighter.astype(np.uint16) * 257)  # repainted: no trace of the old value
