"""Stable Diffusion 1.x through diffusers: the model catalog (no torch), single-file checkpoint
conversion, the loader, the backend, device choice and latent previews. Only `loader`, `backend`,
`device` and `preview` import torch, and only when a model is actually loaded."""
