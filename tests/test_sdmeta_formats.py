"""The formats issue 30 found missed, in files built the way those tools write them (Pillow's
EXIF in WebP and JPEG, the nodes' JSON layouts): ComfyUI graphs in EXIF, Civitai's generator JSON,
Fooocus' log keys."""

import json

from PIL import Image, PngImagePlugin

from app.core.sdmeta import read_metadata

PROMPT_GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse, café at dusk", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 123456789012, "steps": 24, "cfg": 6.5, "sampler_name": "euler_ancestral",
                                               "scheduler": "karras", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
                                               "negative": ["7", 0], "latent_image": ["5", 0]}},
}
#: The editor's graph of the same run (ComfyUI's ``workflow``: widget values, links by id).
WORKFLOW = {"nodes": [
    {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["dreamshaper_8.safetensors"], "inputs": []},
    {"id": 5, "type": "EmptyLatentImage", "widgets_values": [512, 768, 1], "inputs": []},
    {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a lighthouse, café at dusk"], "inputs": []},
    {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["blurry"], "inputs": []},
    {"id": 3, "type": "KSampler", "widgets_values": [123456789012, "fixed", 24, 6.5, "euler_ancestral", "karras", 1.0],
     "inputs": [{"name": "positive", "link": 1}, {"name": "negative", "link": 2}, {"name": "latent_image", "link": 3}]},
], "links": [[1, 6, 0, 3, 1, "CONDITIONING"], [2, 7, 0, 3, 2, "CONDITIONING"], [3, 5, 0, 3, 3, "LATENT"]]}

EXPECTED = ("a lighthouse, café at dusk", "blurry", 123456789012, 24, 6.5, "Euler a Karras", 512, 768)


def _values(report):
    p = report.params
    return p.prompt, p.negative_prompt, p.seed, p.steps, p.guidance, p.scheduler, p.width, p.height


def test_comfyui_animated_webp_graph_in_exif(tmp_path):
    """ComfyUI's SaveAnimatedWEBP: exif[0x0110] = "prompt:" + json, then "workflow:" + json at 0x010F."""
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    exif = frames[0].getexif()
    exif[0x0110] = "prompt:{}".format(json.dumps(PROMPT_GRAPH))
    exif[0x010F] = "workflow:{}".format(json.dumps(WORKFLOW))
    path = tmp_path / "ComfyUI_00001_.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, exif=exif, lossless=False, quality=80)
    report = read_metadata(path)
    assert report.format == "ComfyUI" and _values(report) == EXPECTED
    assert report.model_name == "dreamshaper_8.safetensors"


def test_comfyui_jpeg_graph_in_make_and_image_description(tmp_path):
    """The JPEG/WebP save nodes: Make = "Prompt:" + json, ImageDescription = "Workflow:" + json."""
    image = Image.new("RGB", (16, 16), "green")
    exif = image.getexif()
    exif[0x010F] = "Prompt:" + json.dumps(PROMPT_GRAPH)
    exif[0x010E] = "Workflow:" + json.dumps(WORKFLOW)
    image.save(tmp_path / "saved.jpg", exif=exif, quality=90)
    report = read_metadata(tmp_path / "saved.jpg")
    assert report.format == "ComfyUI" and _values(report) == EXPECTED


def test_comfyui_jpeg_workflow_alone_in_image_description(tmp_path):
    image = Image.new("RGB", (16, 16))
    exif = image.getexif()
    exif[0x010E] = "Workflow: " + json.dumps(WORKFLOW)
    image.save(tmp_path / "workflow.jpg", exif=exif)
    report = read_metadata(tmp_path / "workflow.jpg")
    assert report.format == "ComfyUI" and _values(report) == EXPECTED


def _civitai_comment(graph: dict, request: dict | None) -> bytes:
    data = {**graph, "extra": {"airs": ["urn:air:sd1:checkpoint:civitai:4384@128713"]}}
    if request is not None:
        data["extraMetadata"] = json.dumps(request)
    return b"UNICODE\x00" + json.dumps(data).encode("utf-16-be")  # piexif's UserComment.dump(…, "unicode")


CIVITAI_GRAPH = {
    "resource-stack": {"class_type": "CheckpointLoaderSimple",
                       "inputs": {"ckpt_name": "urn:air:sd1:checkpoint:civitai:4384@128713"}},
    "6": {"class_type": "smZ CLIPTextEncode", "inputs": {"text": "a fox in the snow", "parser": "A1111",
                                                         "clip": ["resource-stack", 1]}},
    "7": {"class_type": "smZ CLIPTextEncode", "inputs": {"text": "lowres", "parser": "A1111",
                                                         "clip": ["resource-stack", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 1}},
    "11": {"class_type": "KSampler", "inputs": {"sampler_name": "dpmpp_2m", "scheduler": "karras", "seed": 991,
                                                "steps": 25, "cfg": 7, "denoise": 1, "model": ["resource-stack", 0],
                                                "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
}


def _jpeg_with_comment(path, comment: bytes):
    image = Image.new("RGB", (16, 16))
    exif = image.getexif()
    exif.get_ifd(0x8769)[0x9286] = comment
    image.save(path, exif=exif)
    return path


def test_civitai_resource_stack_json_in_jpeg_user_comment(tmp_path):
    request = {"prompt": "a fox in the snow", "negativePrompt": "lowres", "steps": 25, "cfgScale": 7,
               "sampler": "DPM++ 2M Karras", "seed": 991, "width": 512, "height": 640, "clipSkip": 2}
    report = read_metadata(_jpeg_with_comment(tmp_path / "civitai.jpeg", _civitai_comment(CIVITAI_GRAPH, request)))
    assert report.format == "Civitai"
    p = report.params
    assert (p.prompt, p.negative_prompt, p.seed, p.steps, p.guidance, p.scheduler, p.width, p.height) == (
        "a fox in the snow", "lowres", 991, 25, 7.0, "DPM++ 2M Karras", 512, 640)
    assert report.model_name == "urn:air:sd1:checkpoint:civitai:4384@128713"
    assert report.fields["Civitai resources"] == ["urn:air:sd1:checkpoint:civitai:4384@128713"]


def test_civitai_request_wins_over_an_upscale_graph_with_two_samplers(tmp_path):
    graph = {**CIVITAI_GRAPH, "12": {**CIVITAI_GRAPH["11"], "inputs": {**CIVITAI_GRAPH["11"]["inputs"], "seed": 5}}}
    request = {"prompt": "a fox in the snow", "negativePrompt": "lowres", "steps": 30, "cfgScale": 5.5,
               "sampler": "Euler a", "seed": 42, "width": 512, "height": 768}
    report = read_metadata(_jpeg_with_comment(tmp_path / "upscaled.jpeg", _civitai_comment(graph, request)))
    p = report.params
    assert report.format == "Civitai" and (p.seed, p.steps, p.guidance, p.scheduler, p.height) == (
        42, 30, 5.5, "Euler a", 768)


def test_civitai_graph_without_request_is_read_from_its_nodes(tmp_path):
    report = read_metadata(_jpeg_with_comment(tmp_path / "graph.jpeg", _civitai_comment(CIVITAI_GRAPH, None)))
    p = report.params
    assert report.format == "Civitai" and (p.prompt, p.seed, p.scheduler) == ("a fox in the snow", 991, "DPM++ 2M Karras")


def _png_parameters(path, data: dict):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", json.dumps(data))
    Image.new("RGB", (16, 16)).save(path, pnginfo=info)
    return path


def test_fooocus_capitalised_keys_in_png_parameters(tmp_path):
    data = {"Prompt": "a cabin in the woods", "Negative Prompt": "text", "Fooocus V2 Expansion": "a cabin, cozy",
            "Styles": "['Fooocus V2', 'Fooocus Enhance']", "Performance": "Speed", "Resolution": "(1152, 896)",
            "Sharpness": 2.0, "Guidance Scale": 4.0, "ADM Guidance": "(1.5, 0.8, 0.3)",
            "Base Model": "juggernautXL_v8Rundiffusion.safetensors", "Refiner Model": "None", "Refiner Switch": 0.5,
            "Sampler": "dpmpp_2m_sde_gpu", "Scheduler": "karras", "Seed": "2180428934", "Version": "Fooocus v2.1.865"}
    report = read_metadata(_png_parameters(tmp_path / "fooocus.png", data))
    assert report.format == "Fooocus"
    p = report.params
    assert (p.prompt, p.negative_prompt, p.seed, p.steps, p.guidance, p.scheduler, p.width, p.height) == (
        "a cabin in the woods", "text", 2180428934, 30, 4.0, "DPM++ 2M SDE Karras", 1152, 896)
    assert report.model_name == "juggernautXL_v8Rundiffusion.safetensors"
    assert any("Speed preset" in n for n in report.notes) and any("styles" in n for n in report.notes)


def test_fooocus_capitalised_keys_with_steps_and_an_own_schedule(tmp_path):
    data = {"Prompt": "a red car", "Negative Prompt": "", "Steps": 20, "Guidance Scale": 7, "Sampler": "euler",
            "Scheduler": "sgm_uniform", "Seed": 9, "Base Model": "sd15.safetensors", "Resolution": "(512, 512)"}
    p = read_metadata(_png_parameters(tmp_path / "f.png", data)).params
    assert (p.steps, p.scheduler, p.width) == (20, "Euler SGM Uniform", 512)


def test_easy_diffusion_titles_are_not_taken_for_fooocus(tmp_path):
    data = {"Prompt": "a cat", "Steps": 25, "Guidance Scale": 7.5, "Sampler": "euler_a", "Seed": 3,
            "Stable Diffusion model": "sd-v1-5", "Width": 512, "Height": 512}
    assert read_metadata(_png_parameters(tmp_path / "ed.png", data)).format == "Easy Diffusion"
