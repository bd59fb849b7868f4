"""Inpaint Studio: a desktop mask-painting editor for Stable Diffusion 1.5 inpainting and img2img."""

__version__ = "0.1.0"
