"""Every sampler × schedule type pair runs: each pair's scheduler steps a whole denoising loop on
our sigmas with finite output; a tiny model generates with one pair per sampler, the schedule types
taken in turn so each is run at least once by a real pipeline."""

import inspect
import itertools

import numpy as np
import pytest
import torch

from app.core.params import GenerationParams
from app.core.schedulers import PAIRS, SAMPLERS, canonical_name, compose, schedules_for
from app.core.sigma_schedules import AUTOMATIC, SCHEDULE_TYPES, schedule_sigmas, sd15_sigmas
from app.inference.diffusers.schedulers import make_scheduler
from app.inference.engine import BackendRequest
from test_schedulers import backend, base_config  # noqa: F401  (the tiny model's scheduler config and backend)

#: Classes that take one model call per sigma (Heun and DPM2 interleave a second one).
FIRST_ORDER = ("Euler", "Euler a", "LMS", "DPM++ 2M", "DPM++ 2M SDE", "UniPC", "DDIM")


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_pair_steps_a_loop_on_our_sigmas(sampler, base_config):
    model = sd15_sigmas(base_config["beta_start"], base_config["beta_end"])
    generator = torch.Generator().manual_seed(0)
    for schedule in schedules_for(sampler):
        name = compose(sampler, schedule)
        sched = make_scheduler(name, base_config)
        sched.set_timesteps(7)  # A1111's DDIM schedule gives 8 steps here: a count the class did not plan
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(0)  # as the pipelines do
        if schedule != AUTOMATIC and sampler in FIRST_ORDER:
            expected = schedule_sigmas(schedule, 7, model)[:-1]
            np.testing.assert_allclose(sched.sigmas[: len(expected)].numpy(), expected, rtol=2e-5, err_msg=name)
        sample = torch.randn((1, 4, 8, 8), generator=generator) * sched.init_noise_sigma
        noise = {"generator": generator} if "generator" in inspect.signature(sched.step).parameters else {}
        for t in sched.timesteps:
            eps = 0.5 * sched.scale_model_input(sample, t)  # a stand-in noise prediction
            sample = sched.step(eps, t, sample, **noise).prev_sample
        assert len(sched.timesteps) >= 7 and torch.isfinite(sample).all(), name


def test_plms_runs_only_its_own_schedule():
    assert schedules_for("PNDM") == (AUTOMATIC,)
    assert all(schedules_for(s) == SCHEDULE_TYPES for s in SAMPLERS if s != "PNDM")


# each sampler once, with the schedule types in turn (Automatic is covered by test_schedulers.py)
_SUBSET = [f"{s} {t}" if s != "PNDM" else s
           for s, t in zip(SAMPLERS, itertools.cycle(SCHEDULE_TYPES[1:]))] + ["Euler a Beta", "DPM++ 2M DDIM"]


def test_subset_covers_every_sampler_and_schedule_type():
    assert {PAIRS[n][0] for n in _SUBSET} == set(SAMPLERS)
    assert {PAIRS[n][1] for n in _SUBSET} >= set(SCHEDULE_TYPES[1:])


@pytest.mark.parametrize("name", _SUBSET)
def test_tiny_model_generates_with_the_pair(name, backend):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    params = GenerationParams(prompt="a red barn", scheduler=name, steps=2, guidance=1.0, seed=7)
    steps = []
    (out,) = backend.generate(BackendRequest(image, mask, params, (7,)), lambda s, t, p: steps.append((s, t)),
                              lambda: False)
    used = backend.pipeline_for("inpaint").scheduler
    assert getattr(used, "schedule", AUTOMATIC) == PAIRS[name][1]
    assert steps and steps[-1][0] == steps[-1][1]
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and out.std() > 0


def test_every_pair_is_written_and_recalled_as_the_same_pair(tmp_path):
    """Through a saved PNG, from our JSON record and from the A1111 text alone (as other tools read it)."""
    from PIL import Image, PngImagePlugin

    from app.core import metadata
    from app.core.imageio import save_image
    from app.core.sdmeta import read_metadata

    for name, (sampler, schedule) in PAIRS.items():
        params = GenerationParams(prompt="a cat", model="sd15.safetensors", scheduler=name, seed=5)
        path = save_image(tmp_path / "out.png", np.zeros((8, 8, 3), np.uint8), params=params)
        assert read_metadata(path).params.scheduler == name
        text = metadata.format_a1111(params, 512, 512)
        assert f"Sampler: {'PLMS' if sampler == 'PNDM' else sampler}, Schedule type: {schedule}," in text
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", text)
        Image.new("RGB", (8, 8)).save(tmp_path / "a1111.png", pnginfo=info)
        report = read_metadata(tmp_path / "a1111.png")
        assert report.params.scheduler == name and not report.notes, (name, report.notes)


def test_api_shapes_take_the_pair():
    from app.server import a1111, segmind

    assert a1111._sampler({"sampler_name": "Euler a", "scheduler": "Karras"}) == "Euler a Karras"
    assert a1111._sampler({"sampler_name": "DPM++ 2M", "scheduler": "sgm_uniform"}) == "DPM++ 2M SGM Uniform"
    assert a1111._sampler({"sampler_name": "DPM++ 2M Karras"}) == "DPM++ 2M Karras"  # the pre-1.9 combined name
    # Segmind's fixed names each name one pair
    assert {n: PAIRS[canonical_name(n)] for n in ("DPM2 a Karras", "DPM Multi", "Euler a")} == {
        "DPM2 a Karras": ("DPM2 a", "Karras"), "DPM Multi": ("DPM++ 2M", "Automatic"), "Euler a": ("Euler a", "Automatic")}
    assert all(canonical_name(n) in PAIRS for n in segmind.SCHEDULERS)


@pytest.mark.parametrize("name", ["Euler a Karras", "DPM2 a Exponential", "LCM Beta", "DDIM Simple"])
def test_img2img_starts_part_way_down_our_sigmas(name, backend):
    """Strength < 1 enters the schedule part way: the noise is added at one of our timesteps."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.full((64, 64), 255, np.uint8)
    params = GenerationParams(prompt="a red barn", scheduler=name, steps=4, guidance=1.0, seed=7, mode="img2img",
                              strength=0.5)
    (out,) = backend.generate(BackendRequest(image, mask, params, (7,)), lambda s, t, p: None, lambda: False)
    assert out.shape == (64, 64, 3) and out.std() > 0


def test_kl_optimal_ends_at_sigma_min_as_a1111_where_the_class_can(base_config):
    model = sd15_sigmas(base_config["beta_start"], base_config["beta_end"])
    expected = schedule_sigmas("KL Optimal", 6, model)  # 7 sigmas, the last σ_min
    for name in ("Euler KL Optimal", "DPM++ 2M KL Optimal", "DDIM KL Optimal"):
        sched = make_scheduler(name, base_config)
        sched.set_timesteps(6)
        np.testing.assert_allclose(sched.sigmas.numpy(), expected, rtol=2e-5, err_msg=name)
    unipc = make_scheduler("UniPC KL Optimal", base_config)
    unipc.set_timesteps(6)
    assert unipc.sigmas[-1] == 0  # its "sigma_min" would repeat the last sigma: it ends at zero
