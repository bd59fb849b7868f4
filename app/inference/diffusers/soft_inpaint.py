"""Soft inpainting's denoising half: differential diffusion with A1111's soft schedule.

After every step but the last, each latent pixel is pulled back towards the original noised to
the next step's level, by how little its mask value lets it change: A1111 ≥ 1.8's
``latent_blend(original, current, m ** (σ ** schedule_bias × preservation_strength))`` with its
magnitude-preserving interpolation (``transition_contrast_boost``). Early (σ large) a grey pixel
is all but reset to the original, so the generated content only grows into it as the noise
fades: a 50 % pixel changes measurably less than a 100 % one, and a 0 % pixel is reset every
step (the engine's composite then keeps it bit-identical). A1111 blends the denoised estimate
with the clean original inside its samplers; the diffusers step callback hands over the
noised latents instead, so the original is noised to the same level first (diffusers'
own 4-channel inpaint blending does the same, with a hard mask; the noising is computed here
from the ᾱ table, on the device).

The run uses the pipelines unchanged: a 4-channel model runs the img2img pipeline (it has no
hard blend of its own), a 9-channel one the inpaint pipeline with the ≥ 50 % part of the mask as
its masked-image input. The original latents are the VAE's mean, and the noise comes from the
run's seed, so a seed still gives the same image.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from app.core.guides import SoftInpainting


class SoftBlend:
    """The per-step blend of one run (one seed): call it from ``callback_on_step_end``."""

    def __init__(self, pipe, image: np.ndarray, soft_mask: np.ndarray, seed: int, settings: SoftInpainting):
        from diffusers.utils.torch_utils import randn_tensor

        height, width = image.shape[:2]
        vae, device = pipe.vae, pipe._execution_device
        with torch.no_grad():
            pixels = pipe.image_processor.preprocess(Image.fromarray(image), height=height, width=width)
            original = vae.encode(pixels.to(device, vae.dtype)).latent_dist.mode() * vae.config.scaling_factor
        dtype = pipe.unet.dtype
        self.original = original.to(dtype)
        self.noise = randn_tensor(original.shape, generator=torch.Generator("cpu").manual_seed(seed),
                                  device=device, dtype=dtype)
        mask = torch.from_numpy(np.ascontiguousarray(soft_mask, np.float32) / 255.0)[None, None]
        #: float32 whatever the model's dtype: σ ** bias overflows fp16 early in the schedule.
        self.mask = torch.nn.functional.interpolate(mask, size=original.shape[-2:], mode="area").to(device)
        self.alphas = pipe.scheduler.alphas_cumprod.to(device, torch.float32)
        #: Euler-like schedulers carry x₀ + σ·ε (their start noise is scaled up), the others √ᾱ·x₀ + √(1−ᾱ)·ε.
        self.sigma_form = float(pipe.scheduler.init_noise_sigma) > 1.0
        self.settings = settings

    def noised(self, timestep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the original noised to ``timestep``, its σ = √((1 − ᾱ)/ᾱ)), from the scheduler's ᾱ
        table, on the device: no host round trip in the step (diffusers' ``add_noise`` indexes
        with a Python list), the same σ measure for every scheduler."""
        index = timestep.to(self.alphas.device).float().round().long().clamp(0, len(self.alphas) - 1)
        alpha = self.alphas[index].view(1, 1, 1, 1)
        sigma = ((1 - alpha) / alpha).sqrt()
        if self.sigma_form:
            return self.original + self.noise * sigma.to(self.noise.dtype), sigma
        return (self.original * alpha.sqrt().to(self.noise.dtype) + self.noise * (1 - alpha).sqrt().to(self.noise.dtype),
                sigma)

    def __call__(self, pipe, i: int, latents: torch.Tensor) -> torch.Tensor:
        total = pipe.num_timesteps
        if i + 1 >= total:  # A1111 leaves the final latents alone; the pixel composite decides
            return latents
        timesteps = pipe.scheduler.timesteps[-total:]
        noised, sigma = self.noised(timesteps[i + 1:i + 2])
        exponent = sigma.pow(self.settings.schedule_bias) * self.settings.preservation_strength
        amount = torch.where(self.mask > 0, self.mask.pow(exponent), torch.zeros_like(self.mask))
        blended = latent_blend(noised.float(), latents.float(), amount, self.settings.transition_contrast_boost)
        return blended.to(latents.dtype)


def latent_blend(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, detail: float) -> torch.Tensor:
    """``a`` → ``b`` by ``t`` (1×1×h×w), with the vectors' lengths interpolated apart, as powers
    of ``detail``, so a half-way blend does not lose contrast (A1111's "transition contrast boost")."""
    wide = torch.float32 if a.device.type == "mps" else torch.float64
    mixed = a * (1 - t) + b * t
    length = torch.linalg.vector_norm(mixed, dim=1, keepdim=True).to(wide) + 1e-5
    la = torch.linalg.vector_norm(a, dim=1, keepdim=True).to(wide).pow(detail)
    lb = torch.linalg.vector_norm(b, dim=1, keepdim=True).to(wide).pow(detail)
    t = t.to(wide)
    wanted = (la * (1 - t) + lb * t).pow(1 / detail)
    return mixed * (wanted / length).to(mixed.dtype)
