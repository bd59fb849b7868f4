"""PNG/JPEG generation metadata: A1111's infotext both ways, our JSON chunk, other tools' output."""

from __future__ import annotations

import io
import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from png_reference import pillow_pnginfo
from app.core.sdmeta.a1111 import parse_fields
from app.core import metadata
from app.core.imageio import save_image
from app.core.params import GenerationParams


def test_format_is_exactly_a1111s():
    params = GenerationParams(
        prompt="a red barn, oil painting", negative_prompt="blurry", seed=1234, model="/models/sd15-inpainting.safetensors"
    )
    text = metadata.format_a1111(params, 512, 512)
    assert text == (
        "a red barn, oil painting\n"
        "Negative prompt: blurry\n"
        "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 1234, Size: 512x512, "
        "Model: sd15-inpainting, Denoising strength: 1.0, Mask blur: 4, Inpaint area: Only masked, "
        "Masked area padding: 32"
    )


def test_no_negative_line_when_empty_and_img2img_has_no_mask_fields():
    text = metadata.format_a1111(GenerationParams(prompt="x", mode="img2img", strength=0.75, seed=1, model="sd15.safetensors"), 640, 480)
    assert "Negative prompt" not in text
    assert text.splitlines()[1].endswith("Denoising strength: 0.75")
    assert "Size: 640x480" in text


def test_values_with_commas_and_colons_are_quoted_like_a1111():
    text = metadata.format_a1111(GenerationParams(model="builtin:ns", seed=3), 64, 64)
    assert 'Model: "builtin:ns"' in text
    assert metadata.parse_a1111(text).model == "builtin:ns"


def test_classical_text_carries_no_sampling_fields():
    """A classical method has no seed, steps, sampler, CFG or strength: its infotext names none."""
    text = metadata.format_a1111(GenerationParams(model="builtin:telea", seed=3, steps=40), 64, 64)
    fields = parse_fields(text)
    assert not {"Seed", "Steps", "Sampler", "CFG scale", "Denoising strength"} & set(fields)
    assert fields["Model"] == "builtin:telea" and fields["Mask blur"] == "4"


def test_parse_real_a1111_output_with_quoted_values_and_extra_keys():
    text = (
        "masterpiece, (Henri-Julien Dumont:1.4), 1girl, <lora:x:1>\n"
        "second prompt line\n"
        "Negative prompt: (worst quality:1.4), watermark\n"
        "more negative\n"
        'Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 2179987202, Size: 768x512, '
        'Model hash: 93b79e09ed, Model: anything-v4.5-inpainting, Denoising strength: 0.6, Mask blur: 8, '
        'Inpaint area: Only masked, Masked area padding: 48, Lora hashes: "x: 1a2b, y: 3c4d", '
        'Clip skip: 2, Version: v1.10.1'
    )
    p = metadata.parse_a1111(text)
    assert p.prompt == "masterpiece, (Henri-Julien Dumont:1.4), 1girl, <lora:x:1>\nsecond prompt line"
    assert p.negative_prompt == "(worst quality:1.4), watermark\nmore negative"
    assert (p.steps, p.scheduler, p.guidance, p.seed) == (20, "DPM++ 2M Karras", 7.0, 2179987202)
    assert (p.width, p.height, p.strength, p.mask_blur, p.padding) == (768, 512, 0.6, 8, 48)
    assert p.mode == "inpaint" and p.inpaint_area == "masked"
    assert p.extra["source_fields"]["Lora hashes"] == "x: 1a2b, y: 3c4d"
    assert p.extra["source_fields"]["Clip skip"] == "2"
    assert p.extra["source_fields"]["Model"] == "anything-v4.5-inpainting"


def test_parse_prompt_only_and_missing_negative():
    assert metadata.parse_a1111("just a prompt, nothing else").prompt == "just a prompt, nothing else"
    p = metadata.parse_a1111("cat\nSteps: 30, Sampler: Euler a, CFG scale: 5, Seed: 1, Size: 512x512")
    assert (p.prompt, p.negative_prompt, p.steps, p.scheduler) == ("cat", "", 30, "Euler a")
    assert p.mode == "inpaint"


def test_odd_values_are_clamped_or_kept_aside_never_raise():
    p = metadata.parse_a1111(
        "x\nSteps: 500, Sampler: DPM adaptive, CFG scale: 45, Seed: -1, Size: 3000x100, Denoising strength: 0"
    )
    assert (p.steps, p.guidance, p.seed, p.strength) == (150, 30.0, -1, 0.01)
    assert p.scheduler == "DPM++ 2M Karras" and p.width is None and p.height is None
    assert any("DPM adaptive" in a for a in p.extra["notes"])
    assert p.mode == "img2img"  # strength without mask fields


def test_sampler_names_are_written_as_a1111_1_9_writes_them():
    assert "Sampler: PLMS, Schedule type: Automatic" in metadata.format_a1111(GenerationParams(scheduler="PNDM", model="sd15.safetensors"), 8, 8)
    assert metadata.a1111_sampler("DPM++ 2M SDE Karras") == ("DPM++ 2M SDE", "Karras")
    # the pair we ran, which reading gives back: Automatic is the sampler's own schedule
    assert metadata.a1111_sampler("DPM++ 2M") == ("DPM++ 2M", "Automatic")
    assert metadata.a1111_sampler("K_EULER_ANCESTRAL") == ("Euler a", "Automatic")
    assert metadata.a1111_sampler("Euler a Karras") == ("Euler a", "Karras")
    assert "Sampler: Euler a, Schedule type: Karras," in metadata.format_a1111(
        GenerationParams(scheduler="Euler a Karras", model="sd15.safetensors"), 8, 8)


def _png_with(**texts: str) -> Image.Image:
    info = PngImagePlugin.PngInfo()
    for k, v in texts.items():
        info.add_itxt(k, v)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG", pnginfo=info)
    buf.seek(0)
    return Image.open(buf)


def test_read_prefers_our_json_then_falls_back_to_a1111():
    ours = GenerationParams(prompt="ours", seed=5, mask_grow=7, model="/m/x.safetensors")
    both = _png_with(parameters="theirs\nSteps: 3, Sampler: DDIM, Seed: 9", **{"inpaint-studio": metadata.to_json(ours)})
    assert metadata.read_params(both) == ours
    damaged = _png_with(parameters="theirs\nSteps: 3, Sampler: DDIM, Seed: 9", **{"inpaint-studio": "{not json"})
    assert metadata.read_params(damaged).prompt == "theirs"
    out_of_range = dict(ours.to_dict(), steps=999)
    bad = _png_with(parameters="theirs\nSteps: 3, Sampler: DDIM, Seed: 9", **{"inpaint-studio": json.dumps(out_of_range)})
    assert metadata.read_params(bad).steps == 3
    assert metadata.read_params(_png_with()) is None


def test_read_invokeai_metadata():
    invoke = {"positive_prompt": "a fox", "negative_prompt": "dog", "seed": 77, "steps": 12, "cfg_scale": 6.5,
              "scheduler": "euler_a", "width": 512, "height": 768, "model": {"name": "sd-1.5"}}
    p = metadata.read_params(_png_with(invokeai_metadata=json.dumps(invoke)))
    assert (p.prompt, p.negative_prompt, p.seed, p.steps, p.guidance, p.scheduler, p.height) == (
        "a fox", "dog", 77, 12, 6.5, "Euler a", 768)


def test_read_from_path_and_unicode(tmp_path):
    params = GenerationParams(prompt="ein Bild: Straße, 日本", negative_prompt="ß", seed=1)
    save_image(tmp_path / "u.png", np.zeros((8, 8, 3), np.uint8), params=params)
    assert metadata.read_params(tmp_path / "u.png") == params
    with Image.open(tmp_path / "u.png") as im:
        assert metadata.parse_a1111(im.info["parameters"]).prompt == params.prompt
    (tmp_path / "junk.png").write_bytes(b"junk")
    assert metadata.read_params(tmp_path / "junk.png") is None


prompt_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r") | st.sampled_from([",", ":", "\n", '"']),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    prompt=prompt_text,
    negative=prompt_text,
    seed=st.integers(0, 2**64 - 1),
    steps=st.integers(1, 150),
    guidance=st.floats(0, 30).map(lambda g: round(g, 2)),
    strength=st.floats(0.01, 1).map(lambda s: round(s, 2)),
    blur=st.integers(0, 64),
)
def test_a1111_round_trip_property(prompt, negative, seed, steps, guidance, strength, blur):
    """Whatever the prompts hold, A1111's text brings back the same core values."""
    prompt, negative = prompt.strip(), negative.strip()
    if prompt.startswith("Negative prompt:") or "\nNegative prompt:" in prompt:
        prompt = prompt.replace("Negative prompt:", "neg")
    params = GenerationParams(prompt=prompt, negative_prompt=negative, seed=seed, steps=steps, guidance=guidance,
                              strength=strength, mask_blur=blur, scheduler="Euler a", model="sd15.safetensors")
    back = metadata.parse_a1111(metadata.format_a1111(params, 512, 512))
    assert (back.seed, back.steps, back.guidance, back.strength, back.mask_blur, back.scheduler) == (
        seed, steps, guidance, strength, blur, "Euler a")
    # A1111's format cannot tell a prompt line from the parameter line when a prompt line
    # itself looks like three "key: value" pairs; ours uses the JSON chunk for exactness.
    if len([ln for ln in (prompt + "\n" + negative).split("\n") if ln.count(":") >= 3]) == 0:
        assert back.prompt == "\n".join(ln.strip() for ln in prompt.split("\n"))
        assert back.negative_prompt == "\n".join(ln.strip() for ln in negative.split("\n"))


@settings(max_examples=60, deadline=None)
@given(prompt=prompt_text, seed=st.integers(0, 2**64 - 1), grow=st.integers(0, 64))
def test_png_json_round_trip_is_exact(prompt, seed, grow):
    params = GenerationParams(prompt=prompt, seed=seed, mask_grow=grow)
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, "PNG", pnginfo=pillow_pnginfo(params, 4, 4))
    buf.seek(0)
    assert metadata.read_params(Image.open(buf)) == params
