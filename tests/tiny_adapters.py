"""A tiny random-weight IP-Adapter and CLIP vision encoder that fit the tiny SD UNet of
`tinymodels`, saved in the layouts users have, for the reference-image tests."""

from __future__ import annotations

from pathlib import Path

#: The tiny encoder's image-embedding width (an SD 1.5 IP-Adapter reads ViT-H's 1024).
EMBED_DIM = 16


def build_image_encoder(folder: Path) -> Path:
    """A CLIPVisionModelWithProjection folder (config.json + model.safetensors)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(7)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                              image_size=32, patch_size=8, projection_dim=EMBED_DIM)
    CLIPVisionModelWithProjection(config).eval().save_pretrained(str(folder))
    return folder


def adapter_state(unet_folder: Path) -> dict:
    """``{"image_proj": …, "ip_adapter": …}`` for the UNet saved in ``unet_folder``: the image
    projection (4 tokens of the UNet's cross-attention width) and, for every cross-attention
    layer in the UNet's processor order, its ip key/value weights (ids 1, 3, 5, … as saved by
    the original IP-Adapter)."""
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(unet_folder))
    cross = unet.config.cross_attention_dim
    gen = torch.Generator().manual_seed(8)

    def rand(*shape):
        return torch.randn(*shape, generator=gen) * 0.5

    image_proj = {"proj.weight": rand(4 * cross, EMBED_DIM), "proj.bias": rand(4 * cross),
                  "norm.weight": torch.ones(cross), "norm.bias": torch.zeros(cross)}
    ip_adapter, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = unet.get_submodule(name[: -len(".processor")]).to_k.out_features
        ip_adapter[f"{key_id}.to_k_ip.weight"] = rand(hidden, cross)
        ip_adapter[f"{key_id}.to_v_ip.weight"] = rand(hidden, cross)
        key_id += 2
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def save_adapter(state: dict, path: Path) -> Path:
    """``.safetensors``: flat ``image_proj.*``/``ip_adapter.*`` keys; otherwise the nested torch dict."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({f"{part}.{k}": v.contiguous() for part, d in state.items() for k, v in d.items()}, str(path))
    else:
        torch.save(state, str(path))
    return path
