"""Which generation requests of different jobs may share one batched backend call.

The one place that says "compatible": the same model and load options, mode, size, steps,
scheduler, guidance, strength, masked-content fill and LoRAs. Prompts, images, masks and seeds
may differ: each is a batch item of its own. Whether the regions then have the same work size
is only known after planning; `Engine.run_batch` regroups by it.
"""

from __future__ import annotations

from collections.abc import Hashable

from app.core.params import GenerationParams
from app.core.prompt_syntax import extract_loras
from app.core.schedulers import canonical_name
from app.inference.registry import LoadOptions


def batch_key(params: GenerationParams, options: LoadOptions) -> Hashable | None:
    """Equal keys: the requests may run as one batched call; None: this one always runs alone."""
    if params.soft_inpainting is not None or params.reference is not None:
        return None  # a per-seed latent blend / a per-request image embedding: one request per call
    try:
        loras = tuple(extract_loras(params.prompt)[1])
        scheduler = canonical_name(params.scheduler)
    except ValueError:  # an unreadable tag or scheduler: its own run reports it
        return None
    return (params.model, options.normalised(), params.mode, params.width, params.height, params.steps, scheduler,
            params.guidance, params.strength, params.masked_content, loras)
