"""Model discovery and loading: folders, single files, the Hugging Face cache, refusals, devices."""

import json
import shutil
import socket

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from app.inference.diffusers import catalog, checkpoint, loader
from app.inference.diffusers.device import choose_device
from app.inference.engine import BackendRequest
from app.inference.errors import DeviceError, ModelLoadError, PickleRefusedError, UnsupportedModelError
from app.inference.diffusers.catalog import discover_models, resolve_model
from app.inference.registry import LoadOptions, load_backend
from app.core.params import GenerationParams
from tinymodels import make_fake_hf_cache, unet_to_ldm, vae_to_ldm


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Empty models dir, empty HF cache: discovery sees only what a test puts there."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("INPAINT_STUDIO_MODELS", raising=False)
    return tmp_path


def _request(size=32, seed=3, **kw):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    params = GenerationParams(prompt="a lighthouse at dusk", steps=2, guidance=3.0, seed=seed, **kw)
    return BackendRequest(image, mask, params, (seed,))


def _run(backend, request):
    return backend.generate(request, lambda *a: None, lambda: False)


# -- discovery -------------------------------------------------------------------------------------
def test_discovery_finds_classical_folders_and_files(isolated, monkeypatch, tiny_inpaint_model, tiny_base_model,
                                                     tiny_single_file):
    extra = isolated / "extra"
    extra.mkdir()
    shutil.copy(tiny_single_file, extra / "mine.safetensors")
    (extra / "old.ckpt").write_bytes(b"not opened")
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tiny_inpaint_model.parent))
    found = {m.ref: m for m in discover_models(extra_paths=[extra])}
    assert list(found)[:2] == ["builtin:telea", "builtin:ns"]
    inp, base = found[str(tiny_inpaint_model)], found[str(tiny_base_model)]
    assert (inp.kind, inp.inpainting, inp.family, inp.usable) == ("diffusers", True, "sd1", True)
    assert (base.kind, base.inpainting, base.usable) == ("diffusers", False, True)
    single = found[str(extra / "mine.safetensors")]
    assert (single.kind, single.inpainting, single.family, single.usable) == ("single_file", True, "sd1", True)
    pickle = found[str(extra / "old.ckpt")]
    assert not pickle.usable and "arbitrary code" in pickle.note


def test_user_models_dir_follows_the_app_data_folder(isolated, monkeypatch, tmp_path):
    """Models and recovery files share one data-folder rule (app.storage.paths.data_dir)."""
    import platformdirs

    monkeypatch.setenv("INPAINT_STUDIO_DATA", str(tmp_path / "data"))
    assert catalog.models_dirs()[0] == tmp_path / "data" / "models"
    monkeypatch.delenv("INPAINT_STUDIO_DATA")
    assert catalog.models_dirs()[0] == catalog.Path(platformdirs.user_data_dir("Inpaint Studio", appauthor=False)) / "models"


def test_hf_cache_discovery_and_offline_load(isolated, monkeypatch, tiny_inpaint_model, tiny_base_model, no_network):
    cache = isolated / "hf-cache"
    make_fake_hf_cache(cache, "someone/tiny-sd-inpainting", tiny_inpaint_model)
    make_fake_hf_cache(cache, "someone/tiny-sd", tiny_base_model)
    other = make_fake_hf_cache(cache, "someone/not-a-diffusion-model", tiny_inpaint_model / "text_encoder")
    assert not (other / "model_index.json").exists()
    found = {m.ref: m for m in discover_models() if m.kind == "hf_cache"}
    assert set(found) == {"someone/tiny-sd-inpainting", "someone/tiny-sd"}
    assert found["someone/tiny-sd-inpainting"].inpainting is True
    assert found["someone/tiny-sd"].inpainting is False

    # HF_HOME is honoured too (hub cache = $HF_HOME/hub), read at call time
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(isolated / "hf-home"))
    make_fake_hf_cache(isolated / "hf-home" / "hub", "other/tiny", tiny_base_model)
    assert [m.ref for m in discover_models() if m.kind == "hf_cache"] == ["other/tiny"]

    backend = load_backend("other/tiny", LoadOptions(device="cpu"))
    assert backend.info.kind == "hf_cache" and backend.inpainting is False
    assert _run(backend, _request())[0].shape == (32, 32, 3)
    with pytest.raises(ModelLoadError, match="not in the Hugging Face cache"):
        load_backend("nobody/missing", LoadOptions(device="cpu"))


# -- single file ---------------------------------------------------------------------------------
def test_single_file_loads_offline_through_shipped_configs(tiny_single_file, no_network):
    source = tiny_single_file.parent / "diffusers"
    single = load_backend(str(tiny_single_file), LoadOptions(device="cpu"))
    folder = load_backend(str(source), LoadOptions(device="cpu"))
    assert single.info.kind == "single_file" and single.inpainting and single.load_seconds > 0
    for part in ("unet", "vae", "text_encoder"):
        a, b = single.components[part].state_dict(), folder.components[part].state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    # the shipped tokenizer is the real CLIP one (49408 tokens)
    assert len(single.components["tokenizer"]) == 49408
    req = _request()
    assert np.array_equal(_run(single, req)[0], _run(folder, req)[0])


def test_shipped_tokenizer_matches_openai_clip():
    """Reference ids from open_clip's SimpleTokenizer (the original CLIP BPE code), computed
    once on the same prompts; the vocabulary must be CLIP's 49408 tokens."""
    tok = checkpoint.load_clip_tokenizer()
    assert len(tok.get_vocab()) == 49408
    assert tok("a photograph of an astronaut riding a horse").input_ids == [
        49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]
    assert tok("A Cat, on a MAT!! 4k  highly-detailed").input_ids[:12] == [
        49406, 320, 2368, 267, 525, 320, 9063, 748, 275, 330, 5302, 268]
    assert tok("  extra   spaces\tand\nnewlines ").input_ids == [49406, 4231, 9006, 537, 1218, 3418, 49407]


def test_derived_config_of_real_sd15_shapes_is_the_published_config(tmp_path):
    """Shape inference on a checkpoint with SD 1.5's real shapes (built on the meta device, no
    memory) must reproduce the shipped SD 1.5 configs exactly, 9-channel variant included."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    shipped = checkpoint.shipped_config_dir()
    unet_cfg = json.loads((shipped / "unet" / "config.json").read_text())
    vae_cfg = json.loads((shipped / "vae" / "config.json").read_text())
    text_cfg = json.loads((shipped / "text_encoder" / "config.json").read_text())
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config({**unet_cfg, "in_channels": 9})
        vae = AutoencoderKL.from_config(vae_cfg)
        text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in text_cfg.items() if k != "architectures"}))
    header = {k: {"shape": list(v.shape)} for k, v in unet_to_ldm(unet.state_dict(), unet_cfg).items()}
    header |= {k: {"shape": list(v.shape)} for k, v in vae_to_ldm(vae.state_dict(), vae_cfg).items()}
    header |= {"cond_stage_model.transformer.text_model." + k: {"shape": list(v.shape)} for k, v in text.state_dict().items()}
    assert catalog.inspect_checkpoint(header) == ("sd1", True, "")
    out = checkpoint.derive_single_file_config(header, tmp_path / "cfg")
    assert json.loads((out / "unet" / "config.json").read_text()) == {**unet_cfg, "in_channels": 9}
    assert json.loads((out / "vae" / "config.json").read_text()) == vae_cfg
    assert json.loads((out / "text_encoder" / "config.json").read_text()) == text_cfg


# -- refusals --------------------------------------------------------------------------------------
def test_pickle_checkpoint_refused_unless_allowed(tmp_path, tiny_single_file, no_network):
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(tiny_single_file)}, ckpt)
    with pytest.raises(PickleRefusedError, match="arbitrary code|any code"):
        load_backend(str(ckpt), LoadOptions(device="cpu"))
    allowed = load_backend(str(ckpt), LoadOptions(device="cpu", allow_pickle=True))
    assert allowed.inpainting is True
    assert allowed.components["unet"].config.in_channels == 9


def test_folder_with_only_pickle_weights_refused(tmp_path, tiny_base_model):
    folder = shutil.copytree(tiny_base_model, tmp_path / "m")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(PickleRefusedError, match="pickle"):
        load_backend(str(folder), LoadOptions(device="cpu"))


@pytest.mark.parametrize("missing", ["unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                                     "tokenizer/tokenizer.json", "model_index.json", "text_encoder"])
def test_missing_file_is_named(tmp_path, tiny_inpaint_model, missing):
    folder = shutil.copytree(tiny_inpaint_model, tmp_path / "m")
    target = folder / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ModelLoadError) as info:
        load_backend(str(folder), LoadOptions(device="cpu"))
    assert missing.split("/")[-1] in str(info.value)


def test_nonexistent_model_path(tmp_path):
    with pytest.raises(ModelLoadError, match="model not found"):
        load_backend(str(tmp_path / "nothing-here"), LoadOptions(device="cpu"))


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_wrong_family_folders_refused(tmp_path, tiny_base_model):
    sd2 = shutil.copytree(tiny_base_model, tmp_path / "sd2")
    _edit_json(sd2 / "unet" / "config.json", cross_attention_dim=1024)
    _edit_json(sd2 / "scheduler" / "scheduler_config.json", prediction_type="v_prediction")
    with pytest.raises(UnsupportedModelError, match="2.x.*v-prediction"):
        load_backend(str(sd2), LoadOptions(device="cpu"))
    sdxl = shutil.copytree(tiny_base_model, tmp_path / "sdxl")
    _edit_json(sdxl / "model_index.json", _class_name="StableDiffusionXLPipeline",
               text_encoder_2=["transformers", "CLIPTextModelWithProjection"])
    with pytest.raises(UnsupportedModelError, match="XL"):
        load_backend(str(sdxl), LoadOptions(device="cpu"))


def test_wrong_family_single_files_refused(tmp_path, tiny_single_file):
    state = load_file(tiny_single_file)
    sdxl = {k: v for k, v in state.items() if not k.startswith("cond_stage_model.")}
    sdxl["conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"] = torch.zeros(4, 4)
    save_file(sdxl, tmp_path / "xl.safetensors")
    with pytest.raises(UnsupportedModelError, match="XL"):
        load_backend(str(tmp_path / "xl.safetensors"), LoadOptions(device="cpu"))
    sd2 = {k: v for k, v in state.items() if not k.startswith("cond_stage_model.")}
    sd2["cond_stage_model.model.token_embedding.weight"] = torch.zeros(4, 4)
    save_file(sd2, tmp_path / "v2.safetensors")
    with pytest.raises(UnsupportedModelError, match="2.x"):
        load_backend(str(tmp_path / "v2.safetensors"), LoadOptions(device="cpu"))
    five = dict(state)
    five["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(32, 5, 3, 3)
    save_file(five, tmp_path / "depth.safetensors")
    with pytest.raises(UnsupportedModelError, match="5 input channels"):
        load_backend(str(tmp_path / "depth.safetensors"), LoadOptions(device="cpu"))
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 3)
    with pytest.raises(ModelLoadError, match="not a readable"):
        load_backend(str(tmp_path / "junk.safetensors"), LoadOptions(device="cpu"))


def test_classical_refs_give_the_classical_backend():
    from app.inference.classical import ClassicalBackend

    backend = load_backend("builtin:ns")
    assert isinstance(backend, ClassicalBackend) and backend.native_resolution


def test_resolve_reports_family_without_loading(tiny_base_model):
    info = resolve_model(str(tiny_base_model))
    assert (info.kind, info.inpainting, info.family) == ("diffusers", False, "sd1")


# -- device and dtype ------------------------------------------------------------------------------
def test_device_choice(monkeypatch):
    monkeypatch.delenv("INPAINT_STUDIO_DEVICE", raising=False)
    monkeypatch.delenv("INPAINT_STUDIO_DTYPE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    auto = choose_device()
    assert (auto.device, auto.dtype) == ("cpu", torch.float32)
    assert choose_device("CPU", "bf16").dtype == torch.bfloat16
    with pytest.raises(DeviceError, match="CUDA was requested"):
        choose_device("cuda")
    with pytest.raises(DeviceError, match="MPS"):
        choose_device("mps")
    with pytest.raises(DeviceError, match="unknown device"):
        choose_device("tpu")
    with pytest.raises(DeviceError, match="unknown dtype"):
        choose_device("cpu", "fp8")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert (choose_device().device, choose_device().dtype) == ("mps", torch.float16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Fake GPU {i}")
    assert (choose_device().device, choose_device().dtype) == ("cuda:0", torch.float16)
    assert choose_device("cuda:1").description.startswith("Fake GPU 1")
    with pytest.raises(DeviceError, match="only 2 CUDA"):
        choose_device("cuda:2")
    monkeypatch.setenv("INPAINT_STUDIO_DEVICE", "cpu")
    assert choose_device().device == "cpu"


def test_truncated_weights_are_skipped_with_their_reason(tmp_path, tiny_inpaint_model):
    """A folder or checkpoint cut short by an unfinished download is listed with why, and the
    loader's preflight refuses it before torch is imported."""
    folder = tmp_path / "cut"
    shutil.copytree(tiny_inpaint_model, folder)
    vae = next((folder / "vae").glob("*.safetensors"))
    whole = vae.stat().st_size
    assert catalog.truncation(vae) == ""
    with open(vae, "r+b") as fh:
        fh.truncate(whole - 1)
    assert catalog.truncation(vae).startswith("is truncated")
    info = catalog.resolve_model(str(folder))
    assert not info.usable and "vae/" in info.note and "incomplete" in info.note
    with pytest.raises(ModelLoadError, match="truncated"):
        loader.preflight(str(folder))
    zipped = tmp_path / "weights.bin"
    torch.save({"w": torch.zeros(64)}, zipped)
    assert catalog.truncation(zipped) == ""
    zipped.write_bytes(zipped.read_bytes()[:-30])
    assert "zip directory" in catalog.truncation(zipped)
