"""Per-item pipeline inputs that depend only on the request and the pipeline, not on the loaded
backend's state: the prompt arguments (plain text or weighted, chunked embeddings), the masked
content made before the call (latent noise in pixels, latent nothing in latents), and whether
items of one batched call can share their pixel input.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from PIL import Image

from app.core.prompt_syntax import extract_loras
from app.inference.diffusers.prompts import encode_prompt_pair, needs_chunked_encoding
from app.inference.engine import CancelFn


def fills_per_seed(params) -> bool:
    """Latent noise / latent nothing: each seed's pixel input is made before the call, so items
    of one batched call would not share their image."""
    return params.mode == "inpaint" and params.masked_content in ("latent_noise", "latent_nothing")


def prompt_kwargs(pipe, prompt: str, negative: str, cancelled: CancelFn | None = None) -> dict:
    """The prompt arguments of a pipeline call, ``<lora:…>`` tags taken out: plain text when
    CLIP can take both prompts as they are (exactly what a direct diffusers call does), else
    A1111-style weighted, chunked embeddings (`app.inference.diffusers.prompts`)."""
    prompt, _ = extract_loras(prompt)
    negative, _ = extract_loras(negative)
    if not needs_embeddings(pipe, prompt, negative):
        return dict(prompt=prompt, negative_prompt=negative or None)
    prompt_embeds, negative_embeds = encode_prompt_pair(pipe, prompt, negative, cancelled)
    return dict(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds)


def needs_embeddings(pipe, prompt: str, negative: str) -> bool:
    """Whether the prompts (``<lora:…>`` tags taken out) need weighted, chunked embeddings
    rather than plain text."""
    convert = getattr(pipe, "maybe_convert_prompt", lambda text, _tokenizer: text)  # multi-vector embeddings
    return any(needs_chunked_encoding(pipe.tokenizer, convert(text, pipe.tokenizer)) for text in (prompt, negative))


@torch.no_grad()
def latent_nothing_inputs(pipe, image: np.ndarray, mask: np.ndarray, generator) -> dict:
    """A1111's "latent nothing" masked content: the starting latents are zero under the mask, so
    at strength < 1 nothing of the old content survives there (at strength 1 the start is pure
    noise anyway). Given to the inpaint pipeline as ``image`` in latent form, which it takes as
    is, with masked-image latents to match (a 9-channel UNet's usual ones, computed here the same way)."""
    height, width = image.shape[:2]
    vae = pipe.vae
    device = pipe._execution_device
    pixels = pipe.image_processor.preprocess(Image.fromarray(image), height=height, width=width).to(device, vae.dtype)
    masked = pipe.mask_processor.preprocess(Image.fromarray(mask), height=height, width=width).to(device, vae.dtype)
    latents = pipe._encode_vae_image(pixels, generator=generator)
    keep = torch.nn.functional.interpolate(masked, size=latents.shape[-2:]) < 0.5
    start = latents * keep
    if pipe.unet.config.in_channels == 9:
        return {"image": start, "masked_image_latents": pipe._encode_vae_image(pixels * (masked < 0.5), generator=generator)}
    return {"image": start, "masked_image_latents": start}  # a 4-channel UNet never reads it; diffusers needs a latent one


def takes_mask(pipe) -> bool:
    """Whether the pipeline's call has a ``mask_image`` argument (the inpaint pipeline)."""
    return "mask_image" in inspect.signature(pipe.__call__).parameters


def noise_fill(image: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    """"Latent noise" masked content, done cheaply in pixel space: masked pixels become
    seeded uniform noise, so the model keeps nothing of the old content there (matters for
    strength < 1). Deterministic per seed."""
    rng = np.random.default_rng(seed)
    out = image.copy()
    sel = mask > 0
    out[sel] = rng.integers(0, 256, size=(int(sel.sum()), 3), dtype=np.uint8)
    return out
