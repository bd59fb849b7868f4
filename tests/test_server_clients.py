"""Each API shape driven by the client its users have, against a real uvicorn on 127.0.0.1,
on the classical method (instant): openai, replicate, webuiapi, and requests for Segmind and
Appypie. Every output keeps the pixels outside the mask exactly."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import openai
import pytest
import replicate
import requests
import webuiapi
from PIL import Image

from app.server.config import ServerConfig
from serverutil import b64, centre_mask, data_uri, decode_png, png_bytes, running_server, scene

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("serve"), model="builtin:telea", tokens=(TOKEN,), docs=True)
    with running_server(config) as running:
        yield running


def assert_inpainted(out: np.ndarray, image: np.ndarray, mask: np.ndarray) -> None:
    assert out.shape == image.shape
    keep = mask == 0
    assert np.array_equal(out[keep], image[keep]), "pixels outside the mask changed"
    assert not np.array_equal(out[~keep], image[~keep]), "nothing was inpainted"


def test_openai_generate_b64_and_url(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=TOKEN, max_retries=0)
    image, mask = scene(), centre_mask()
    r = client.images.generate(model="runwayml/stable-diffusion-v1-5-inpainting", prompt="a wall",
                               response_format="b64_json", extra_body={"image": data_uri(image), "mask": b64(mask)})
    assert_inpainted(decode_png(base64.b64decode(r.data[0].b64_json)), image, mask)
    r = client.images.generate(model="runwayml/stable-diffusion-v1-5-inpainting", prompt="a wall",
                               extra_body={"image": data_uri(image), "mask": data_uri(mask)})
    assert r.created > 0 and r.data[0].url.startswith(server.url + "/files/")
    served = requests.get(r.data[0].url, timeout=10)
    assert served.headers["content-type"] == "image/png"
    assert_inpainted(decode_png(served.content), image, mask)
    assert "parameters" in Image.open(io.BytesIO(served.content)).info  # the editor's PNG metadata


def test_openai_edit_uses_transparent_mask_pixels(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=TOKEN, max_retries=0)
    image, mask = scene(), centre_mask()
    rgba_mask = np.dstack([np.zeros_like(image), np.where(mask > 0, 0, 255).astype(np.uint8)])  # transparent = edit
    r = client.images.edit(model="runwayml/stable-diffusion-v1-5-inpainting", prompt="a wall",
                           image=("image.png", png_bytes(image), "image/png"),
                           mask=("mask.png", png_bytes(rgba_mask), "image/png"), response_format="b64_json")
    assert_inpainted(decode_png(base64.b64decode(r.data[0].b64_json)), image, mask)


def test_openai_models_lists_the_hosted_ids(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=TOKEN, max_retries=0)
    ids = {m.id for m in client.models.list()}
    assert {"runwayml/stable-diffusion-v1-5-inpainting", "runwayml/stable-diffusion-v1-5-img2img", "builtin:telea"} <= ids


def test_openai_error_reaches_the_sdk_with_our_message(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="steps"):
        client.images.generate(model="builtin:telea", prompt="x",
                               extra_body={"image": b64(scene()), "mask": b64(centre_mask()), "steps": 500})
    with pytest.raises(openai.NotFoundError, match="not a model this server has"):
        client.images.generate(model="no-such-model", prompt="x")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).images.generate(prompt="x")


def test_segmind_with_requests(server):
    image, mask = scene(), centre_mask()
    r = requests.post(server.url + "/v1/sd1.5-inpainting", headers={"x-api-key": TOKEN}, timeout=30,
                      json={"prompt": "mecha robot", "negative_prompt": "blurry", "samples": 1, "image": b64(image),
                            "mask": b64(mask), "scheduler": "DDIM", "num_inference_steps": 25, "guidance_scale": 7.5,
                            "strength": 1, "seed": 42, "img_width": 512, "img_height": 512})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert_inpainted(decode_png(r.content), image, mask)


def test_replicate_create_wait_and_cancel(server):
    client = replicate.Client(api_token=TOKEN, base_url=server.url)
    client.poll_interval = 0.05
    image, mask = scene(), centre_mask()
    inputs = {"prompt": "a wall", "image": data_uri(image), "mask": data_uri(mask), "scheduler": "K_EULER", "seed": 3}
    prediction = client.predictions.create(model="stability-ai/stable-diffusion-inpainting", input=inputs)
    assert prediction.status in ("starting", "processing", "succeeded")
    prediction.wait()
    assert prediction.status == "succeeded", prediction.error
    assert prediction.metrics["predict_time"] >= 0 and "succeeded" in prediction.logs
    assert_inpainted(decode_png(requests.get(prediction.output[0], timeout=10).content), image, mask)
    again = client.predictions.get(prediction.id)
    assert again.output == prediction.output and again.input["prompt"] == "a wall"
    assert client.predictions.cancel(prediction.id).status == "succeeded"  # finished jobs stay as they are
    with pytest.raises(replicate.exceptions.ReplicateError, match="scheduler"):
        client.predictions.create(model="stability-ai/stable-diffusion-inpainting", input={**inputs, "scheduler": "Euler"})


def test_replicate_version_route_and_prefer_wait(server):
    client = replicate.Client(api_token=TOKEN, base_url=server.url)
    prediction = client.predictions.create(version="stability-ai/stable-diffusion-inpainting:abc",
                                           input={"image": b64(scene()), "mask": b64(centre_mask())}, wait=10)
    assert prediction.status == "succeeded" and prediction.output


def test_webuiapi_img2img_with_mask(server):
    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port, sampler="Euler a", steps=20)
    api.session.headers["Authorization"] = f"Bearer {TOKEN}"
    image, mask = scene(), centre_mask()
    result = api.img2img(images=[Image.fromarray(image)], mask_image=Image.fromarray(mask), prompt="a wall",
                         seed=7, inpainting_fill=1, inpaint_full_res=True, inpaint_full_res_padding=16,
                         denoising_strength=1.0, cfg_scale=7, width=512, height=512, mask_blur=0)
    assert_inpainted(np.asarray(result.image.convert("RGB")), image, mask)
    assert result.info["all_seeds"] and 'Model: "builtin:telea"' in result.info["infotexts"][0]
    samplers = {s["name"] for s in api.get_samplers()}
    assert {"Euler a", "DDIM", "DPM++ 2M"} <= samplers  # as A1111 ≥ 1.9: the schedule type is a field of its own
    types = requests.get(server.url + "/sdapi/v1/schedulers", headers=api.session.headers, timeout=10).json()
    assert {"Karras", "Align Your Steps", "Beta"} <= {t["label"] for t in types}
    assert "builtin:telea" in {m["title"] for m in api.get_sd_models()}
    progress = api.get_progress()
    assert progress["state"]["job_count"] == 0 and 0.0 <= progress["progress"] <= 1.0
    assert api.interrupt() == {}  # nothing running: a no-op, as in A1111


def test_a1111_png_info_reads_our_metadata(server):
    image, mask = scene(), centre_mask()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.post(server.url + "/sdapi/v1/img2img", headers=headers, timeout=30,
                      json={"init_images": [data_uri(image)], "mask": b64(mask), "prompt": "wall"})
    assert r.status_code == 200, r.text
    info = requests.post(server.url + "/sdapi/v1/png-info", headers=headers, timeout=10,
                         json={"image": r.json()["images"][0]}).json()
    # the classical method ignores prompts, seeds and steps, so its record (and infotext) holds none
    assert 'Model: "builtin:telea"' in info["info"] and "Seed:" not in info["info"] and "parameters" in info["items"]
    assert info["parameters"]["Size-1"] == "64"


def test_appypie_get_image_and_results(server):
    image, mask = scene(), centre_mask()
    headers = {"Ocp-Apim-Subscription-Key": TOKEN}
    r = requests.post(server.url + "/getImage", headers=headers, timeout=30,
                      json={"prompt": "Change to a lion", "imageUrl": data_uri(image), "maskUrl": data_uri(mask),
                            "negative_prompt": "watermark", "num_steps": 20, "guidance": 5, "seed": 42})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert_inpainted(decode_png(requests.get(answer["imageUrl"], timeout=10).content), image, mask)
    results = requests.post(server.url + "/getGenerationResults", headers=headers, timeout=10,
                            json={"job_set_id": answer["job_set_id"]}).json()
    assert results["status"] == "succeeded" and results["job_set_id"] == answer["job_set_id"]
    assert results["results"][0]["imageUrl"] == answer["imageUrl"] and results["results"][0]["job_id"]


def test_healthz_metrics_and_docs(server):
    assert server.get("/healthz").json()["status"] == "ok"  # no token needed
    assert server.get("/metrics").status_code == 401  # this server has tokens: Prometheus sends one
    text = server.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    for name in ("inpaint_queue_depth", "inpaint_jobs_running", 'inpaint_jobs_total{status="succeeded"}',
                 "inpaint_job_seconds_count"):
        assert name in text
    assert server.get("/docs").status_code == 200
    paths = server.get("/openapi.json").json()["paths"]
    assert {"/v1/images/generations", "/v1/sd1.5-inpainting", "/v1/predictions", "/getImage", "/sdapi/v1/img2img"} <= set(paths)
    job_files = list((server.app.state.config.data_dir / "jobs").glob("*.json"))
    assert job_files and all(json.loads(p.read_text())["status"] in ("succeeded", "failed", "canceled") for p in job_files)
