"""What one tool-family reader hands back: the fields it read, under A1111's names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.core.params import GenerationParams


@dataclass(frozen=True)
class SamplerChoice:
    """One sampler of a ComfyUI graph, offered when the graph has several."""

    node_id: str
    label: str  # "KSampler #3: seed 42, 20 steps, «a cat…»"


@dataclass
class Found:
    format: str  # "AUTOMATIC1111", "Forge", "ComfyUI", "InvokeAI", "Inpaint Studio", …
    fields: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    #: Non-empty: the parameters cannot be recalled as they are; says why in one line each.
    problems: list[str] = field(default_factory=list)
    choices: list[SamplerChoice] = field(default_factory=list)
    #: Set by readers whose format is our own (lossless) parameters.
    params: GenerationParams | None = None
