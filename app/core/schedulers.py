"""The scheduler table: every name and alias users know, mapped to a diffusers class and kwargs.

Kept as data in one module so the UI, the CLI and the PNG metadata agree on names. Importing it
does not import torch or diffusers (the UI lists `SCHEDULER_NAMES`); `app.inference.diffusers.backend.make_scheduler` does.
"""

from __future__ import annotations

from typing import Any

from app.core.params import ParamError

class UnknownSchedulerError(ParamError):
    """A scheduler name that is neither a known name nor an alias; lists the valid names."""

    def __init__(self, name: object, valid: list[str]):
        super().__init__("scheduler", name, "one of " + ", ".join(valid))


KARRAS = {"use_karras_sigmas": True}

#: Canonical name → (diffusers class name, extra kwargs for ``Cls.from_config``).
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", KARRAS),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", KARRAS),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", KARRAS),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", KARRAS),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}

#: Other names for the same entries (diffusers class names, older UI names, k-diffusion names).
ALIASES: dict[str, str] = {
    "DPM Multi": "DPM++ 2M",
    "DPMSolverMultistep": "DPM++ 2M",
    "DPM Single": "DPM++ SDE",
    "K_EULER": "Euler",
    "K_EULER_ANCESTRAL": "Euler a",
    "KLMS": "LMS",
}

#: What the UI offers, in table order.
SCHEDULER_NAMES: tuple[str, ...] = tuple(SCHEDULERS)
ALL_NAMES: tuple[str, ...] = SCHEDULER_NAMES + tuple(ALIASES)

_LOOKUP = {n.casefold(): n for n in SCHEDULERS} | {a.casefold(): c for a, c in ALIASES.items()}


def canonical_name(name: str) -> str:
    """The canonical table name for a name or alias, case-insensitively; `UnknownSchedulerError`
    (a `ParamError` on field "scheduler") listing the valid names otherwise."""
    key = " ".join(str(name).split()).casefold() if isinstance(name, str) else None
    if key not in _LOOKUP:
        raise UnknownSchedulerError(name, list(ALL_NAMES))
    return _LOOKUP[key]


def scheduler_spec(name: str) -> tuple[str, dict[str, Any]]:
    cls_name, kwargs = SCHEDULERS[canonical_name(name)]
    return cls_name, dict(kwargs)
