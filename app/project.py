"""Project files: a whole session (original, current image, mask, generation history, params)
in one versioned zip. Owned by the reliability work; this is the shared data shape."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.generations import GenerationRecord
from app.params import GenerationParams

FORMAT_VERSION = 1


@dataclass
class ProjectState:
    original: np.ndarray  # pixels as first opened (native dtype/channels)
    current: np.ndarray  # pixels now, results applied
    mask: np.ndarray  # H×W uint8
    params: GenerationParams = field(default_factory=GenerationParams)
    generations: list[GenerationRecord] = field(default_factory=list)
    icc_profile: bytes | None = None
    source_path: str | None = None
