"""Reading every SD tool's metadata (app.core.sdmeta): real sample files of each format, the
expected values written by hand from the file's own text and the tool's documentation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from app.core.sdmeta import read_metadata, recall

DATA = Path(__file__).parent / "data" / "metadata"


# -- helpers: the exact metadata bytes in a tiny generated image ---------------------------------------
def png(**chunks: str) -> Image.Image:
    """An 8×8 PNG with text chunks: tEXt when the text is Latin-1 (as most tools write), else iTXt."""
    info = PngImagePlugin.PngInfo()
    for key, text in chunks.items():
        try:
            text.encode("latin-1")
            info.add_text(key, text)
        except UnicodeEncodeError:
            info.add_itxt(key, text)
    return _reopen(Image.new("RGB", (8, 8)), "PNG", pnginfo=info)


def with_user_comment(raw: bytes, fmt: str = "JPEG") -> Image.Image:
    """An 8×8 JPEG/WebP whose EXIF UserComment holds ``raw`` (header + encoded text)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = raw
    return _reopen(Image.new("RGB", (8, 8)), fmt, exif=exif)


def _reopen(image: Image.Image, fmt: str, **kw) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    buf.seek(0)
    opened = Image.open(buf)
    opened.load()
    return opened


def values(report, *names):
    return tuple(getattr(report.params, n) for n in names)


# -- real files (tests/data/metadata, from sd-parsers' test resources) -------------------------------------
def test_a1111_png_and_jpeg_unicode_user_comment():
    for name in ("automatic1111_cropped.png", "automatic1111_cropped.jpg"):
        r = read_metadata(DATA / name)
        assert r.format == "AUTOMATIC1111"
        assert values(r, "prompt", "negative_prompt", "steps", "scheduler", "guidance", "seed", "width", "height") == (
            "photo of a duck", "monochrome", 15, "UniPC", 5.0, 235284042, 512, 400)
        assert (r.model_name, r.model_hash) == ("realistic_realisticVisionV20_v20", "c0d1994c73")
        assert "model" not in r.fields_set  # a name from elsewhere is reported, not forced on the form


def test_comfyui_prompt_graph_img2img():
    r = read_metadata(DATA / "img2img_cropped.png")
    assert r.format == "ComfyUI"
    assert values(r, "prompt", "negative_prompt", "seed", "steps", "guidance", "scheduler", "mode") == (
        "photograph of victorian woman with wings, sky clouds, meadow grass", "watermark, text",
        280823642470253, 20, 8.0, "DPM++ 2M Normal", "img2img")
    assert r.params.strength == pytest.approx(0.87)
    assert r.model_name == "v1-5-pruned-emaonly.ckpt"


def test_comfyui_workflow_alone_gives_the_same_values():
    """Files re-saved by the ComfyUI editor may keep only ``workflow``: its widgets are read."""
    with Image.open(DATA / "img2img_cropped.png") as im:
        im.load()
        workflow = im.info["workflow"]
    r = read_metadata(png(workflow=workflow))
    assert r.format == "ComfyUI"
    assert values(r, "prompt", "negative_prompt", "seed", "steps", "guidance", "scheduler") == (
        "photograph of victorian woman with wings, sky clouds, meadow grass", "watermark, text",
        280823642470253, 20, 8.0, "DPM++ 2M Normal")


def test_fooocus_json_under_parameters_with_64_bit_seed():
    r = read_metadata(DATA / "fooocus1_cropped.png")
    assert r.format == "Fooocus"
    assert values(r, "prompt", "negative_prompt", "steps", "guidance", "seed", "scheduler", "width", "height") == (
        "a smiling goldfish", "", 30, 4.0, 6952411511246973023, "DPM++ 2M SDE Karras", 768, 1280)
    assert (r.model_name, r.model_hash) == ("juggernautXL_v8Rundiffusion", "aeb7e9e689")
    assert "{" not in r.params.prompt


@pytest.mark.parametrize("name", ["invokeai_dream1.png", "invokeai_sdmeta1.png"])
def test_invokeai_2_dream_and_sd_metadata(name):
    r = read_metadata(DATA / name)
    assert r.format == "InvokeAI"
    assert r.params.prompt.startswith("professional full body photo of young woman") and r.params.prompt.endswith(
        "film grain, low contrast")
    assert values(r, "negative_prompt", "steps", "seed", "width", "height", "guidance", "scheduler") == (
        "rendering, glowing eyes, skinny", 50, 2980747362, 512, 768, 5.0, "LMS")


def test_invokeai_3_metadata():
    r = read_metadata(DATA / "invokeai_imeta1.png")
    assert values(r, "prompt", "seed", "steps", "guidance", "scheduler", "width", "height") == (
        "digital artwork, oil painting. painterly brushstrokes, holidays,", 3293022630, 35, 8.0, "Euler", 1024, 1024)
    assert r.params.negative_prompt.startswith("grainy+, photo") and r.model_name == "juggernautXL"


def test_novelai_png():
    r = read_metadata(DATA / "novelai1_cropped.png")
    assert r.format == "NovelAI"
    assert values(r, "prompt", "steps", "seed", "guidance", "scheduler") == (
        "masterpiece, best quality,  cat, space, icon", 50, 2253955223, 10.0, "Euler a")
    assert r.params.negative_prompt.startswith("lowres, bad anatomy")
    assert "strength" not in r.fields_set  # NovelAI writes strength 0.4 for txt2img too


# -- formats re-created from their documented bytes -------------------------------------------------------------
FORGE = ("a cat\nNegative prompt: dog\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, "
         "Seed: 17123564234, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: f2.0.1v1.10.1-previous-313")


def test_forge_schedule_type_and_a_seed_above_2_32():
    r = read_metadata(png(parameters=FORGE))
    assert r.format == "Forge"
    assert values(r, "scheduler", "seed", "width", "height") == ("DPM++ 2M Karras", 17123564234, 512, 768)


def test_sd_next_and_keys_read_case_insensitively_like_a1111():
    text = "a cat\nSteps: 30, Sampler: Euler a, CFG Scale: 6.5, Seed: 5, Size: 512x512, App: SD.Next"
    r = read_metadata(png(parameters=text))
    assert r.format == "SD.Next" and values(r, "guidance", "scheduler", "steps") == (6.5, "Euler a", 30)


def test_civitai_text():
    text = ('a fox\nSteps: 25, CFG scale: 7, Sampler: Euler Ancestral Karras, Seed: 1, Size: 512x512, '
            'Civitai resources: [{"type":"checkpoint","modelVersionId":128713}]')
    r = read_metadata(png(parameters=text))
    assert r.format == "Civitai" and r.params.scheduler == "Euler a Karras"  # Euler a on Karras sigmas (issue 30)


def test_stability_matrix_utf8_in_latin1_text_chunk_is_repaired():
    text = "café, naïve 日本\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 512x512"
    r = read_metadata(png(parameters=text.encode("utf-8").decode("latin-1"), smproj="{}"))
    assert r.format == "Stability Matrix" and r.params.prompt == "café, naïve 日本"


@pytest.mark.parametrize("raw", [
    b"UNICODE\x00" + "x ü\nSteps: 9, Sampler: DDIM, CFG scale: 4, Seed: 8".encode("utf-16-be"),
    b"UNICODE\x00" + "x ü\nSteps: 9, Sampler: DDIM, CFG scale: 4, Seed: 8".encode("utf-16-le"),
    b"ASCII\x00\x00\x00" + b"x \xc3\xbc\nSteps: 9, Sampler: DDIM, CFG scale: 4, Seed: 8",
    b"UTF-8\x00\x00\x00" + "x ü\nSteps: 9, Sampler: DDIM, CFG scale: 4, Seed: 8".encode("utf-8"),
])
@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_exif_user_comment_encodings(raw, fmt):
    r = read_metadata(with_user_comment(raw, fmt))
    assert values(r, "prompt", "steps", "scheduler", "guidance", "seed") == ("x ü", 9, "DDIM", 4.0, 8)


def test_hires_fix_recalls_txt2img_with_a_note_never_img2img_0_3():
    text = ("castle\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 11, Size: 512x512, Denoising strength: 0.3, "
            "Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent")
    r = read_metadata(png(parameters=text))
    assert (r.params.mode, r.params.strength, r.params.extra["origin"]) == ("inpaint", 1.0, "txt2img")
    assert "strength" not in r.fields_set and "mode" not in r.fields_set
    assert any("hires fix" in n and "0.3" in n for n in r.notes)


def test_swarmui_sui_image_params():
    # SwarmUI 0.9.1.1 metadata as published (github.com/ataylorm/FluxAIGridComparisons)
    data = {"sui_image_params": {"prompt": "A Close-Up photograph of a 25 year old Asian woman", "model": "Flux/flux1-dev-fp8",
                                 "seed": 305223794, "steps": 25, "cfgscale": 1.0, "aspectratio": "1:1", "width": 1024,
                                 "height": 1024, "sampler": "euler", "scheduler": "normal", "negativeprompt": "",
                                 "swarm_version": "0.9.1.1"}}
    r = read_metadata(png(parameters=json.dumps(data, indent=2)))
    assert r.format == "SwarmUI"
    assert values(r, "prompt", "seed", "steps", "guidance", "scheduler", "width") == (
        "A Close-Up photograph of a 25 year old Asian woman", 305223794, 25, 1.0, "Euler Normal", 1024)
    assert r.model_name == "Flux/flux1-dev-fp8"


def test_easy_diffusion_png_chunks_and_jpeg_json():
    chunks = {"prompt": "a lighthouse", "negative_prompt": "fog", "seed": "1234", "use_stable_diffusion_model": "sd-v1-4",
              "sampler_name": "euler_a", "num_inference_steps": "25", "guidance_scale": "7.5", "width": "512", "height": "512"}
    r = read_metadata(png(**chunks))
    assert r.format == "Easy Diffusion"
    assert values(r, "prompt", "negative_prompt", "seed", "scheduler", "steps", "guidance") == (
        "a lighthouse", "fog", 1234, "Euler a", 25, 7.5)
    titled = {"Prompt": "a lighthouse", "Seed": 1234, "Stable Diffusion model": "sd-v1-4", "Sampler": "dpmpp_2m",
              "Steps": 30, "Guidance Scale": 7, "Width": 512, "Height": 640}
    r = read_metadata(with_user_comment(b"UNICODE\x00" + json.dumps(titled).encode("utf-16-be")))
    assert r.format == "Easy Diffusion" and values(r, "scheduler", "steps", "height") == ("DPM++ 2M", 30, 640)


def test_novelai_webp_json_in_user_comment():
    comment = json.dumps({"prompt": "a cat", "steps": 28, "sampler": "k_dpmpp_2m", "seed": 42, "scale": 5.0,
                          "uc": "lowres", "width": 832, "height": 1216, "noise_schedule": "karras"})
    outer = json.dumps({"Description": "a cat", "Software": "NovelAI", "Source": "NovelAI Diffusion V3", "Comment": comment})
    r = read_metadata(with_user_comment(b"UNICODE\x00" + outer.encode("utf-16-be"), "WEBP"))
    assert r.format == "NovelAI"
    assert values(r, "prompt", "negative_prompt", "steps", "scheduler", "seed", "width") == (
        "a cat", "lowres", 28, "DPM++ 2M Karras", 42, 832)


def test_hugging_face_space_diffusers_json():
    data = {"prompt": "an astronaut", "negative_prompt": "", "num_inference_steps": 30, "guidance_scale": 7.5,
            "seed": 2**63 + 5, "width": 512, "height": 512, "scheduler": "DPMSolverMultistep"}
    r = read_metadata(png(parameters=json.dumps(data)))
    assert r.format.startswith("Hugging Face Space")
    assert values(r, "prompt", "steps", "seed", "scheduler") == ("an astronaut", 30, 2**63 + 5, "DPM++ 2M")


# -- ComfyUI graphs: several samplers, the custom sampler nodes --------------------------------------------------
def _graph(*samplers: tuple[str, int]) -> dict:
    g = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
         "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["1", 1]}},
         "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
         "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 1}}}
    for nid, seed in samplers:
        g[nid] = {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 20, "cfg": 6.0, "sampler_name": "euler_ancestral", "scheduler": "karras", "denoise": 1.0,
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}}
    return g


def test_comfyui_several_samplers_change_nothing_and_offer_a_choice():
    image = png(prompt=json.dumps(_graph(("10", 1), ("11", 2), ("12", 2**64 - 1))))
    result = recall(image)
    assert result.params is None and result.message == "ComfyUI workflow with 3 samplers: choose one"
    assert [c.node_id for c in result.choices] == ["10", "11", "12"]
    assert "seed 2" in result.choices[1].label and "a red fox" in result.choices[1].label
    chosen = recall(image, choice="12")
    assert (chosen.params.seed, chosen.params.prompt, chosen.params.negative_prompt) == (2**64 - 1, "a red fox", "blurry")
    assert (chosen.params.width, chosen.params.height, chosen.params.scheduler) == (512, 640, "Euler a Karras")


def test_comfyui_custom_sampler_advanced_with_conditioning_in_between():
    g = _graph()
    g.update({
        "5": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0], "conditioning_2": ["2", 0]}},
        "6": {"class_type": "RandomNoise", "inputs": {"noise_seed": 18446744073709551000}},
        "7": {"class_type": "CFGGuider", "inputs": {"cfg": 4.5, "model": ["1", 0], "positive": ["5", 0], "negative": ["3", 0]}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m_sde_gpu"}},
        "9": {"class_type": "BasicScheduler", "inputs": {"scheduler": "karras", "steps": 12, "denoise": 1.0, "model": ["1", 0]}},
        "10": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["6", 0], "guider": ["7", 0], "sampler": ["8", 0],
                                                                  "sigmas": ["9", 0], "latent_image": ["4", 0]}}})
    r = read_metadata(png(prompt=json.dumps(g)))
    assert values(r, "prompt", "negative_prompt", "seed", "steps", "guidance", "scheduler", "height") == (
        "a red fox", "blurry", 18446744073709551000, 12, 4.5, "DPM++ 2M SDE Karras", 640)


# -- nothing usable: the form is never damaged ---------------------------------------------------------------------
@pytest.mark.parametrize("image, why", [
    (lambda: with_user_comment(b"ASCII\x00\x00\x00Screenshot"), "'Screenshot'"),
    (lambda: png(parameters='{"foo": 1, "bar": [2]}'), "not generation parameters"),
    (lambda: png(), "no metadata"),
    (lambda: png(prompt=json.dumps({"1": {"class_type": "LoadImage", "inputs": {}}})), "without a sampler"),
])
def test_no_usable_parameters_recall_nothing_and_say_why(image, why):
    result = recall(image())
    assert result.params is None and why in result.message and "\n" not in result.message


def test_recall_lists_only_what_the_file_holds():
    """An A1111 line without prompt or seed must not blank the user's prompt or seed."""
    result = recall(png(parameters="Steps: 12, Sampler: Euler, CFG scale: 3"))
    assert result.fields_set == {"steps", "scheduler", "guidance"}
    assert "3 settings from AUTOMATIC1111" in result.message


def test_unreadable_file_is_a_report_not_an_exception(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not a png")
    r = read_metadata(tmp_path / "junk.png")
    assert r.format == "none" and r.params is None and "cannot read" in r.problems[0]


def test_out_of_range_seed_is_left_out_not_wrapped():
    r = read_metadata(png(parameters=f"x\nSteps: 5, Sampler: Euler, Seed: {2**64}"))
    assert "seed" not in r.fields_set and r.params.seed == -1 and any("Seed" in n for n in r.notes)


def test_load_image_carries_the_recall_the_window_applies(tmp_path):
    from app.core.imageio import load_image

    shot = with_user_comment(b"ASCII\x00\x00\x00Screenshot")
    shot.save(tmp_path / "shot.jpg", exif=shot.getexif())
    loaded = load_image(tmp_path / "shot.jpg")
    assert loaded.params is None and "Screenshot" in loaded.info["recall"].message
    loaded = load_image(DATA / "img2img_cropped.png")
    assert loaded.params.seed == 280823642470253
    assert {"prompt", "negative_prompt", "seed", "steps", "scheduler", "mode", "strength"} <= loaded.info["recall"].fields_set


def test_stealth_text_hidden_in_alpha_bits():
    r = read_metadata(DATA / "automatic1111_stealth.png")  # A1111 stealth-pnginfo extension, gzip in alpha LSBs
    assert r.format == "AUTOMATIC1111" and "stealth" in r.raw
    assert values(r, "prompt", "negative_prompt", "steps", "scheduler", "guidance", "seed") == (
        "a circle", "a square", 20, "Euler", 7.0, 2015833630)
    assert r.model_hash == "15012c538f"


def test_novelai_stealth_json_in_rgb_bits():
    """NovelAI's layout, built here bit by bit: signature, 32-bit length, UTF-8 JSON, column-major."""
    payload = json.dumps({"Description": "a fox", "Software": "NovelAI", "Comment": json.dumps(
        {"steps": 23, "sampler": "k_euler", "seed": 9, "scale": 6, "uc": "bad"})}).encode()
    data = b"stealth_rgbinfo" + (len(payload) * 8).to_bytes(4, "big") + payload
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    side = 64
    lsb = np.zeros(side * side * 3, np.uint8)
    lsb[: bits.size] = bits
    pixels = (np.full((side, side, 3), 200, np.uint8) | lsb.reshape(side, side, 3).transpose(1, 0, 2))
    r = read_metadata(_reopen(Image.fromarray(pixels), "PNG"))
    assert r.format == "NovelAI" and values(r, "prompt", "negative_prompt", "steps", "scheduler", "seed") == (
        "a fox", "bad", 23, "Euler", 9)
