"""DiffusionBackend on tiny random-weight models: exactness against diffusers, seeds, progress,
cancel, mode switching, the fp16 VAE guard, out-of-memory, and the engine end to end."""

import numpy as np
import pytest
import torch
from PIL import Image

from app.inference.engine import BackendRequest, Cancelled, Engine, Job
from app.inference.errors import GpuOutOfMemory, ModelLoadError
from app.inference.registry import LoadOptions, load_backend
from app.inference.diffusers.backend import make_scheduler
from app.core.params import GenerationParams
from tinymodels import VAE_SCALE

SIZE = 64  # model input; the tiny VAE downsamples ×8 (VAE_SCALE), so latents are 8×8


@pytest.fixture(scope="module")
def inpaint(tiny_inpaint_model):
    return load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))


@pytest.fixture(scope="module")
def base(tiny_base_model):
    return load_backend(str(tiny_base_model), LoadOptions(device="cpu"))


def make_request(seeds=(11,), size=SIZE, **kw):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    kw = {"prompt": "a stone wall", "steps": 1, "guidance": 1.0, "scheduler": "Euler a", **kw}
    params = GenerationParams(seed=seeds[0], batch_size=len(seeds), **kw)
    return BackendRequest(image, mask, params, tuple(seeds))


def run(backend, request, progress=None, cancelled=None):
    return backend.generate(request, progress or (lambda *a: None), cancelled or (lambda: False))


# -- exactness against plain diffusers --------------------------------------------------------------
@pytest.mark.parametrize("kind, mode", [("inpaint", "inpaint"), ("base", "inpaint"), ("base", "img2img")])
def test_diffusion_pass_equals_plain_diffusers(kind, mode, tiny_inpaint_model, tiny_base_model, request):
    """Our backend's pixels are exactly those of a direct diffusers pipeline call with the same
    inputs: same model folder, prompt, image, mask, scheduler, steps, guidance, strength, seed."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

    backend = request.getfixturevalue(kind)
    folder = tiny_inpaint_model if kind == "inpaint" else tiny_base_model
    req = make_request(mode=mode, strength=0.8 if mode == "img2img" else 1.0, negative_prompt="blurry",
                       scheduler="DPM++ 2M Karras", steps=2, guidance=5.0)
    ours = run(backend, req)[0]

    cls = StableDiffusionImg2ImgPipeline if mode == "img2img" else StableDiffusionInpaintPipeline
    pipe = cls.from_pretrained(str(folder), local_files_only=True, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = make_scheduler("DPM++ 2M Karras", pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    extra = {"mask_image": Image.fromarray(req.mask), "height": SIZE, "width": SIZE} if mode == "inpaint" else {}
    theirs = pipe(prompt="a stone wall", negative_prompt="blurry", image=Image.fromarray(req.image),
                  strength=req.params.strength, num_inference_steps=2, guidance_scale=5.0,
                  generator=torch.Generator("cpu").manual_seed(11), **extra).images[0]
    assert np.array_equal(ours, np.asarray(theirs))


# -- seeds ----------------------------------------------------------------------------------------
def test_same_seed_same_pixels_and_batch_items_equal_single_runs(inpaint):
    batch = run(inpaint, make_request(seeds=(100, 101, 102)))
    assert len(batch) == 3
    again = run(inpaint, make_request(seeds=(100,)))[0]
    single = run(inpaint, make_request(seeds=(102,)))[0]
    assert np.array_equal(batch[0], again)
    assert np.array_equal(batch[2], single)  # batch item k == a single run with seed s+k
    assert not np.array_equal(batch[0], batch[1])  # different seeds, different images


# -- progress and preview ----------------------------------------------------------------------------
def test_64_bit_seeds_reach_the_generator_whole(inpaint):
    """A seed up to 2**64 - 1 goes to torch.Generator.manual_seed as it is. torch's CPU generator
    (mt19937) draws from the seed's low 32 bits — exactly as ComfyUI's CPU noise
    (``torch.manual_seed(seed)`` in comfy.sample.prepare_noise), so its 64-bit seeds reproduce."""
    top = run(inpaint, make_request(seeds=(2**64 - 1,), steps=2))[0]
    assert np.array_equal(top, run(inpaint, make_request(seeds=(2**64 - 1,), steps=2))[0])
    f = lambda s: torch.randn(8, generator=torch.Generator("cpu").manual_seed(s))  # noqa: E731
    assert torch.equal(f(2**64 - 1), f(2**32 - 1)) and torch.equal(f(17123564234), f(17123564234 % 2**32))
    assert np.array_equal(top, run(inpaint, make_request(seeds=(2**32 - 1,), steps=2))[0])


def test_progress_every_step_with_latent_preview(inpaint):
    calls = []
    run(inpaint, make_request(seeds=(1, 2), steps=3, scheduler="DDIM"), lambda s, t, p: calls.append((s, t, p)))
    assert [(s, t) for s, t, _ in calls] == [(i, 6) for i in range(1, 7)]  # 3 steps × 2 items
    preview = calls[-1][2]
    assert preview.dtype == np.uint8 and preview.shape == (SIZE // VAE_SCALE, SIZE // VAE_SCALE, 3)
    assert preview.std() > 0


def test_preview_is_the_linear_latent_approximation():
    from app.inference.diffusers.preview import SD15_LATENT_RGB_FACTORS, latents_to_rgb

    latents = torch.zeros(1, 4, 2, 2)
    latents[0, 0] = 1.0  # channel 0 only: colour = first row of the factor matrix
    rgb = latents_to_rgb(latents)
    expected = np.round((np.array(SD15_LATENT_RGB_FACTORS[0]) + 1) * 127.5).astype(np.uint8)
    assert np.array_equal(rgb[0, 0], expected)
    assert np.array_equal(latents_to_rgb(latents.numpy()), rgb)


# -- cancel ---------------------------------------------------------------------------------------
def test_cancel_within_one_step_and_backend_stays_usable(inpaint):
    steps = []
    flag = {"cancel": False}

    def progress(step, total, preview):
        steps.append(step)
        flag["cancel"] = step >= 2

    with pytest.raises(Cancelled):
        run(inpaint, make_request(steps=10, scheduler="DDIM"), progress, lambda: flag["cancel"])
    assert steps == [1, 2]  # asked to stop during step 2: step 3 never ran
    req = make_request()
    assert np.array_equal(run(inpaint, req)[0], run(inpaint, req)[0])  # later runs are normal and reproducible


def test_cancel_before_start(inpaint):
    with pytest.raises(Cancelled):
        run(inpaint, make_request(), cancelled=lambda: True)


# -- modes and shared weights ------------------------------------------------------------------------
def test_mode_switch_reuses_loaded_weights(base, monkeypatch):
    from diffusers import DiffusionPipeline

    def no_reload(*a, **k):
        raise AssertionError("switching mode must not load weights again")

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", classmethod(no_reload))
    a = run(base, make_request(mode="inpaint"))[0]
    b = run(base, make_request(mode="img2img", strength=0.6))[0]
    c = run(base, make_request(mode="inpaint"))[0]
    inpaint_pipe, img2img_pipe = base.pipeline_for("inpaint"), base.pipeline_for("img2img")
    assert type(img2img_pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        assert getattr(img2img_pipe, name) is getattr(inpaint_pipe, name)
    assert np.array_equal(a, c) and not np.array_equal(a, b)


def test_inpainting_model_does_img2img_on_its_own_pipeline(inpaint):
    req = make_request(mode="img2img", strength=0.5)
    out = run(inpaint, req)[0]
    assert type(inpaint.pipeline_for("img2img")).__name__ == "StableDiffusionInpaintPipeline"
    assert out.shape == (SIZE, SIZE, 3)


def test_latent_noise_masked_content(base):
    plain = run(base, make_request(strength=0.5))[0]
    noise = run(base, make_request(strength=0.5, masked_content="latent_noise"))[0]
    again = run(base, make_request(strength=0.5, masked_content="latent_noise"))[0]
    assert np.array_equal(noise, again) and not np.array_equal(plain, noise)


@pytest.mark.parametrize("kind", ["base", "inpaint"])
def test_latent_nothing_masked_content(kind, request):
    """A1111's "latent nothing": the starting latents are zero under the mask, the rest is the
    encoded image; reproducible, and another picture than "original" or "latent noise"."""
    from app.inference.diffusers.pipeline_inputs import latent_nothing_inputs

    backend = request.getfixturevalue(kind)
    req = make_request(strength=0.5)
    pipe = backend.pipeline_for("inpaint")
    inputs = latent_nothing_inputs(pipe, req.image, req.mask, torch.Generator().manual_seed(1))
    lat = inputs["image"]
    quarter = SIZE // VAE_SCALE // 4
    assert lat.shape == (1, 4, SIZE // VAE_SCALE, SIZE // VAE_SCALE)
    assert not lat[..., quarter:3 * quarter, quarter:3 * quarter].any() and lat[..., :quarter, :].abs().min() > 0
    assert torch.equal(inputs["masked_image_latents"], lat) == (kind == "base")
    runs = {c: run(backend, make_request(strength=0.5, masked_content=c))[0] for c in ("original", "latent_noise", "latent_nothing")}
    assert np.array_equal(runs["latent_nothing"], run(backend, make_request(strength=0.5, masked_content="latent_nothing"))[0])
    assert not np.array_equal(runs["latent_nothing"], runs["original"])
    assert not np.array_equal(runs["latent_nothing"], runs["latent_noise"])


# -- robustness ---------------------------------------------------------------------------------------
def test_fp16_style_nan_decode_is_retried_in_fp32(tiny_inpaint_model):
    """A reduced-precision VAE that decodes NaN is retried in fp32, gives the fp32 pixels, stays
    in its own dtype for encoding, and later decodes go straight to fp32."""
    backend = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))
    pipe = backend.pipeline_for("inpaint")
    latents = torch.randn(1, 4, SIZE // VAE_SCALE, SIZE // VAE_SCALE, generator=torch.Generator().manual_seed(0))
    vae = pipe.vae
    vae.to(torch.bfloat16).to(torch.float32)  # the weights a bf16 model has, in fp32
    reference = backend.decoder.decode(pipe, latents)
    real_decode = vae.decode
    calls = []

    def flaky_decode(z, *a, **k):
        calls.append(vae.dtype)
        out = real_decode(z, *a, **k)
        if vae.dtype != torch.float32:
            out[0].fill_(float("nan"))
        return out

    vae.to(torch.bfloat16)
    vae.decode = flaky_decode
    try:
        first = backend.decoder.decode(pipe, latents)
        assert calls == [torch.bfloat16, torch.float32] and backend.decoder.fp32
        assert vae.dtype == torch.bfloat16
        assert np.array_equal(first, reference)
        backend.decoder.decode(pipe, latents)
        assert calls[2:] == [torch.float32]  # no wasted low-precision decode any more
    finally:
        del vae.decode
        vae.to(torch.float32)


def test_out_of_memory_becomes_a_clear_error_and_backend_recovers(tiny_inpaint_model):
    backend = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))
    unet = backend.components["unet"]
    real_forward = unet.forward

    def oom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    unet.forward = oom
    with pytest.raises(GpuOutOfMemory, match="low-memory mode"):
        run(backend, make_request())
    unet.forward = real_forward
    assert run(backend, make_request())[0].shape == (SIZE, SIZE, 3)


def test_low_memory_and_fast_path_keep_the_image(tiny_inpaint_model, inpaint):
    req = make_request()
    plain = run(inpaint, req)[0].astype(int)
    low = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu", low_memory=True))
    assert low.low_memory and low.components["vae"].use_tiling
    fast = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu", fast=True))
    assert fast.components["unet"].conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    for other in (low, fast):
        assert np.abs(run(other, req)[0].astype(int) - plain).max() <= 2  # same image up to float rounding


def test_safety_checker_without_weights_is_a_clear_error(tiny_base_model):
    with pytest.raises(ModelLoadError, match="safety checker"):
        load_backend(str(tiny_base_model), LoadOptions(device="cpu", safety_checker=True))


def test_model_input_must_be_multiple_of_8(inpaint):
    req = make_request()
    bad = BackendRequest(req.image[:30, :30], req.mask[:30, :30], req.params, req.seeds)
    with pytest.raises(ValueError, match="multiple of 8"):
        run(inpaint, bad)


# -- the engine end to end ---------------------------------------------------------------------------
def test_engine_end_to_end_keeps_outside_pixels(inpaint, tiny_inpaint_model):
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    mask = np.zeros((70, 90), np.uint8)
    mask[20:45, 30:60] = 255
    # 256² is the smallest model size the engine plans (the tiny VAE only halves it: 128² latents)
    params = GenerationParams(prompt="a window", model=str(tiny_inpaint_model), steps=1, guidance=1.0, seed=4,
                              batch_size=2, mask_blur=2, scheduler="DDIM", width=256, height=256)
    seen = []
    result = Engine(inpaint).run(Job(params, image, mask), progress=seen.append)
    assert [c.seed for c in result.candidates] == [4, 5]
    assert seen and seen[-1].step == seen[-1].total and seen[-1].preview is not None
    import cv2

    reach = params.mask_blur + 1  # the feather is exactly 0 from this distance on
    outside = cv2.dilate(mask, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) == 0
    for cand in result.candidates:
        assert cand.image.shape == image.shape and cand.image.dtype == image.dtype
        assert np.array_equal(cand.image[outside], image[outside])
        assert not np.array_equal(cand.image[mask > 0], image[mask > 0])


def test_batched_mode_is_reproducible_per_seed_list(tiny_inpaint_model):
    backend = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))
    backend.exact_batches = False
    calls = []
    first = run(backend, make_request(seeds=(8, 9), scheduler="DDIM"), lambda s, t, p: calls.append((s, t)))
    second = run(backend, make_request(seeds=(8, 9), scheduler="DDIM"))
    assert calls == [(1, 1)]  # one call for the whole batch
    assert len(first) == 2 and all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], first[1])
