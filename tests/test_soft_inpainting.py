"""Soft inpainting (differential diffusion, A1111's parameters) on the tiny random models: a 0 %
mask pixel stays bit-identical, and the change grows with the mask's grey level on a fixed seed."""

import numpy as np
import pytest

from app.core.guides import SoftInpainting
from app.core.params import GenerationParams
from app.core.soft_composite import blend_weights, soft_mask
from app.inference.diffusers import soft_inpaint
from app.inference.engine import BackendRequest, Engine, Job
from test_diffusion import base, inpaint  # noqa: F401 (fixtures: the tiny models, loaded once per module)

LEVELS = (0, 64, 128, 191, 255)  # 0 / 25 / 50 / 75 / 100 %


def banded(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth gradient image and a mask of vertical bands at each of `LEVELS`."""
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([yy * 255 // height, xx * 255 // width, (xx + yy) * 127 // (width + height)], -1).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    band = width // len(LEVELS)
    for k, level in enumerate(LEVELS):
        mask[:, k * band:(k + 1) * band] = level
    return image, mask




@pytest.mark.parametrize("kind", ["base", "inpaint"])
def test_zero_mask_pixels_stay_bit_identical_and_grey_pixels_change(kind, request):
    backend = request.getfixturevalue(kind)
    image, mask = banded(80, 48)
    params = GenerationParams(prompt="a wall", model=backend.name, steps=2, guidance=1.0, seed=3, mask_blur=0,
                              scheduler="DDIM", soft_inpainting=SoftInpainting(difference_threshold=0.0))
    out = Engine(backend).run(Job(params, image, mask)).candidates[0].image
    assert np.array_equal(out[mask == 0], image[mask == 0])
    for level in LEVELS[1:]:  # a 25 % pixel changes too (a hard mask would binarise it away)
        assert not np.array_equal(out[mask == level], image[mask == level])
    hard = Engine(backend).run(Job(params.replace(soft_inpainting=None), image, mask)).candidates[0].image
    assert np.array_equal(hard[mask == 64], image[mask == 64])


def test_change_grows_with_the_mask_value_on_a_fixed_seed(inpaint, monkeypatch):
    """Measured on the final latents against the original's (a random VAE cannot reproduce an
    image, so pixel differences would measure the VAE): 0 % ≈ 0 < 25 % < 50 % < 75 % < 100 %."""
    image, mask = banded(320, 128)
    blends, finals = [], []
    make = soft_inpaint.SoftBlend.__init__
    monkeypatch.setattr(soft_inpaint.SoftBlend, "__init__", lambda self, *a: (make(self, *a), blends.append(self))[0])
    decode = inpaint.decoder.decode
    monkeypatch.setattr(inpaint.decoder, "decode", lambda pipe, latents, g=None: (finals.append(latents), decode(pipe, latents, g))[1])
    params = GenerationParams(prompt="a wall", steps=8, guidance=1.0, seed=3, scheduler="DDIM",
                              soft_inpainting=SoftInpainting())
    inpaint.generate(BackendRequest(image, np.where(mask >= 128, 255, 0).astype(np.uint8), params, (3,), soft_mask=mask),
                     lambda *a: None, lambda: False)
    distance = (finals[0] - blends[0].original).norm(dim=1)[0]
    cells = distance.shape[1] // len(LEVELS)
    change = [float(distance[:, k * cells + 1:(k + 1) * cells - 1].mean()) for k in range(len(LEVELS))]
    assert change[0] < 0.2 * change[1]
    assert change == sorted(change) and len(set(change)) == len(change), change


def test_composite_weights_follow_the_difference_and_are_zero_outside_the_mask():
    original = np.full((64, 64, 3), 100, np.uint8)
    generated = original.copy()
    generated[:, 32:] = 250  # the right half changed a lot, the left not at all
    soft = np.full((64, 64), 128, np.uint8)
    soft[:8] = 0
    weights = blend_weights(original, generated, soft, SoftInpainting())
    assert weights.dtype == np.float32 and weights.shape == soft.shape
    assert (weights[:8] == 0).all()
    assert weights[20:, 56:].min() > 0.95 and weights[20:, :6].max() < 0.05


def test_soft_mask_keeps_unpainted_pixels_at_zero_and_painted_ones_above():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    mask[20, 35] = 3
    soft = soft_mask(mask, blur=4)
    assert soft[0, 0] == 0 and soft[20, 20] >= 240 and soft[20, 35] >= 1
    assert 0 < soft[20, 9] < 255  # the blur makes a soft edge
    assert np.array_equal(soft_mask(mask, 0), mask)


@pytest.mark.parametrize("scheduler", ["Euler a", "DPM++ 2M Karras"])
def test_the_soft_blend_adds_no_host_round_trip_to_a_step(inpaint, scheduler, monkeypatch):
    """The per-step blend runs on the device (σ from the ᾱ table there): steps 2…N−1 stay free of
    host syncs, as `tests/test_gpu_pace.py` requires of every step."""
    import dataclasses

    import torch
    from test_gpu_pace import HostSyncs, make_request

    steps = 6
    request = make_request(steps=steps, scheduler=scheduler, soft_inpainting=SoftInpainting())
    request = dataclasses.replace(request, soft_mask=(request.mask // 2).astype(np.uint8))
    monkeypatch.setattr(inpaint, "preview_interval_s", 1e9)  # previews have their own test there
    mode = HostSyncs()

    def progress(step, total, preview):
        mode.step = step
        sched = inpaint.pipeline_for("inpaint").scheduler
        mode.host |= {t.untyped_storage().data_ptr() for t in vars(sched).values()
                      if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t is not sched.timesteps}

    with mode:
        inpaint.generate(request, progress, lambda: False)
    per_step = {s: sum(n for (k, _), n in mode.counts.items() if k == s) for s in range(1, steps - 1)}
    assert per_step == {s: 0 for s in range(1, steps - 1)}, mode.counts
