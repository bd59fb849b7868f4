"""A tiny random-weight ControlNet for the tiny SD models (tests/tinymodels.py), saved as a
diffusers folder or as one original-layout (``control_model.*``) ``.safetensors`` file, the
layout of lllyasviel's ``control_v11*`` files. Its zero convolutions get random weights (a fresh
ControlNet's are zero, so it would change nothing); fixed seeds give the same bytes every time."""

from __future__ import annotations

import re
from pathlib import Path

from tinymodels import unet_to_ldm

#: The tiny UNet's shape (tinymodels.build_components); the hint encoder keeps SD's channels, which
#: downsample ×8 like the tiny VAE.
CONFIG = dict(block_out_channels=(32, 64), layers_per_block=2, in_channels=4, cross_attention_dim=32,
              down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
              conditioning_embedding_out_channels=(16, 32, 96, 256))


def build_controlnet(seed: int = 3):
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel(**CONFIG)
    with torch.no_grad():
        for module in (*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out):
            module.weight.normal_(0.0, 0.3)
            module.bias.normal_(0.0, 0.3)
    return net.eval()


def save_diffusers(path, seed: int = 3) -> Path:
    path = Path(path)
    build_controlnet(seed).save_pretrained(path, safe_serialization=True)
    return path


def to_ldm(state: dict) -> dict:
    """diffusers ControlNet keys → the original layout (``control_model.input_hint_block.*``,
    ``zero_convs.N.0``, ``middle_block_out.0``, the rest as the UNet's input/middle blocks)."""
    out, shared = {}, {}
    n_blocks = len({k.split(".")[2] for k in state if k.startswith("controlnet_cond_embedding.blocks.")})
    for key, value in state.items():
        if m := re.match(r"controlnet_cond_embedding\.conv_in\.(.*)", key):
            out[f"input_hint_block.0.{m[1]}"] = value
        elif m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.*)", key):
            out[f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"] = value
        elif m := re.match(r"controlnet_cond_embedding\.conv_out\.(.*)", key):
            out[f"input_hint_block.{2 * (n_blocks + 1)}.{m[1]}"] = value
        elif m := re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", key):
            out[f"zero_convs.{m[1]}.0.{m[2]}"] = value
        elif m := re.match(r"controlnet_mid_block\.(.*)", key):
            out[f"middle_block_out.0.{m[1]}"] = value
        else:
            shared[key] = value
    config = {"layers_per_block": CONFIG["layers_per_block"], "up_block_types": ("UpBlock2D", "UpBlock2D")}
    for key, value in unet_to_ldm(shared, config).items():
        out[key.removeprefix("model.diffusion_model.")] = value
    return {"control_model." + k: v.contiguous() for k, v in out.items()}


def save_single_file(path, seed: int = 3, layout: str = "ldm") -> Path:
    """One ``.safetensors`` file: ``layout`` "ldm" (original keys) or "diffusers"."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = build_controlnet(seed).state_dict()
    save_file(to_ldm(state) if layout == "ldm" else {k: v.contiguous() for k, v in state.items()}, str(path))
    return path
