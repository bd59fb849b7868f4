"""Soft inpainting and the reference image through the servers, on the tiny base model: webuiapi's
``alwayson_scripts`` (A1111's soft inpainting args, an IP-Adapter ``ControlNetUnit``) and a
``remote:`` model, each giving the pixels of the same local run."""

from __future__ import annotations

import os

import numpy as np
import pytest
import webuiapi
from PIL import Image

from app.core.guides import Reference, SoftInpainting
from app.core.params import GenerationParams
from app.inference.registry import LoadOptions
from app.inference.remote import make_ref
from app.server.config import ServerConfig
from app.service.generation import GenerationRequest, GenerationService
from serverutil import running_server, scene
from tiny_adapters import adapter_state, build_image_encoder, save_adapter

TOKEN = "s3cret"
SOFT_ARGS = [True, 1.0, 0.5, 4.0, 0.0, 0.0, 2.0]  # A1111's order; difference threshold 0 = keep every change


def grey_mask(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[16:48, 16:32], mask[16:48, 32:48] = 96, 255
    return mask


def look() -> np.ndarray:
    out = np.zeros((32, 48, 3), np.uint8)
    out[:, :24, 2] = 255
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_base_model):
    models = tmp_path_factory.mktemp("guide-models")
    save_adapter(adapter_state(tiny_base_model / "unet"), models / "ControlNet" / "tiny-ip.safetensors")
    build_image_encoder(models / "clip_vision" / "tiny-encoder")
    old = os.environ.get("INPAINT_STUDIO_MODELS")
    os.environ["INPAINT_STUDIO_MODELS"] = str(models)
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("serve"), model=str(tiny_base_model), tokens=(TOKEN,))
    try:
        with running_server(config) as running:
            yield running
    finally:
        if old is None:
            os.environ.pop("INPAINT_STUDIO_MODELS", None)
        else:
            os.environ["INPAINT_STUDIO_MODELS"] = old


def local_run(model: str, **changes) -> np.ndarray:
    params = GenerationParams(model=model, prompt="a wall", seed=7, steps=2, guidance=1.0, scheduler="DDIM",
                              mask_blur=0, padding=16, width=256, height=256, soft_inpainting=SoftInpainting(
                                  difference_threshold=0.0), reference=Reference("tiny-ip", 0.8), **changes)
    request = GenerationRequest(params, scene(), grey_mask(), reference_image=look(),
                                options=LoadOptions(server_token=TOKEN))
    return GenerationService().run(request).candidates[0]


def test_webuiapi_soft_inpainting_and_ip_adapter_unit_match_the_local_run(server, tiny_base_model):
    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port, sampler="DDIM", steps=2)
    api.session.headers["Authorization"] = f"Bearer {TOKEN}"
    unit = webuiapi.ControlNetUnit(image=Image.fromarray(look()), module="ip-adapter_clip_sd15",
                                   model="tiny-ip [0123abcd]", weight=0.8)
    result = api.img2img(images=[Image.fromarray(scene())], mask_image=Image.fromarray(grey_mask()), prompt="a wall",
                         seed=7, inpainting_fill=1, inpaint_full_res=True, inpaint_full_res_padding=16,
                         denoising_strength=1.0, cfg_scale=1.0, width=256, height=256, mask_blur=0,
                         alwayson_scripts={"soft inpainting": {"args": SOFT_ARGS}}, controlnet_units=[unit])
    out = np.asarray(result.image.convert("RGB"))
    assert np.array_equal(out[grey_mask() == 0], scene()[grey_mask() == 0])
    assert not np.array_equal(out[grey_mask() == 96], scene()[grey_mask() == 96])  # a hard mask would keep these
    info = result.info["infotexts"][0]
    assert "Soft inpainting enabled: True" in info and "Module: ip-adapter_clip_sd15, Model: tiny-ip" in info
    assert np.array_equal(out, local_run(str(tiny_base_model)))


def test_remote_model_sends_the_grey_mask_and_reference(server, tiny_base_model):
    assert np.array_equal(local_run(make_ref(server.url)), local_run(str(tiny_base_model)))


def test_bad_soft_inpainting_args_are_a_400_naming_the_field(server):
    body = {"init_images": [""], "prompt": "x", "alwayson_scripts": {"Soft Inpainting": {"args": [True, "strong"]}}}
    reply = server.post("/sdapi/v1/img2img", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 400 and "soft inpainting" in reply.text.lower() and "args[1]" in reply.text
