"""Same request, same seed → same pixels, through every API shape and through the CLI, on the
tiny diffusion model (loaded by the real loader); pixels outside the feathered mask bit-exact.

Four shapes and the CLI run 2 steps with guidance 1 (no classifier-free doubling) to stay cheap
on a CPU; Segmind's documented minimums (20 steps, 512 px) make its run dearer, so it is
compared with one prediction at the same settings."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest
import replicate
import requests
import webuiapi
from PIL import Image

from app.cli.main import main as cli_main
from app.core import maskops
from app.server.config import ServerConfig
from serverutil import b64, centre_mask, data_uri, decode_png, png_bytes, running_server, scene

SEED, STEPS, GUIDANCE, SIZE, PROMPT = 1234, 2, 1.0, 256, "a red brick wall"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_inpaint_model):
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("serve"), model=str(tiny_inpaint_model))
    with running_server(config) as running:
        yield running


def via_openai(server, image, mask):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    r = client.images.generate(model="runwayml/stable-diffusion-v1-5-inpainting", prompt=PROMPT,
                               size=f"{SIZE}x{SIZE}", response_format="b64_json",
                               extra_body={"image": data_uri(image), "mask": data_uri(mask), "seed": SEED,
                                           "steps": STEPS, "guidance": GUIDANCE, "scheduler": "DDIM"})
    return decode_png(base64.b64decode(r.data[0].b64_json))


def via_replicate(server, image, mask):
    client = replicate.Client(api_token="unused", base_url=server.url)
    client.poll_interval = 0.1
    prediction = client.predictions.create(
        model="stability-ai/stable-diffusion-inpainting",
        input={"prompt": PROMPT, "image": data_uri(image), "mask": data_uri(mask), "seed": SEED, "scheduler": "DDIM",
               "num_inference_steps": STEPS, "guidance_scale": GUIDANCE, "width": SIZE, "height": SIZE})
    prediction.wait()
    assert prediction.status == "succeeded", prediction.error
    return decode_png(requests.get(prediction.output[0], timeout=30).content)


def via_appypie(server, image, mask):
    r = server.post("/getImage", json={"prompt": PROMPT, "imageUrl": data_uri(image), "maskUrl": data_uri(mask),
                                       "seed": SEED, "num_steps": STEPS, "guidance": GUIDANCE, "width": SIZE,
                                       "height": SIZE, "scheduler": "DDIM"})
    assert r.status_code == 200, r.text
    return decode_png(requests.get(r.json()["imageUrl"], timeout=30).content)


def via_a1111(server, image, mask):
    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port)
    result = api.img2img(images=[Image.fromarray(image)], mask_image=Image.fromarray(mask), prompt=PROMPT, seed=SEED,
                         steps=STEPS, cfg_scale=GUIDANCE, sampler_name="DDIM", width=SIZE, height=SIZE,
                         denoising_strength=1.0, mask_blur=4, inpainting_fill=1, inpaint_full_res=True,
                         inpaint_full_res_padding=32)
    assert result.info["all_seeds"] == [SEED]
    return np.asarray(result.image.convert("RGB"))


def via_cli(model, image, mask, tmp_path):
    (tmp_path / "in.png").write_bytes(png_bytes(image))
    (tmp_path / "mask.png").write_bytes(png_bytes(mask))
    code = cli_main(["inpaint", "-i", str(tmp_path / "in.png"), "-m", str(tmp_path / "mask.png"),
                     "-o", str(tmp_path / "out.png"), "--model", str(model), "--prompt", PROMPT, "--seed", str(SEED),
                     "--steps", str(STEPS), "--guidance", str(GUIDANCE), "--scheduler", "DDIM",
                     "--width", str(SIZE), "--height", str(SIZE)])
    assert code == 0
    return np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))


def test_same_seed_same_pixels_through_every_shape_and_the_cli(server, tiny_inpaint_model, tmp_path):
    image, mask = scene(), centre_mask()
    outputs = {"openai": via_openai(server, image, mask), "replicate": via_replicate(server, image, mask),
               "appypie": via_appypie(server, image, mask), "a1111": via_a1111(server, image, mask),
               "cli": via_cli(tiny_inpaint_model, image, mask, tmp_path)}
    reference = outputs["openai"]
    keep = maskops.feather(maskops.binarize(mask), 4) == 0  # outside the mask and its 4 px feather (mask_blur)
    assert np.array_equal(reference[keep], image[keep]), "pixels outside the mask changed"
    assert not np.array_equal(reference[~keep], image[~keep]), "the model changed nothing"
    for shape, pixels in outputs.items():
        assert np.array_equal(pixels, reference), f"{shape} gave other pixels for the same request and seed"


def test_safety_checker_asked_where_none_is_installed_is_a_400(server):
    r = server.post("/getImage", json={"prompt": PROMPT, "imageUrl": b64(scene()), "maskUrl": b64(centre_mask()),
                                       "num_steps": 1, "width": SIZE, "height": SIZE, "safety_checker": True})
    assert r.status_code == 400 and "safety checker" in r.json()["error"].lower()
    assert "not installed" in r.json()["error"]


def test_segmind_gives_the_same_pixels_as_a_prediction(server):
    """Segmind's documented minimums (20 steps, 512 px) make this run the dearest, so it is
    compared with one other shape only."""
    image, mask = scene(), centre_mask()
    r = server.post("/v1/sd1.5-inpainting", json={"prompt": PROMPT, "image": b64(image), "mask": b64(mask),
                                                  "seed": SEED, "num_inference_steps": 20, "guidance_scale": 1.0,
                                                  "scheduler": "DDIM", "img_width": 512, "img_height": 512})
    assert r.status_code == 200, r.text
    assert r.headers["X-Seeds"] == str(SEED)
    client = replicate.Client(api_token="unused", base_url=server.url)
    client.poll_interval = 0.1
    prediction = client.predictions.create(
        version="stability-ai/stable-diffusion-inpainting:local",
        input={"prompt": PROMPT, "image": data_uri(image), "mask": data_uri(mask), "seed": SEED, "scheduler": "DDIM",
               "num_inference_steps": 20, "guidance_scale": 1.0, "width": 512, "height": 512})
    prediction.wait()
    assert prediction.status == "succeeded", prediction.error
    assert np.array_equal(decode_png(r.content), decode_png(requests.get(prediction.output[0], timeout=30).content))
