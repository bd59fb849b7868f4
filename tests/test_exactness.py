"""Outside the feathered mask every pixel of the result is bit-identical to the input, for every
backend, pixel format and size, across repeated edits and through saving to disk."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ImageCms
from skimage import data

from app.core import maskops, seams
from app.core.geometry import Bounds
from app.core.imageio import load_image, save_image
from app.inference.classical import ClassicalBackend
from app.inference.engine import Engine, Job
from app.core.params import GenerationParams

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket"]


class NoiseBackend:
    """A model-size backend whose output is pure noise: the worst case for exactness."""

    name = "fake:noise"
    native_resolution = False

    def generate(self, request, progress, cancelled):
        out = []
        for seed in request.seeds:
            rng = np.random.default_rng(seed)
            progress(1, 1, None)
            out.append(rng.integers(0, 256, request.image.shape, dtype=np.uint8))
        return out


class ShiftBackend:
    """Returns its input colour-shifted everywhere, like a drifting VAE round trip."""

    name = "fake:shift"
    native_resolution = False
    shift = np.array([28, -18, 12])

    def generate(self, request, progress, cancelled):
        out = np.clip(request.image.astype(np.int16) + self.shift, 0, 255).astype(np.uint8)
        return [out for _ in request.seeds]


BACKENDS = {"classical": ClassicalBackend, "noise": NoiseBackend, "shift": ShiftBackend}


def _params(backend: str, **kw) -> GenerationParams:
    model = "builtin:telea" if backend == "classical" else "/models/fake"
    return GenerationParams(model=model, seed=kw.pop("seed", 3), **kw)


def blob_mask(shape, seed=0, count=3):
    rng = np.random.default_rng(seed)
    h, w = shape
    m = np.zeros((h, w), np.uint8)
    for _ in range(count):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        rx, ry = int(rng.integers(1, max(2, w // 8))), int(rng.integers(1, max(2, h // 8)))
        yy, xx = np.ogrid[:h, :w]
        m[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = 255
    if not m.any():
        m[h // 2, w // 2] = 255
    return m


def changeable(mask: np.ndarray, params: GenerationParams) -> np.ndarray:
    """Pixels the feathered mask lets change (weight > 0)."""
    return maskops.feather(maskops.grow(maskops.binarize(mask), params.mask_grow), params.mask_blur) > 0


def assert_exact_outside(before: np.ndarray, after: np.ndarray, allowed: np.ndarray) -> None:
    assert after.shape == before.shape and after.dtype == before.dtype
    assert np.array_equal(after[~allowed], before[~allowed]), "a pixel outside the feathered mask changed"
    if before.ndim == 3 and before.shape[2] == 4:
        assert np.array_equal(after[..., 3], before[..., 3]), "alpha changed"


def as_layout(photo: np.ndarray, layout: str) -> np.ndarray:
    gray = (photo @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    rng = np.random.default_rng(1)
    alpha = rng.integers(0, 256, photo.shape[:2], dtype=np.uint8)
    base = {"rgb": photo, "gray": gray, "rgba": np.dstack([photo, alpha])}[layout[:-2] if layout.endswith("16") else layout]
    if layout.endswith("16"):
        noise = rng.integers(0, 257, base.shape, dtype=np.uint16)  # use all 16 bits, not just ×257
        return base.astype(np.uint16) * 256 + noise % 256
    return base


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_real_photos_every_backend(photo, backend):
    img = getattr(data, photo)()
    mask = blob_mask(img.shape[:2], seed=len(photo))
    params = _params(backend)
    result = Engine(BACKENDS[backend]()).run(Job(params, img, mask))
    out = result.candidates[0].image
    allowed = changeable(mask, params)
    assert_exact_outside(img, out, allowed)
    if backend != "classical":
        assert not np.array_equal(out[mask > 0], img[mask > 0])  # the backend really did something


@pytest.mark.parametrize("layout", ["rgb", "rgba", "gray", "rgb16", "rgba16", "gray16"])
@pytest.mark.parametrize("backend", ["classical", "noise"])
def test_every_pixel_format(layout, backend):
    img = as_layout(data.coffee(), layout)
    mask = blob_mask(img.shape[:2], seed=5)
    params = _params(backend, mask_grow=2, batch_size=2)
    result = Engine(BACKENDS[backend]()).run(Job(params, img, mask))
    for cand in result.candidates:
        assert_exact_outside(img, cand.image, changeable(mask, params))


@pytest.mark.parametrize("shape", [(1, 97), (97, 1), (16, 16), (17, 33), (7, 1000), (513, 511)])
@pytest.mark.parametrize("backend", ["classical", "noise"])
def test_odd_sizes(shape, backend):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    mask = blob_mask(shape, seed=2, count=2)
    params = _params(backend)
    out = Engine(BACKENDS[backend]()).run(Job(params, img, mask)).candidates[0].image
    assert_exact_outside(img, out, changeable(mask, params))


@pytest.mark.parametrize("area", ["whole", "masked"])
def test_whole_image_mode_and_context_box_stay_exact(area):
    img = data.rocket()
    mask = blob_mask(img.shape[:2], seed=9, count=1)
    params = _params("noise", inpaint_area=area)
    ctx = None if area == "whole" else Bounds(0, 0, 300, 200)
    out = Engine(NoiseBackend()).run(Job(params, img, mask, context=ctx)).candidates[0].image
    assert_exact_outside(img, out, changeable(mask, params))


def test_ten_successive_inpaints_through_16bit_files(tmp_path):
    """Ten edits of different areas, each saved as 16-bit RGBA PNG/TIFF with an ICC profile and
    reopened: pixels no mask ever touched are identical to the very first image."""
    base = as_layout(data.astronaut(), "rgba16")
    current = base
    touched = np.zeros(base.shape[:2], bool)
    for i in range(10):
        mask = blob_mask(base.shape[:2], seed=100 + i, count=1)
        backend = ["noise", "shift", "classical"][i % 3]
        params = _params(backend, seed=i, mask_blur=[0, 4, 9][i % 3])
        out = Engine(BACKENDS[backend]()).run(Job(params, current, mask)).candidates[0].image
        touched |= changeable(mask, params)
        path = tmp_path / f"step{i}.{'png' if i % 2 else 'tiff'}"
        save_image(path, out, params=params, icc_profile=SRGB)
        loaded = load_image(path)
        assert loaded.icc_profile == SRGB
        assert np.array_equal(loaded.pixels, out)  # the file holds exactly what was computed
        current = loaded.pixels
    assert touched.mean() < 0.5
    assert_exact_outside(base, current, touched)


def test_img2img_changes_the_whole_image_but_not_alpha():
    img = as_layout(data.chelsea(), "rgba")
    params = GenerationParams(model="/models/fake", mode="img2img", strength=0.75, seed=1)
    out = Engine(NoiseBackend()).run(Job(params, img, None)).candidates[0].image
    assert np.mean(out[..., :3] != img[..., :3]) > 0.9
    assert np.array_equal(out[..., 3], img[..., 3])


def test_img2img_with_a_mask_changes_only_the_mask():
    img = data.chelsea()
    mask = blob_mask(img.shape[:2], seed=4)
    params = GenerationParams(model="/models/fake", mode="img2img", strength=0.5, seed=1)
    out = Engine(NoiseBackend()).run(Job(params, img, mask)).candidates[0].image
    assert_exact_outside(img, out, changeable(mask, params))


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 120),
    w=st.integers(1, 120),
    seed=st.integers(0, 10_000),
    blur=st.integers(0, 12),
    grow=st.integers(0, 6),
    padding=st.integers(0, 40),
    layout=st.sampled_from(["rgb", "rgba16", "gray"]),
)
def test_exactness_property(h, w, seed, blur, grow, padding, layout):
    rng = np.random.default_rng(seed)
    img = as_layout(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), layout)
    mask = blob_mask((h, w), seed=seed, count=2)
    params = _params("noise", mask_blur=blur, mask_grow=grow, padding=padding, seed=seed)
    out = Engine(NoiseBackend()).run(Job(params, img, mask)).candidates[0].image
    assert_exact_outside(img, out, changeable(mask, params))


def test_colour_matching_lowers_the_seam_score_of_a_drifting_backend():
    img = data.coffee()
    mask = blob_mask(img.shape[:2], seed=11, count=2)
    scores, steps = {}, {}
    for match in (False, True):
        params = _params("shift", color_match="on" if match else "off")
        out = Engine(ShiftBackend()).run(Job(params, img, mask)).candidates[0].image
        scores[match] = seams.seam_score(img, out, mask, params.mask_blur)
        steps[match] = seams.seam_step(img, out, mask)
        assert_exact_outside(img, out, changeable(mask, params))
    assert scores[True] < scores[False]
    assert scores[True] < 1.05
    assert steps[False] > 5 and abs(steps[True]) < 1.5  # the colour step is gone


def test_long_scratch_across_a_large_scan_is_tiled_exact_and_complete():
    """A diagonal scratch over a 2400×1600 scan: several model-sized tiles, every scratched
    pixel repainted, nothing outside the feathered scratch touched."""
    import cv2

    img = np.ascontiguousarray(cv2.resize(data.astronaut(), (2400, 1600), interpolation=cv2.INTER_CUBIC))
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.line(mask, (50, 80), (2350, 1500), 255, 5)
    params = _params("noise")
    result = Engine(NoiseBackend()).run(Job(params, img, mask))
    assert len(result.regions) >= 3
    out = result.candidates[0].image
    assert_exact_outside(img, out, changeable(mask, params))
    assert np.mean(np.any(out[mask > 0] != img[mask > 0], axis=1)) > 0.99


def test_tiles_do_not_show_the_model_other_tiles_damage():
    """A tile's model input has the neighbouring tiles' part of the scratch filled in, so the
    model is never shown a scratch to continue; only its own part is left to it."""
    import cv2

    img = np.full((1600, 2400, 3), 100, np.uint8)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.line(mask, (50, 80), (2350, 1500), 255, 5)
    img[mask > 0] = 255
    seen = []

    class Spy(NoiseBackend):
        def generate(self, request, progress, cancelled):
            seen.append(int(request.image[request.mask == 0].max()))
            return super().generate(request, progress, cancelled)

    result = Engine(Spy()).run(Job(_params("noise"), img, mask))
    assert len(result.regions) >= 3 and len(seen) == len(result.regions)
    assert max(seen) < 150, seen
