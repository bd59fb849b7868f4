"""The parameters panel as a front end of the service: its label for each field, so a refused
value is named as the user sees it ("Steps = 0 is not valid: …"), as the CLI names ``--steps``."""

from __future__ import annotations

from app.service.fields import FrontEnd

PANEL = FrontEnd("panel", {
    "prompt": "Prompt", "negative_prompt": "Negative prompt", "mode": "Mode", "model": "Model",
    "scheduler": "Sampler", "steps": "Steps", "guidance": "Guidance", "strength": "Strength", "seed": "Seed",
    "batch_size": "Batch size", "width": "Resolution", "height": "Resolution", "mask_blur": "Mask blur",
    "mask_grow": "Mask grow", "inpaint_area": "Inpaint area", "padding": "Padding",
    "masked_content": "Masked content", "color_match": "Colour match", "image": "Image", "mask": "Mask",
})
