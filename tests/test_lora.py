"""LoRAs (diffusers and kohya/A1111 formats) and textual-inversion embeddings on the tiny model:
weight 0 is the base model exactly, another weight a reproducible other picture, removal gives
the base back bit-exactly; foreign LoRAs are refused; an embedding's word changes the conditioning."""

import json
import struct

import numpy as np
import pytest
import torch

from app.inference.diffusers.network_files import discover_embeddings, discover_loras, short_hash
from app.inference.registry import LoadOptions, load_backend
from app.inference.diffusers.prompts import encode_prompt_pair, tokenize_chunks
from app.inference.errors import ModelLoadError, UnsupportedModelError
from test_diffusion import make_request, run
from tinymodels import make_lora_state, save_diffusers_lora, to_kohya

def write_header_only(path, tensors: dict):
    """A .safetensors file with the given {name: shape} of zero float32 tensors."""
    from safetensors.torch import save_file

    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, str(path))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A models folder with Lora/ (film: diffusers format in a folder, film_kohya: the same
    weights in kohya names, grain: another LoRA, an SD 2 and an SDXL one) and embeddings/."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("lora_models")
    lora = root / "Lora"
    (lora / "film").mkdir(parents=True)
    film = save_diffusers_lora(lora / "film", seed=3)
    unet_sd, te_sd = make_lora_state(seed=3)
    save_file(to_kohya(unet_sd, te_sd), str(lora / "film_kohya.safetensors"))
    (lora / "more").mkdir()
    save_file(to_kohya(*make_lora_state(seed=4)), str(lora / "more" / "grain.safetensors"))
    write_header_only(lora / "sd2style.safetensors",
                      {"lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 1024)})
    write_header_only(lora / "xlstyle.safetensors", {"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 768)})
    emb = root / "embeddings"
    emb.mkdir()
    g = torch.Generator().manual_seed(7)
    torch.save({"string_to_param": {"*": torch.randn(2, 32, generator=g)}, "name": "myemb", "step": 10}, emb / "myemb.pt")
    save_file({"emb_params": torch.randn(1, 32, generator=g)}, str(emb / "texture.safetensors"))
    save_file({"clip_l": torch.zeros(1, 768), "clip_g": torch.zeros(1, 1280)}, str(emb / "xlemb.safetensors"))
    return root, film


@pytest.fixture
def env(models, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(models[0]))
    return models


@pytest.fixture(scope="module")
def backend(tiny_inpaint_model):
    return load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))


KW = dict(steps=2, guidance=5.0, scheduler="DDIM")


def test_discovery_lists_loras_and_embeddings_with_reasons(env):
    loras = {i.name: i for i in discover_loras()}
    assert {"film", "film_kohya", "grain", "sd2style", "xlstyle"} <= set(loras)
    assert loras["film"].usable and loras["film_kohya"].context_dim == 32 and loras["grain"].usable
    assert "SD 2.x" in loras["sd2style"].note and "SDXL" in loras["xlstyle"].note
    embs = {i.name: i for i in discover_embeddings()}
    assert embs["myemb"].usable and embs["texture"].context_dim == 32 and "SDXL" in embs["xlemb"].note


def test_a1111_install_is_found(tmp_path, monkeypatch, env):
    root = tmp_path / "stable-diffusion-webui"
    for sub in ("models/Stable-diffusion", "models/Lora", "embeddings"):
        (root / sub).mkdir(parents=True)
    (root / "models/Lora/a1111lora.safetensors").write_bytes((env[1]).read_bytes())
    torch.save(torch.zeros(1, 32), root / "embeddings" / "a1111emb.bin")
    monkeypatch.setenv("INPAINT_STUDIO_A1111", str(root))
    from app.inference.diffusers.catalog import models_dirs

    assert root / "models" / "Stable-diffusion" in models_dirs()
    assert "a1111lora" in {i.name for i in discover_loras()}
    assert "a1111emb" in {i.name for i in discover_embeddings()}


def test_lora_weight_zero_is_base_weight_applies_and_removal_restores(backend, env):
    base = run(backend, make_request(prompt="a stone wall", **KW))[0]
    zero = run(backend, make_request(prompt="a stone wall <lora:film:0>", **KW))[0]
    assert np.array_equal(zero, base)
    lora = run(backend, make_request(prompt="a stone wall <lora:film:0.7>", **KW))[0]
    assert not np.array_equal(lora, base)
    assert np.array_equal(lora, run(backend, make_request(prompt="a stone wall <lora:film:0.7>", **KW))[0])
    assert np.array_equal(run(backend, make_request(prompt="a stone wall", **KW))[0], base)  # tag removed
    assert backend.networks.adapters  # ... without unloading: switching back is cheap
    backend.networks.unload_loras()
    assert np.array_equal(run(backend, make_request(prompt="a stone wall", **KW))[0], base)


def test_kohya_format_equals_diffusers_format_and_loras_combine(backend, env):
    diffusers_fmt = run(backend, make_request(prompt="a stone wall <lora:film:0.7>", **KW))[0]
    kohya_fmt = run(backend, make_request(prompt="a stone wall <lora:film_kohya:0.7>", **KW))[0]
    assert np.abs(diffusers_fmt.astype(int) - kohya_fmt.astype(int)).max() <= 1
    both = run(backend, make_request(prompt="a stone wall <lora:film:0.7> <lora:grain:0.5>", **KW))[0]
    grain = run(backend, make_request(prompt="a stone wall <lora:grain:0.5>", **KW))[0]
    assert not np.array_equal(both, diffusers_fmt) and not np.array_equal(both, grain)
    assert backend.networks.active == {"lora_grain": 0.5}


@pytest.mark.parametrize("tag, words", [("sd2style", "SD 2.x"), ("xlstyle", "SDXL"), ("nosuch", "not found")])
def test_missing_or_foreign_lora_refused_in_one_line(backend, env, tag, words):
    base = run(backend, make_request(prompt="a stone wall", **KW))[0]
    with pytest.raises(ModelLoadError) as err:
        run(backend, make_request(prompt=f"wall <lora:film:0.7> <lora:{tag}:1>", **KW))
    assert words in str(err.value) and "\n" not in str(err.value)
    # still usable, and the LoRA loaded before the refusal is not left on
    assert np.array_equal(run(backend, make_request(prompt="a stone wall", **KW))[0], base)


def test_lora_for_another_width_is_refused_against_the_model(backend, env, tmp_path):
    """A header whose width the catalog cannot name is still checked against the loaded model."""
    write_header_only(env[0] / "Lora" / "wide.safetensors",
                      {"lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768)})
    with pytest.raises(UnsupportedModelError, match="SD 1.x"):
        run(backend, make_request(prompt="wall <lora:wide:1>", **KW))


def test_embedding_word_changes_the_conditioning(tiny_inpaint_model, env):
    backend = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))
    pipe = backend.pipeline_for("inpaint")
    before = encode_prompt_pair(pipe, "(a photo of myemb:1.1)", "")[0]
    assert backend.networks.load_embeddings_for("a photo of myemb", "") == ["myemb"]
    after = encode_prompt_pair(pipe, "(a photo of myemb:1.1)", "")[0]
    assert not torch.allclose(before, after)
    ids = pipe.tokenizer.convert_tokens_to_ids(["myemb", "myemb_1"])
    assert set(ids) <= set(tokenize_chunks(pipe.tokenizer, "myemb", lambda t: pipe.maybe_convert_prompt(t, pipe.tokenizer))[0].tokens)
    table = pipe.text_encoder.get_input_embeddings().weight
    vectors = torch.load(env[0] / "embeddings" / "myemb.pt", weights_only=True)["string_to_param"]["*"]
    assert torch.equal(table[ids], vectors)
    # end to end, safetensors embedding, plain-text path
    plain = run(backend, make_request(prompt="a photo of wall", **KW))[0]
    texture = run(backend, make_request(prompt="a photo of texture", **KW))[0]
    assert "texture" in backend.networks.embeddings and not np.array_equal(plain, texture)
    with pytest.raises(UnsupportedModelError, match="SDXL"):
        backend.networks.load_embeddings_for("xlemb")


class NotAllowed:
    pass


def test_pickled_embedding_with_objects_is_refused(backend, env):
    bad = env[0] / "embeddings" / "evil.pt"
    torch.save({"string_to_param": {"*": NotAllowed()}}, bad)
    try:
        with pytest.raises(ModelLoadError, match="not a readable embedding"):
            backend.networks.load_embeddings_for("an evil word")
    finally:
        bad.unlink()


def test_short_hashes_follow_a1111(env, tmp_path):
    import hashlib

    film = env[1]
    data = film.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    assert short_hash(film, skip_safetensors_header=True) == hashlib.sha256(data[8 + size:]).hexdigest()[:12]
    emb = env[0] / "embeddings" / "myemb.pt"
    assert short_hash(emb, skip_safetensors_header=True) == hashlib.sha256(emb.read_bytes()).hexdigest()[:12]
    assert json.loads(data[8:8 + size])  # the part skipped is the JSON header


def test_infotext_carries_lora_and_ti_hashes(tiny_inpaint_model, env):
    """The engine's result params carry A1111's "Lora hashes"/"TI hashes"; the PNG text has them;
    a later run without networks clears them."""
    from app.core.metadata import format_a1111
    from app.core.params import GenerationParams
    from app.inference.engine import Engine, Job

    backend = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    params = GenerationParams(prompt="wall, myemb <lora:film:0.7> <lora:grain:0.4>", negative_prompt="texture",
                              model=str(tiny_inpaint_model), steps=1, seed=5, scheduler="DDIM", width=256, height=256)
    result = Engine(backend).run(Job(params, image, mask))
    film = short_hash(env[1], skip_safetensors_header=True)
    grain = short_hash(env[0] / "Lora" / "more" / "grain.safetensors", skip_safetensors_header=True)
    emb = short_hash(env[0] / "embeddings" / "myemb.pt", skip_safetensors_header=False)
    tex = short_hash(env[0] / "embeddings" / "texture.safetensors", skip_safetensors_header=False)
    assert result.params.extra["Lora hashes"] == f"film: {film}, grain: {grain}"
    assert result.params.extra["TI hashes"] == f"myemb: {emb}, texture: {tex}"
    text = format_a1111(result.params, 64, 64)
    assert f'Lora hashes: "film: {film}, grain: {grain}"' in text and f'TI hashes: "myemb: {emb}, texture: {tex}"' in text
    again = Engine(backend).run(Job(result.params.replace(prompt="wall", negative_prompt=""), image, mask))
    assert "Lora hashes" not in format_a1111(again.params, 64, 64) and "TI hashes" not in format_a1111(again.params, 64, 64)


def test_lora_applies_on_the_fused_qkv_fast_path(tiny_inpaint_model, backend, env):
    """The CUDA fast path fuses q/k/v into one projection, which would skip the LoRA layers on
    them: the LoRA run on a fused model equals the one on an unfused model (within rounding)."""
    fast = load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu", fast=True))
    assert fast.pipeline_for("inpaint").unet.original_attn_processors is not None  # fused
    fused_lora = run(fast, make_request(prompt="a stone wall <lora:film:0.7>", **KW))[0]
    plain_lora = run(backend, make_request(prompt="a stone wall <lora:film:0.7>", **KW))[0]
    assert np.abs(fused_lora.astype(int) - plain_lora.astype(int)).max() <= 1


def test_a1111_text_round_trip_keeps_loras_fill_mode_and_names_what_is_missing(env):
    from app.core.metadata import format_a1111, parse_a1111
    from app.core.params import GenerationParams
    from app.inference.diffusers.network_files import missing_networks, network_hashes

    prompt = "wall, myemb <lora:film:0.7> <lora:gone:0.3>"
    params = GenerationParams(prompt=prompt, masked_content="latent_nothing", seed=3,
                              extra=network_hashes(prompt, ""))
    back = parse_a1111(format_a1111(params, 512, 512))
    assert back.prompt == prompt and back.masked_content == "latent_nothing"
    assert back.extra["source_fields"]["Lora hashes"] == params.extra["Lora hashes"]  # film only: gone has no file
    ti_names = [item.split(":")[0].strip() for item in back.extra["source_fields"]["TI hashes"].split(",")]
    assert ti_names == ["myemb"]
    lines = missing_networks(back.prompt, ti_names + ["lostemb"])
    assert len(lines) == 2 and "'gone'" in lines[0] and "'lostemb'" in lines[1]
    assert missing_networks("<lora:xlstyle:1>") == [f"LoRA 'xlstyle' is {n.note}" for n in discover_loras() if n.name == "xlstyle"]
