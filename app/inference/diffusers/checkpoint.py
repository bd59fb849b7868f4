"""Single-file (original-layout) SD 1.x checkpoints: the diffusers configs derived from a
checkpoint's own tensor shapes, and the CLIP tokenizer shipped under ``resources/``, so a
`.safetensors` file loads with no download."""

from __future__ import annotations

import functools
import gzip
import json
import shutil
from pathlib import Path

from app.inference.diffusers.catalog import CLIP, UNET, VAE
from app.storage.paths import resources_dir

def shipped_config_dir() -> Path:
    return resources_dir() / "sd15"


def byte_symbols() -> list[str]:
    """GPT-2's reversible byte → printable-unicode table (the one CLIP's BPE uses), in CLIP's
    vocabulary order: the printable bytes first, then the others mapped above U+0100."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


@functools.lru_cache(maxsize=1)
def _clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's 49408-token vocabulary built from the shipped merges exactly as CLIP's
    SimpleTokenizer builds it (bytes, bytes+</w>, one token per merge, start/end)."""
    text = gzip.decompress((resources_dir() / "clip_tokenizer" / "merges.txt.gz").read_bytes()).decode("utf-8")
    merges = [tuple(line.split()) for line in text.split("\n")[1:] if line]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def load_clip_tokenizer():
    """The SD 1.x CLIP tokenizer from the shipped resources (no network)."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _shape(header: dict, key: str) -> list[int]:
    return header[key]["shape"]


def derive_single_file_config(header: dict, out_dir: Path) -> Path:
    """Write a diffusers config folder for an original-layout checkpoint: the shipped SD 1.5
    configs with the sizes the checkpoint's own tensors show (in_channels 9 for inpainting,
    widths, depths). For a real SD 1.5 file this reproduces the published configs exactly."""
    src = shipped_config_dir()
    shutil.copytree(src, out_dir, dirs_exist_ok=True)
    keys = [k for k in header if k != "__metadata__"]

    unet = json.loads((src / "unet" / "config.json").read_text())
    conv_in = _shape(header, f"{UNET}input_blocks.0.0.weight")
    unet["in_channels"] = conv_in[1]
    inputs = {int(k[len(UNET) + 13:].split(".")[0]) for k in keys if k.startswith(UNET + "input_blocks.")}
    downs = sorted(i for i in inputs if f"{UNET}input_blocks.{i}.0.op.weight" in header)
    levels = len(downs) + 1
    layers = (downs[0] - 1) if downs else max(inputs)
    widths, down_types = [], []
    for level in range(levels):
        first = level * (layers + 1) + 1
        widths.append(_shape(header, f"{UNET}input_blocks.{first}.0.out_layers.3.weight")[0])
        attn = any(k.startswith(f"{UNET}input_blocks.{first}.1.") for k in keys)
        down_types.append("CrossAttnDownBlock2D" if attn else "DownBlock2D")
    up_types = []
    for level in range(levels):
        first = level * (layers + 1)
        attn = any(k.startswith(f"{UNET}output_blocks.{first}.1.") and ".1.conv." not in k for k in keys)
        up_types.append("CrossAttnUpBlock2D" if attn else "UpBlock2D")
    to_k = next((k for k in keys if k.startswith(UNET) and k.endswith("attn2.to_k.weight")), None)
    unet.update(block_out_channels=widths, layers_per_block=layers, down_block_types=down_types, up_block_types=up_types)
    if to_k:
        unet["cross_attention_dim"] = _shape(header, to_k)[1]
    (out_dir / "unet" / "config.json").write_text(json.dumps(unet, indent=2))

    vae = json.loads((src / "vae" / "config.json").read_text())
    vlevels = sorted({int(k.split(".")[3]) for k in keys if k.startswith(VAE + "encoder.down.")})
    vblocks = {int(k.split(".")[5]) for k in keys if k.startswith(VAE + "encoder.down.0.block.")}
    vae["block_out_channels"] = [_shape(header, f"{VAE}encoder.down.{i}.block.0.conv1.weight")[0] for i in vlevels]
    vae["layers_per_block"] = len(vblocks)
    vae["down_block_types"] = ["DownEncoderBlock2D"] * len(vlevels)
    vae["up_block_types"] = ["UpDecoderBlock2D"] * len(vlevels)
    vae["latent_channels"] = _shape(header, f"{VAE}quant_conv.weight")[0] // 2
    (out_dir / "vae" / "config.json").write_text(json.dumps(vae, indent=2))

    text = json.loads((src / "text_encoder" / "config.json").read_text())
    vocab, hidden = _shape(header, f"{CLIP}text_model.embeddings.token_embedding.weight")
    text["vocab_size"], text["hidden_size"] = vocab, hidden
    text["max_position_embeddings"] = _shape(header, f"{CLIP}text_model.embeddings.position_embedding.weight")[0]
    text["intermediate_size"] = _shape(header, f"{CLIP}text_model.encoder.layers.0.mlp.fc1.weight")[0]
    text["num_hidden_layers"] = len({k.split(".")[5] for k in keys if k.startswith(CLIP + "text_model.encoder.layers.")})
    # Head count is not visible in the weights. Every real CLIP text encoder uses 64-wide heads
    # (768 → 12); toy test models (width 32) use 8-wide heads as diffusers' own tiny models do.
    text["num_attention_heads"] = hidden // 64 if hidden % 64 == 0 else max(1, hidden // 8)
    (out_dir / "text_encoder" / "config.json").write_text(json.dumps(text, indent=2))
    return out_dir


