"""Latents → RGB8 pixels, as the pipelines' own ``output_type="pil"`` path makes them, with the
fp16 guard that remembers, per model, when its VAE must decode in fp32."""

from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)


class LatentDecoder:
    """``fp32``: set once an fp16 decode gave NaN/black; later decodes go straight to fp32."""

    def __init__(self) -> None:
        self.fp32 = False

    @torch.no_grad()
    def decode(self, pipe, latents: torch.Tensor, generator=None) -> np.ndarray:
        """Latents → RGB8, as the pipelines' own ``output_type="pil"`` path does it (VAE decode,
        safety checker, postprocess, ``(x * 255).round()``), with the fp16 guard: a NaN or
        all-black image from finite latents is decoded again with the VAE in fp32."""
        vae = pipe.vae
        scaled = latents / vae.config.scaling_factor
        image = None
        if not self.fp32:
            image = vae.decode(scaled.to(vae.dtype), return_dict=False, generator=generator)[0]
            if vae.dtype != torch.float32 and _bad_decode(image, latents):
                log.warning("fp16 VAE decode gave NaN/black; decoding in fp32 from now on")
                self.fp32 = True
                image = None
        if image is None:
            dtype = vae.dtype
            vae.to(torch.float32)
            try:
                image = vae.decode(scaled.float(), return_dict=False, generator=generator)[0]
            finally:
                vae.to(dtype)  # the encoder runs on fp16 inputs in the pipelines
        image, nsfw = pipe.run_safety_checker(image, pipe._execution_device, latents.dtype)
        denormalize = [True] * image.shape[0] if nsfw is None else [not flagged for flagged in nsfw]
        arr = pipe.image_processor.postprocess(image, output_type="np", do_denormalize=denormalize)
        return (arr[0] * 255).round().astype(np.uint8)


def _bad_decode(image: torch.Tensor, latents: torch.Tensor) -> bool:
    if not torch.isfinite(latents).all():
        return False  # the latents themselves are broken: fp32 decode would not help
    return bool(torch.isnan(image).any() or (image <= -1.0).all())

