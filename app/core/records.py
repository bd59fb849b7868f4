"""The generation history: every run keeps its parameters and candidates so it can be recalled,
compared and re-run. Qt-free, so project files and tests use it directly."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from app.core.geometry import Bounds
from app.core.params import GenerationParams

_ids = itertools.count(1)


@dataclass
class GenerationRecord:
    """One finished generation. ``candidates`` are full images in the document's pixel format."""

    params: GenerationParams  # as run: the seed actually used
    candidates: list[np.ndarray]
    seeds: list[int]
    regions: list[Bounds] = field(default_factory=list)
    backend: str = ""
    elapsed_s: float = 0.0
    created: float = field(default_factory=time.time)
    #: Index of the candidate applied to the document, or None if none was applied.
    applied: int | None = None
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.candidates)
