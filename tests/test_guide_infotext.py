"""Soft inpainting and the reference image in A1111 infotext: written with A1111's labels, read
back by our reader (from the text alone, without our JSON chunk) and by sd-parsers."""

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sd_parsers import ParserManager

from app.core import metadata
from app.core.guides import Reference, SoftInpainting
from app.core.imageio import save_image
from app.core.params import GenerationParams
from app.core.sdmeta.guide_infotext import reference_unit

SOFT = SoftInpainting(schedule_bias=1.5, preservation_strength=0.75, transition_contrast_boost=6.0, mask_influence=0.25,
                      difference_threshold=1.0, difference_contrast=3.0)
PARAMS = GenerationParams(prompt="a brick wall", model="sd15.safetensors", seed=7, steps=20, soft_inpainting=SOFT,
                          reference=Reference("/models/ipadapter/ip-adapter_sd15.safetensors", 0.8))


def test_written_with_a1111s_labels():
    text = metadata.format_a1111(PARAMS, 512, 512)
    last = text.splitlines()[-1]
    assert ("Soft inpainting enabled: True, Soft inpainting schedule bias: 1.5, Soft inpainting preservation strength: "
            "0.75, Soft inpainting transition contrast boost: 6.0, Soft inpainting mask influence: 0.25, "
            "Soft inpainting difference threshold: 1.0, Soft inpainting difference contrast: 3.0") in last
    assert ('ControlNet 0: "Module: ip-adapter_clip_sd15, Model: ip-adapter_sd15, Weight: 0.8, Guidance Start: 0.0, '
            'Guidance End: 1.0"') in last
    plain = metadata.format_a1111(GenerationParams(prompt="x"), 64, 64)
    assert "Soft inpainting" not in plain and "ControlNet" not in plain


def test_a1111_text_alone_reads_back():
    recalled = metadata.parse_a1111(metadata.format_a1111(PARAMS, 512, 512))
    assert recalled.soft_inpainting == SOFT
    assert recalled.reference == Reference("ip-adapter_sd15", 0.8)


def test_a1111s_own_text_reads_back_with_clamps_and_hashes():
    text = ("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Denoising strength: 0.75, "
            "Mask blur: 4, Soft inpainting enabled: True, Soft inpainting schedule bias: 1, "
            "Soft inpainting preservation strength: 9, Soft inpainting transition contrast boost: 4, "
            'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1", '
            'ControlNet 1: "Module: ip-adapter_clip_sd15, Model: ip-adapter_sd15 [6a3f6166], Weight: 0.6, '
            'Resize Mode: Crop and Resize, Low Vram: False, Guidance Start: 0, Guidance End: 1"')
    recalled = metadata.parse_a1111(text)
    assert recalled.soft_inpainting == SoftInpainting(schedule_bias=1.0, preservation_strength=8.0)
    assert recalled.reference == Reference("ip-adapter_sd15", 0.6)
    assert any("preservation strength 9.0 is outside" in note for note in recalled.extra["notes"])


def test_png_round_trip_through_our_reader_and_sd_parsers(tmp_path):
    path = save_image(tmp_path / "soft.png", np.zeros((16, 16, 3), np.uint8), params=PARAMS)
    recalled = metadata.read_params(path)
    assert recalled.soft_inpainting == SOFT and recalled.reference.weight == 0.8
    # the A1111 chunk alone (no JSON chunk of ours), as another tool would have written it
    info = PngInfo()
    info.add_text("parameters", metadata.format_a1111(PARAMS, 16, 16))
    a1111_only = tmp_path / "a1111.png"
    Image.new("RGB", (16, 16)).save(a1111_only, pnginfo=info)
    again = metadata.read_params(a1111_only)
    assert again.soft_inpainting == SOFT and again.reference == Reference("ip-adapter_sd15", 0.8)
    parsed = ParserManager().parse(str(a1111_only))
    assert parsed is not None and parsed.generator.name == "AUTOMATIC1111"
    found = {**parsed.metadata, **parsed.samplers[0].parameters}
    flat = {str(k).lower(): str(v) for k, v in found.items()}
    assert flat.get("soft inpainting enabled", flat.get("soft_inpainting_enabled")) == "True", found
    assert any("preservation" in k and v == "0.75" for k, v in flat.items()), found


def test_webuiapi_ip_adapter_unit_becomes_a_reference():
    unit = {"module": "ip-adapter_clip_sd15", "model": "ip-adapter_sd15 [6a3f6166]", "weight": 0.7, "image": "…"}
    assert reference_unit(unit) == Reference("ip-adapter_sd15", 0.7)
    assert reference_unit({"module": "canny", "model": "control_v11p_sd15_canny", "weight": 1.0}) is None
