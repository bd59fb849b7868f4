"""Tiny random-weight Stable Diffusion models for the tests (no downloads on these machines).

`build_tiny_sd` saves a complete diffusers folder (model_index.json, unet/, vae/, text_encoder/,
tokenizer/, scheduler/) with the SD 1.x structure but toy widths, so the app's real loading code
runs on it and a 64×64 inpaint in a few steps takes well under a second on a CPU.
`export_ldm_checkpoint` writes the same weights as one `.safetensors` file in the original
Stable Diffusion (LDM) key layout, the format of checkpoints shared on the web, so single-file
loading is tested on the layout users actually have. Weights come from fixed torch seeds: the
same call always gives the same bytes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from app.inference.diffusers.checkpoint import byte_symbols

#: The scheduler config of SD 1.5 (its published scheduler_config.json): the beta schedule
#: decides how every scheduler in the table behaves, so the tiny model uses the real one.
SD15_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

CLIP_VOCAB_SIZE = 49408


#: How much the tiny VAE downsamples, as SD 1.5's does.
VAE_SCALE = 8


def byte_level_vocab() -> dict[str, int]:
    """256 byte symbols, the same with ``</w>``, then the start and end tokens (514 entries)."""
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def make_byte_tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=byte_level_vocab(), merges=[], model_max_length=77)


def build_components(*, inpainting: bool, clip_vocab: bool = False) -> dict:
    """The tiny components of TESTING.md, each from its own fixed seed.

    ``clip_vocab`` gives the text encoder the real CLIP vocabulary size (49408) and uses the
    tokenizer shipped under ``resources/``, so a checkpoint exported from it loads with the app's
    shipped single-file configs (which hold the real tokenizer)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.schedulers import PNDMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    if clip_vocab:
        from app.inference.diffusers.checkpoint import load_clip_tokenizer

        tokenizer = load_clip_tokenizer()
    else:
        tokenizer = make_byte_tokenizer()
    vocab = tokenizer.get_vocab()
    vocab_size = CLIP_VOCAB_SIZE if clip_vocab else len(vocab)

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=9 if inpainting else 4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    torch.manual_seed(1)
    # Four blocks = SD's downsampling factor of 8 (VAE_SCALE): the engine's smallest work size is 256 px, and a
    # 2-block VAE would give 128² latents whose attention costs ~45 s per run on this CPU (~1 s here).
    vae = AutoencoderKL(
        block_out_channels=[32, 32, 64, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=256,  # VAE tiling starts above this (SD's is 512), not on the 64 px test images
    )
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=5,
            vocab_size=vocab_size,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
            layer_norm_eps=1e-5,
        )
    )
    with torch.no_grad():
        # A fresh LayerNorm has bias 0, so every token's output would average to ~0 and A1111's
        # emphasis (rescale to the original mean) would divide by ~0; trained CLIP's bias is not 0.
        getattr(text_encoder, "text_model", text_encoder).final_layer_norm.bias.normal_(0.0, 0.5)
    scheduler = PNDMScheduler.from_config(SD15_SCHEDULER_CONFIG)
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
    }


def build_tiny_sd(path, *, inpainting: bool, clip_vocab: bool = False) -> Path:
    """Save a tiny SD 1.x model as a diffusers folder at ``path`` and return the path.

    ``inpainting`` picks a 9-channel UNet (StableDiffusionInpaintPipeline layout) or a 4-channel
    one (StableDiffusionPipeline layout)."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    path = Path(path)
    cls = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    pipe = cls(**build_components(inpainting=inpainting, clip_vocab=clip_vocab), requires_safety_checker=False)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


# -- LoRAs for the tiny model -------------------------------------------------------------------
LORA_RANK = 4


def make_lora_state(seed: int) -> tuple[dict, dict]:
    """peft LoRA layers on the tiny UNet and text encoder with random (non-zero) weights:
    (unet state, text-encoder state) in peft's names."""
    import torch
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    parts = build_components(inpainting=True)
    torch.manual_seed(seed)
    unet = inject_adapter_in_model(LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, init_lora_weights=False,
                                              target_modules=["to_q", "to_k", "to_v", "to_out.0"]), parts["unet"])
    te = inject_adapter_in_model(LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, init_lora_weights=False,
                                            target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]), parts["text_encoder"])
    return get_peft_model_state_dict(unet), get_peft_model_state_dict(te)


def save_diffusers_lora(folder, seed) -> Path:
    """A LoRA in diffusers' format: ``folder/pytorch_lora_weights.safetensors``."""
    from diffusers import StableDiffusionPipeline

    unet_sd, te_sd = make_lora_state(seed)
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=unet_sd, text_encoder_lora_layers=te_sd,
                                              safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


def to_kohya(unet_sd: dict, te_sd: dict) -> dict:
    """The same weights under kohya-ss/A1111 names: lora_unet_<module_path_with_underscores>
    .lora_down/.lora_up.weight (+ .alpha), text encoder as lora_te_text_model_…"""
    import torch

    out = {}
    for prefix, state, extra in (("lora_unet_", unet_sd, ""), ("lora_te_", te_sd, "text_model_")):
        for key, value in state.items():
            module, kind = re.match(r"(.*)\.lora_([AB])\.weight", key).groups()
            module = module.removeprefix("text_model.")
            name = prefix + extra + module.replace(".", "_")
            out[f"{name}.lora_{'down' if kind == 'A' else 'up'}.weight"] = value.contiguous()
            out[f"{name}.alpha"] = torch.tensor(float(LORA_RANK))
    return out


# -- diffusers → original SD (LDM) key layout --------------------------------------------------
# The inverse of diffusers' own `convert_ldm_*_checkpoint` (diffusers/loaders/single_file_utils.py)
# and of the well-known scripts/convert_diffusers_to_original_stable_diffusion.py, written for any
# number of blocks so it works for the tiny widths as well as the real ones.

_UNET_RESNET = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
]
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _resnet(rest: str, table) -> str:
    for new, old in table:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def unet_to_ldm(state: dict, config: dict) -> dict:
    step = config["layers_per_block"] + 1
    has_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    out = {}
    for key, value in state.items():
        top = key.rsplit(".", 1)
        if top[0] in _UNET_TOP:
            out["model.diffusion_model." + _UNET_TOP[top[0]] + "." + top[1]] = value
            continue
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            i, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{step * i + j + 1}.0.{_resnet(rest, _UNET_RESNET)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            new = f"input_blocks.{step * int(m[1]) + int(m[2]) + 1}.1.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            new = f"input_blocks.{step * (int(m[1]) + 1)}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2], _UNET_RESNET)}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"output_blocks.{step * int(m[1]) + int(m[2])}.0.{_resnet(m[3], _UNET_RESNET)}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            new = f"output_blocks.{step * int(m[1]) + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            i = int(m[1])
            new = f"output_blocks.{step * i + step - 1}.{2 if has_attn[i] else 1}.conv.{m[2]}"
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


_VAE_ATTN = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]


def vae_to_ldm(state: dict, config: dict) -> dict:
    n = len(config["up_block_types"])
    out = {}
    for key, value in state.items():
        if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
            new = f"{m[1]}.mid.attn_1.{_resnet(m[2], _VAE_ATTN)}"
            if value.ndim == 2:  # LDM stores these as 1×1 convolutions
                value = value[:, :, None, None]
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", key):
            new = f"encoder.down.{m[1]}.downsample.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"decoder.up.{n - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            new = f"decoder.up.{n - 1 - int(m[1])}.upsample.{m[2]}"
        else:
            new = key.replace("conv_norm_out", "norm_out")
        out["first_stage_model." + new.replace("conv_shortcut", "nin_shortcut")] = value
    return out


def export_ldm_checkpoint(folder, out_file) -> Path:
    """Write the diffusers folder's UNet, VAE and text encoder as one original-layout
    ``.safetensors`` (keys ``model.diffusion_model.*``, ``first_stage_model.*``,
    ``cond_stage_model.transformer.*``)."""
    from safetensors.torch import load_file, save_file

    folder, out_file = Path(folder), Path(out_file)
    state = {}
    for part, convert in (("unet", unet_to_ldm), ("vae", vae_to_ldm)):
        config = json.loads((folder / part / "config.json").read_text())
        state.update(convert(load_file(folder / part / "diffusion_pytorch_model.safetensors"), config))
    for key, value in load_file(folder / "text_encoder" / "model.safetensors").items():
        # Real SD 1.x files use transformers 4 names (text_model.*); transformers 5 saves without.
        name = key if key.startswith("text_model.") or key == "text_projection.weight" else "text_model." + key
        state["cond_stage_model.transformer." + name] = value
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out_file))
    return out_file


def make_fake_hf_cache(cache_dir, repo_id: str, model_folder) -> Path:
    """Lay ``model_folder`` out as the Hugging Face hub cache does (models--org--name/refs/main,
    snapshots/<commit>/…) so cache discovery and offline loading can be tested."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(model_folder, snapshot)
    (repo / "blobs").mkdir(exist_ok=True)
    return snapshot
