"""Every file we write reads back through AUTOMATIC1111's own parsing rules and through
sd-parsers (an independent reader), with the scheduler we used and the whole 64-bit seed.

`a1111_parse` re-implements A1111's ``parse_generation_parameters`` (modules/infotext_utils.py)
and its sampler/scheduler split as the reference; it shares no code with app.core.sdmeta."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sd_parsers import ParserManager

from app.core import metadata
from app.core.imageio import save_image
from app.core.params import GenerationParams
from app.core.schedulers import SCHEDULER_NAMES, canonical_name, resolve_sampler

RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")
#: A1111 1.10's sampler labels and scheduler labels (modules/sd_samplers_kdiffusion.py,
#: sd_samplers_timesteps.py, sd_schedulers.py).
A1111_SAMPLERS = {"DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a",
                  "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM", "DDIM CFG++",
                  "PLMS", "UniPC", "LCM",
                  "TCD"}  # TCD: Forge's and ComfyUI's few-step sampler (A1111 1.10 lacks it)
A1111_SCHEDULES = {"Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
                   "Align Your Steps", "Simple", "Normal", "DDIM", "Beta"}


def a1111_parse(x: str) -> dict[str, str]:
    res: dict[str, str] = {}
    prompt, negative_prompt, done_with_prompt = "", "", False
    *lines, lastline = x.strip().split("\n")
    if len(RE_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    res["Prompt"], res["Negative prompt"] = prompt, negative_prompt
    for k, v in RE_PARAM.findall(lastline):
        if v[0] == '"' and v[-1] == '"':
            try:
                v = json.loads(v)
            except ValueError:
                pass
        m = RE_IMAGESIZE.match(v)
        if m is not None:
            res[f"{k}-1"], res[f"{k}-2"] = m.group(1), m.group(2)
        else:
            res[k] = v
    return res


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_a1111_reads_our_sampler_schedule_and_64_bit_seed(scheduler):
    params = GenerationParams(model="sd15.safetensors", prompt="a cat, sitting: calm", negative_prompt="dog\nsecond line", scheduler=scheduler,
                              seed=2**64 - 2, steps=33, guidance=6.5, strength=0.8, mode="img2img")
    res = a1111_parse(metadata.format_a1111(params, 512, 768))
    assert (res["Prompt"], res["Negative prompt"]) == (params.prompt, params.negative_prompt)
    assert res["Sampler"] in A1111_SAMPLERS and res["Schedule type"] in A1111_SCHEDULES
    assert (res["Seed"], res["Steps"], res["CFG scale"], res["Denoising strength"]) == (str(2**64 - 2), "33", "6.5", "0.8")
    assert (res["Size-1"], res["Size-2"]) == ("512", "768")
    # A1111's pair names the same pair again
    assert resolve_sampler(res["Sampler"], res["Schedule type"]) == (scheduler, "")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_sd_parsers_reads_the_files_we_write(tmp_path, suffix):
    params = GenerationParams(model="sd15.safetensors", prompt="a lighthouse at dusk", negative_prompt="fog", seed=17123564234, steps=21,
                              guidance=5.5, scheduler="DPM++ 2M SDE Karras")
    path = save_image(tmp_path / f"out{suffix}", np.zeros((16, 16, 3), np.uint8), params=params)
    info = ParserManager().parse(str(path))
    assert info is not None and info.generator.name == "AUTOMATIC1111"
    sampler = info.samplers[0]
    assert (sampler.name, sampler.parameters["seed"], sampler.parameters["steps"], sampler.parameters["cfg_scale"]) == (
        "DPM++ 2M SDE", "17123564234", "21", "5.5")
    assert [p.value for p in info.prompts] == ["a lighthouse at dusk"]
    assert [p.value for p in info.negative_prompts] == ["fog"]
    recalled = metadata.read_params(path)
    assert (recalled.seed, recalled.scheduler) == (17123564234, "DPM++ 2M SDE Karras")


@pytest.mark.parametrize("name, schedule, expected", [
    ("Euler Ancestral Karras", None, "Euler a Karras"), ("euler_ancestral_karras", None, "Euler a Karras"),
    ("euler_ancestral", "karras", "Euler a Karras"), ("Euler a", "Karras", "Euler a Karras"),
    ("euler", "karras", "Euler Karras"), ("Euler Karras", None, "Euler Karras"), ("euler", "normal", "Euler Normal"),
    ("euler", "simple", "Euler Simple"), ("dpmpp_2m", "karras", "DPM++ 2M Karras"), ("dpmpp_2m_karras", None, "DPM++ 2M Karras"),
    ("DPM++ 2M", "Karras", "DPM++ 2M Karras"), ("DPM++ 2M Karras", "Automatic", "DPM++ 2M Karras"),
    ("dpmpp_2m_sde", "karras", "DPM++ 2M SDE Karras"), ("dpmpp_2m_sde_gpu", "exponential", "DPM++ 2M SDE Exponential"),
    ("DPM++ 2M SDE Karras", None, "DPM++ 2M SDE Karras"), ("dpmpp_sde", "karras", "DPM++ SDE Karras"),
    ("heun", "karras", "Heun Karras"), ("lms", "karras", "LMS Karras"), ("dpm_2_ancestral", "karras", "DPM2 a Karras"),
    ("uni_pc", "normal", "UniPC Normal"), ("ddim", "ddim_uniform", "DDIM DDIM"), ("PLMS", None, "PNDM"),
    ("lcm", "sgm_uniform", "LCM SGM Uniform"), ("Euler a", "Align Your Steps", "Euler a Align Your Steps"),
    ("euler", "kl_optimal", "Euler KL Optimal"), ("dpmpp_2m", "beta", "DPM++ 2M Beta"), ("PLMS", "Karras", "PNDM"),
    ("k_euler_ancestral", None, "Euler a"), ("k_dpmpp_2m", None, "DPM++ 2M"), ("dpmpp_2m_k", None, "DPM++ 2M Karras"),
    ("kdpm_2_a", None, "DPM2 a"), ("sample_dpmpp_2m", "normal", "DPM++ 2M Normal"), ("K_EULER", None, "Euler"),
])
def test_every_tools_sampler_name_maps_to_one_table_entry(name, schedule, expected):
    assert resolve_sampler(name, schedule)[0] == expected
    if schedule is None:
        assert canonical_name(name) == expected  # --scheduler accepts every name recall accepts


def test_unknown_sampler_names_resolve_to_nothing():
    assert resolve_sampler("Restart") is None and resolve_sampler("") is None
    with pytest.raises(ValueError, match="scheduler"):
        canonical_name("Restart")
