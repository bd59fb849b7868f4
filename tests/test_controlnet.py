"""ControlNet end to end on tiny random-weight models: the model files in every layout through
the real loaders, discovery and resolution, the pipeline (weight 0 is bit-exact, weight > 0 and
two units change the pixels), the engine's crop of control images, the service's rules, the
CLI and A1111 shapes, and A1111's ControlNet infotext through our writer, reader and sd-parsers."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core import metadata
from app.core.guides import ControlUnit
from app.core.params import GenerationParams, ParamError
from app.core.sdmeta import read_texts
from app.inference.diffusers import controlnet as cn
from app.inference.engine import BackendRequest, Engine, Job
from app.inference.errors import ModelLoadError, PickleRefusedError
from tinycontrolnet import build_controlnet, save_diffusers, save_single_file

SIZE = 64
CANNY = "control_v11p_sd15_canny"  # an original-layout single file, as lllyasviel publishes them
SCRIBBLE = "control_tiny_scribble"  # a diffusers folder
LINEART = "tiny_lineart_diffusers"  # a single file with diffusers' keys


def _fake_header_file(path: Path, tensors: dict[str, list[int]]) -> Path:
    """A .safetensors file with only a header (shapes) and zero bytes: enough for inspection."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return path


@pytest.fixture(scope="module")
def controlnets(tmp_path_factory):
    """A models folder with ControlNet/ in three layouts plus two that must be refused, and an
    A1111 install with one more; the environment points discovery at both."""
    root = tmp_path_factory.mktemp("cn")
    folder = root / "models" / cn.FOLDER
    save_single_file(folder / f"{CANNY}.safetensors", seed=3)
    save_diffusers(folder / SCRIBBLE, seed=4)
    save_single_file(folder / f"{LINEART}.safetensors", seed=5, layout="diffusers")
    _fake_header_file(folder / "control_sdxl_canny.safetensors", {
        "control_model.input_hint_block.0.weight": [16, 3, 3, 3], "control_model.label_emb.0.0.weight": [1280, 2816]})
    (folder / "control_v11f1p_sd15_depth.pth").write_bytes(b"not opened")
    (folder / "control_loop.safetensors").symlink_to(folder / "control_loop.safetensors")
    a1111 = root / "a1111"
    save_single_file(a1111 / "models" / "ControlNet" / "t2i_like_shuffle.safetensors", seed=6)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INPAINT_STUDIO_MODELS", str(root / "models"))
        mp.setenv("INPAINT_STUDIO_A1111", str(a1111))
        mp.setenv("HF_HUB_CACHE", str(root / "hub"))
        yield folder


# -- files ------------------------------------------------------------------------------------------
def test_every_layout_loads_through_the_real_loader_with_the_same_weights(controlnets):
    import torch

    for name, seed in ((CANNY, 3), (SCRIBBLE, 4), (LINEART, 5)):
        info = cn.preflight(name, allow_pickle=False)
        state = cn.load_controlnet(info, torch.float32).state_dict()
        reference = build_controlnet(seed).state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference), name


def test_discovery_resolution_and_refusals(controlnets, tmp_path):
    found = {i.name: i for i in cn.discover_controlnets()}
    assert {CANNY, SCRIBBLE, LINEART, "t2i_like_shuffle", "control_sdxl_canny", "control_v11f1p_sd15_depth"} <= set(found)
    assert "SDXL" in found["control_sdxl_canny"].note and found[CANNY].usable and found[SCRIBBLE].kind == "diffusers"
    assert "cannot be read" in found["control_loop"].note  # a link loop is listed with why, never ends the listing
    # a unit's model: by name, by A1111's "name [hash]", by path, by Hugging Face id in the cache
    assert cn.resolve(f"{CANNY} [{cn.short_hash(found[CANNY])}]").path == found[CANNY].path
    assert cn.resolve(str(controlnets / SCRIBBLE)).kind == "diffusers"
    from tinymodels import make_fake_hf_cache

    make_fake_hf_cache(controlnets.parent.parent / "hub", "lllyasviel/control_v11p_sd15_scribble", controlnets / SCRIBBLE)
    assert cn.resolve("lllyasviel/control_v11p_sd15_scribble").kind == "hf_cache"
    # a server's clients name models, never paths
    with pytest.raises(ModelLoadError):
        cn.resolve(str(controlnets / SCRIBBLE), allow_paths=False)
    # the control type finds its model by name; none installed says where to put one
    assert cn.find_for_module("canny").name == CANNY and cn.find_for_module("shuffle").name == "t2i_like_shuffle"
    with pytest.raises(ModelLoadError, match="no ControlNet model for 'mlsd'.*ControlNet"):
        cn.find_for_module("mlsd")
    with pytest.raises(PickleRefusedError, match="arbitrary code"):
        cn.preflight("control_v11f1p_sd15_depth", allow_pickle=False)
    with pytest.raises(ModelLoadError, match="SDXL"):
        cn.preflight("control_sdxl_canny", allow_pickle=False)


def test_models_command_lists_controlnets(controlnets, capsys):
    from app.cli.main import main

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["controlnets"]}
    assert rows[CANNY]["usable"] and not rows["control_sdxl_canny"]["usable"]


# -- running ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backend(tiny_inpaint_model):
    from app.inference.registry import LoadOptions, load_backend

    return load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))


def _request(units=(), images=(), seed=11, steps=1):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[16:48, 16:48] = 255
    params = GenerationParams(prompt="a stone wall", seed=seed, steps=steps, guidance=3.0, scheduler="Euler a",
                              controls=tuple(units))
    return BackendRequest(image, mask, params, (seed,), tuple(images))


def test_weight_zero_is_bit_exact_and_weight_changes_the_image(backend, controlnets):
    run = lambda req: backend.generate(req, lambda *a: None, lambda: False)[0]  # noqa: E731
    control = np.random.default_rng(8).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    plain = run(_request(steps=2))
    zero = run(_request([ControlUnit("none", CANNY, 0.0)], [control], steps=2))
    one = run(_request([ControlUnit("none", CANNY, 1.0)], [control], steps=2))
    two = run(_request([ControlUnit("none", CANNY, 1.0), ControlUnit("none", SCRIBBLE, 0.7, 0.0, 0.5)],
                       [control, control[::-1].copy()], steps=2))  # the second acts on the first of 2 steps
    assert np.array_equal(zero, plain)
    assert np.abs(one.astype(int) - plain).mean() > 1.0
    assert np.abs(two.astype(int) - one).mean() > 1.0
    # the loaded ControlNets and the pipelines over the shared weights are kept
    assert len(backend.controls._models) == 2
    assert backend.controls.pipeline(backend.pipeline_for("inpaint"), [(ControlUnit("none", CANNY), control)]).unet \
        is backend.pipeline_for("inpaint").unet


def test_hint_encoder_runs_once_per_run_with_the_same_pixels(backend, controlnets, monkeypatch):
    """The control image's embedding is the same every step: computed once (`memo_hint`), and the
    image is the one the per-step computation gives."""
    run = lambda req: backend.generate(req, lambda *a: None, lambda: False)[0]  # noqa: E731
    control = np.random.default_rng(8).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    request = _request([ControlUnit("none", CANNY, 1.0)], [control], steps=2)
    embed = backend.controls.model(CANNY).controlnet_cond_embedding
    calls = []
    embed.conv_in.register_forward_hook(lambda *a: calls.append(1))
    once = run(request)
    assert len(calls) == 1 and request.params.steps == 2
    monkeypatch.setattr(embed, "forward", type(embed).forward.__get__(embed))  # every step, as diffusers does
    assert np.array_equal(run(request), once) and len(calls) == 3


class _Recorder:
    """A backend that returns the image it got and keeps the requests."""

    name = "recorder"
    native_resolution = False

    def __init__(self):
        self.requests: list[BackendRequest] = []

    def generate(self, request, progress, cancelled):
        self.requests.append(request)
        return [request.image.copy() for _ in request.seeds]


def test_engine_crops_and_resizes_control_images_exactly_like_the_image():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    mask = np.zeros((120, 90), np.uint8)
    mask[50:70, 30:55] = 255
    params = GenerationParams(prompt="x", model="m", seed=1, width=256, height=256,
                              controls=(ControlUnit("none", "cn", 1.0), ControlUnit("none", "cn", 0.5)))
    recorder = _Recorder()
    Engine(recorder).run(Job(params, image, mask, control_images=(image.copy(), image[::-1].copy())))
    request = recorder.requests[0]
    assert request.image.shape == (256, 256, 3) and len(request.control_images) == 2
    assert np.array_equal(request.control_images[0], request.image)
    assert not np.array_equal(request.control_images[1], request.image)


def test_service_rules_count_backend_and_the_preprocessor_seam(controlnets, monkeypatch):
    from app.service import GenerationRequest, GenerationService
    from app.service import controls as service_controls

    image = np.full((64, 64, 3), 120, np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    unit = ControlUnit("canny", CANNY, 0.8)
    recorder = _Recorder()
    service = GenerationService(loader=lambda ref, options: recorder)
    params = GenerationParams(prompt="x", model="m", seed=1, width=256, height=256, controls=(unit,))
    with pytest.raises(ParamError) as err:
        service.check(GenerationRequest(params, image, mask))
    assert err.value.field == "control_images"
    with pytest.raises(ParamError, match="controls need a diffusion model"):
        GenerationService().check(GenerationRequest(params.replace(model="builtin:telea"), image, mask,
                                                    control_images=(image,)))
    with pytest.raises(ParamError) as err:
        service.check(GenerationRequest(params.replace(controls=(ControlUnit("none", "no_such_net"),)), image, mask,
                                        control_images=(image,)))
    assert err.value.field == "controls[0].model"
    seen = []

    def preprocess(module, img):
        seen.append(module)
        return 255 - img

    monkeypatch.setattr(service_controls, "preprocess", preprocess)
    service.run(GenerationRequest(params, image, mask, control_images=(image,)))
    assert seen == ["canny"] and np.all(recorder.requests[0].control_images[0] == 255 - 120)


# -- front ends --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, expected", [
    ("canny:edges.png", ("canny", "edges.png", [])),
    ("scribble:C:\\sketch.png:0.8", ("scribble", "C:\\sketch.png", [0.8])),
    ("none:a:b.png:1.2:0.1:0.9", ("none", "a:b.png", [1.2, 0.1, 0.9])),
])
def test_cli_control_spec(spec, expected):
    from app.cli.control_args import parse_spec

    assert parse_spec(spec) == expected


def test_cli_says_when_no_controlnet_is_installed(controlnets, tmp_path, capsys):
    from app.cli.main import main

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "in.png")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "mask.png")
    code = main(["inpaint", "-i", str(tmp_path / "in.png"), "-m", str(tmp_path / "mask.png"), "-o",
                 str(tmp_path / "out.png"), "--control", f"mlsd:{tmp_path / 'in.png'}", "--model", "builtin:telea"])
    assert code == 2 and "no ControlNet model for 'mlsd'" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("unit, field", [
    ({"weight": 3}, "alwayson_scripts.controlnet.args[0].weight"),
    ({"guidance_start": 0.9, "guidance_end": 0.2}, "alwayson_scripts.controlnet.args[0].guidance_end"),
    ({"module": "reference_only"}, "alwayson_scripts.controlnet.args[0].module"),
    ({"model": "/etc/passwd"}, "alwayson_scripts.controlnet.args[0].model"),
    ({"resize_mode": "Stretch"}, "alwayson_scripts.controlnet.args[0].resize_mode"),
    ({"weight": "1"}, "alwayson_scripts.controlnet.args[0].weight"),
])
def test_a1111_controlnet_bad_values_are_422_naming_the_field(controlnets, unit, field):
    import webuiapi

    from app.server.controlnet_shape import parse
    from app.server.errors import ApiError

    arg = webuiapi.ControlNetUnit(module="canny", model=f"{CANNY} [abcdef12]").to_dict() | unit
    with pytest.raises(ApiError) as err:
        parse({"alwayson_scripts": {"controlnet": {"args": [arg]}}})
    assert err.value.status == 422 and err.value.field == field


def test_a1111_controlnet_units_parse_as_webuiapi_sends_them(controlnets):
    import webuiapi

    from app.server.controlnet_shape import parse

    args = [webuiapi.ControlNetUnit(module="canny", model=f"{CANNY} [abcdef12]", weight=0.6, guidance_end=0.8).to_dict(),
            webuiapi.ControlNetUnit(module="scribble_pidinet", model="None", enabled=False).to_dict(),
            webuiapi.ControlNetUnit(module="canny", model="None", image=Image.new("RGB", (8, 8))).to_dict()]
    parsed = parse({"alwayson_scripts": {"ControlNet": {"args": args}}})
    assert [p.unit for p in parsed] == [ControlUnit("canny", CANNY, 0.6, 0.0, 0.8), ControlUnit("canny", CANNY, 1.0)]
    assert parsed[1].image and parsed[1].where == "alwayson_scripts.ControlNet.args[2]"
    assert parsed[0].image is None and parsed[0].resize_mode == "Resize and Fill"


# -- metadata ----------------------------------------------------------------------------------------
#: What A1111's ControlNet extension (1.1.4xx) writes, taken as the reference format.
A1111_TEXT = ('a lighthouse\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 5, Size: 512x512, '
              'Model: sd15, Denoising strength: 0.75, Mask blur: 4, ControlNet 0: "Module: canny, Model: '
              'control_v11p_sd15_canny [d14c016b], Weight: 0.8, Resize Mode: Crop and Resize, Low Vram: False, '
              'Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.1, Guidance End: 0.9, '
              'Pixel Perfect: False, Control Mode: Balanced, Hr Option: Both, Save Detected Map: True", '
              'ControlNet 1: "Module: softedge_pidinet, Model: control_v11p_sd15_softedge [a8575a2a], Weight: 1.0, '
              'Resize Mode: Crop and Resize, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: True, '
              'Control Mode: Balanced", Version: v1.10.1')


def test_a1111_controlnet_infotext_is_recalled():
    report = read_texts({"parameters": A1111_TEXT})
    assert report.params.controls == (ControlUnit("canny", "control_v11p_sd15_canny [d14c016b]", 0.8, 0.1, 0.9),
                                      ControlUnit("softedge", "control_v11p_sd15_softedge [a8575a2a]", 1.0, 0.0, 1.0))
    assert "controls" in report.fields_set


def test_controlnet_infotext_round_trips_through_our_writer_reader_and_sd_parsers(tmp_path):
    from sd_parsers import ParserManager

    from app.core.imageio import save_image

    units = (ControlUnit("canny", "control_v11p_sd15_canny", 0.8, 0.1, 0.9), ControlUnit("scribble", "/m/scribble.safetensors", 1.2))
    params = GenerationParams(model="sd15.safetensors", prompt="a lighthouse", seed=5, steps=20, controls=units,
                              extra={metadata.CONTROLNET_MODELS: {"control_v11p_sd15_canny": "control_v11p_sd15_canny [d14c016b]"}})
    text = metadata.format_a1111(params, 512, 512)
    assert 'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 0.8,' in text
    recalled = read_texts({"parameters": text}).params
    assert recalled.controls == (ControlUnit("canny", "control_v11p_sd15_canny [d14c016b]", 0.8, 0.1, 0.9),
                                 ControlUnit("scribble", "scribble", 1.2, 0.0, 1.0))
    assert (recalled.seed, recalled.steps, recalled.prompt) == (5, 20, "a lighthouse")
    # sd-parsers reads our file as it reads the extension's own text: the same values for the same keys
    ours = save_image(tmp_path / "ours.png", np.zeros((8, 8, 3), np.uint8), params=params)
    theirs = tmp_path / "theirs.png"
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_TEXT)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(theirs, pnginfo=info)
    a, b = (ParserManager().parse(str(p)) for p in (ours, theirs))
    assert a.samplers[0].parameters["seed"] == b.samplers[0].parameters["seed"] == "5"
    shared = {"Guidance Start", "Guidance End", "Weight", "Resize Mode"}
    assert {k: a.metadata[k] for k in shared} == {"Guidance Start": "0.0", "Guidance End": "1.0", "Weight": "1.2",
                                                  "Resize Mode": "Crop and Resize"}
    assert shared <= set(b.metadata)


# -- the same pixels from every front end -------------------------------------------------------------
def test_webuiapi_controlnet_request_gets_the_cli_pixels(controlnets, tiny_inpaint_model, tmp_path):
    """A webuiapi img2img with a ControlNetUnit and the CLI with the same arguments write the same
    pixels: one parameter model, one service, one engine behind both."""
    import webuiapi

    from app.cli.main import main
    from app.server.config import ServerConfig
    from serverutil import centre_mask, running_server, scene

    image, mask = scene(), centre_mask()
    control = np.zeros((SIZE, SIZE, 3), np.uint8)
    control[:, ::8] = 255  # a scribble of vertical lines
    for name, arr in (("in", image), ("mask", mask), ("ctl", control)):
        Image.fromarray(arr).save(tmp_path / f"{name}.png")
    info = cn.resolve(CANNY)
    config = ServerConfig(data_dir=tmp_path / "serve", model=str(tiny_inpaint_model))
    with running_server(config) as server:
        api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port, sampler="Euler a", steps=2)
        unit = webuiapi.ControlNetUnit(image=Image.fromarray(control), module="none", weight=0.8, guidance_start=0.0,
                                       guidance_end=0.5, model=f"{CANNY} [{cn.short_hash(info)}]")
        result = api.img2img(images=[Image.fromarray(image)], mask_image=Image.fromarray(mask), prompt="a wall", seed=7,
                             inpainting_fill=1, inpaint_full_res=True, inpaint_full_res_padding=16, denoising_strength=1.0,
                             cfg_scale=7, width=256, height=256, mask_blur=4, controlnet_units=[unit],
                             alwayson_scripts={})  # webuiapi writes the units into this dict: not into its shared default
    via_api = np.asarray(result.image.convert("RGB"))
    assert f'ControlNet 0: "Module: none, Model: {CANNY} [{cn.short_hash(info)}], Weight: 0.8' in result.info["infotexts"][0]
    out = tmp_path / "cli.png"
    assert main(["inpaint", "-i", str(tmp_path / "in.png"), "-m", str(tmp_path / "mask.png"), "-o", str(out),
                 "--model", str(tiny_inpaint_model), "-p", "a wall", "--seed", "7", "--steps", "2", "--scheduler", "Euler a",
                 "--guidance", "7", "--strength", "1", "--width", "256", "--height", "256", "--mask-blur", "4",
                 "--masked-content", "original", "--inpaint-area", "masked", "--padding", "16",
                 "--control", f"none:{tmp_path / 'ctl.png'}:0.8:0:0.5", "--control-model", CANNY]) == 0
    via_cli = np.asarray(Image.open(out).convert("RGB"))
    assert np.array_equal(via_api, via_cli)
    assert not np.array_equal(via_cli[mask > 0], image[mask > 0])
    assert metadata.read_params(out).controls == (ControlUnit("none", CANNY, 0.8, 0.0, 0.5),)


def test_remote_backend_sends_control_images_and_gets_the_local_pixels(controlnets, backend, tiny_inpaint_model, tmp_path):
    """The editor's remote: model sends each work-size control image (PNG) with its crop; the
    server's backend then paints what the local one does. A path as a model is refused there."""
    from app.inference.remote import RemoteBackend, RemoteGenerationError
    from app.server.config import ServerConfig
    from serverutil import running_server

    control = np.zeros((SIZE, SIZE, 3), np.uint8)
    control[::8] = 255
    request = _request([ControlUnit("none", CANNY, 0.9)], [control])
    local = backend.generate(request, lambda *a: None, lambda: False)
    with running_server(ServerConfig(data_dir=tmp_path / "serve", model=str(tiny_inpaint_model))) as server:
        remote = RemoteBackend(f"remote:{server.url}")
        assert np.array_equal(remote.generate(request, lambda *a: None, lambda: False)[0], local[0])
        by_path = _request([ControlUnit("none", str(controlnets / f"{CANNY}.safetensors"), 0.9)], [control])
        with pytest.raises(RemoteGenerationError, match="422"):
            remote.generate(by_path, lambda *a: None, lambda: False)


def test_finished_maps_are_not_preprocessed_again_and_inputs_are():
    """The editor's layers are maps (canny already run); the CLI's and the APIs' images are inputs."""
    from app.service.controls import control_images
    from app.service.generation import GenerationRequest

    image = np.zeros((32, 32, 3), np.uint8)
    image[8:24, 8:24] = 255
    params = GenerationParams(prompt="p", controls=(ControlUnit("canny", "cn"),))
    as_map = GenerationRequest(params, image, control_images=(image,), control_maps=True)
    as_input = GenerationRequest(params, image, control_images=(image,))
    assert control_images(as_map, params)[0] is image
    edges = control_images(as_input, params)[0]
    assert edges.shape == image.shape and edges[16, 16].tolist() == [0, 0, 0] and edges.any()


def test_the_inpaint_controlnet_reads_the_picture_with_masked_pixels_at_minus_one():
    from types import SimpleNamespace

    from app.inference.diffusers.control_pipes import ControlNets

    image = np.full((16, 16, 3), 255, np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    params = GenerationParams(prompt="p", controls=(ControlUnit("inpaint", "cn"),))
    request = SimpleNamespace(params=params, control_images=(image,), mask=mask)
    condition = ControlNets.call_kwargs(ControlNets.active(request))["control_image"]
    assert tuple(condition.shape) == (1, 3, 16, 16)
    assert float(condition[0, 0, 5, 5]) == -1.0 and float(condition[0, 0, 0, 0]) == 1.0


@pytest.mark.parametrize("kind", ["tiny_inpaint_model", "tiny_base_model"])
def test_a_controlnet_guides_a_soft_inpainting_run_and_zero_mask_pixels_stay_exact(controlnets, kind, request):
    """Two features meeting: soft inpainting's per-step blend runs inside the ControlNet pipeline
    made over the one soft runs use (inpaint for 9 channels, img2img for 4)."""
    from app.core.guides import SoftInpainting
    from app.inference.registry import LoadOptions, load_backend

    model = load_backend(str(request.getfixturevalue(kind)), LoadOptions(device="cpu"))
    image = np.random.default_rng(5).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[16:48, 16:48] = 255
    mask[16:48, 16:32] = 128  # half of the hole may change half as much
    control = np.random.default_rng(8).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    params = GenerationParams(prompt="a stone wall", model=model.name, seed=11, steps=2, guidance=3.0, scheduler="DDIM",
                              mask_blur=0, soft_inpainting=SoftInpainting(difference_threshold=0.0))
    soft = Engine(model).run(Job(params, image, mask)).candidates[0].image
    guided = Engine(model).run(Job(params.replace(controls=(ControlUnit("none", CANNY, 1.0),)), image, mask,
                                   control_images=(control,))).candidates[0].image
    assert np.array_equal(guided[mask == 0], image[mask == 0])
    assert np.abs(guided.astype(int) - soft)[mask > 0].mean() > 1.0  # the ControlNet acted


def test_a_controlnet_adds_no_host_round_trip_to_a_step(backend, controlnets, monkeypatch):
    """Steps 2…N−1 of a ControlNet run stay free of host syncs, as `tests/test_gpu_pace.py`
    requires of every step (the hint is embedded once, the scales are Python numbers)."""
    import dataclasses

    import torch
    from test_gpu_pace import HostSyncs, make_request

    steps = 6
    request = make_request(steps=steps, scheduler="Euler", controls=(ControlUnit("none", CANNY, 0.8, 0.0, 0.9),))
    h, w = request.image.shape[:2]
    control = np.random.default_rng(8).integers(0, 256, (h, w, 3), dtype=np.uint8)
    request = dataclasses.replace(request, control_images=(control,))
    monkeypatch.setattr(backend, "preview_interval_s", 1e9)  # previews have their own test there
    mode = HostSyncs()

    def progress(step, total, preview):
        mode.step = step
        # the scheduler's own CPU tables (sigmas: read on the host by design) of the ControlNet
        # pipeline that ran, as test_gpu_pace registers the plain pipeline's
        for pipe in backend.controls._pipes.values():
            sched = pipe.scheduler
            mode.host |= {t.untyped_storage().data_ptr() for t in vars(sched).values()
                          if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t is not sched.timesteps}

    with mode:
        backend.generate(request, progress, lambda: False)
    assert backend.controls._pipes  # a ControlNet pipeline ran
    per_step = {s: sum(n for (k, _), n in mode.counts.items() if k == s) for s in range(1, steps - 1)}
    assert per_step == {s: 0 for s in range(1, steps - 1)}, mode.counts
