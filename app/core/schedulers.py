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
EXPONENTIAL = {"use_exponential_sigmas": True}
#: k-diffusion's DPM++ 2M SDE is diffusers' multistep solver in its SDE variant.
SDE = {"algorithm_type": "sde-dpmsolver++"}

#: Canonical name → (diffusers class name, extra kwargs for ``Cls.from_config``).
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", KARRAS),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler Karras": ("EulerDiscreteScheduler", KARRAS),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "Heun Karras": ("HeunDiscreteScheduler", KARRAS),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", KARRAS),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", KARRAS),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", KARRAS),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ SDE Karras": ("DPMSolverSinglestepScheduler", KARRAS),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", SDE),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler", SDE | KARRAS),
    "DPM++ 2M SDE Exponential": ("DPMSolverMultistepScheduler", SDE | EXPONENTIAL),
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

#: Sampler names of other tools, normalised (see `_normalise`), without their noise schedule →
#: our base entry. A1111/Forge/SD.Next ("DPM++ 2M"), ComfyUI/Fooocus ("dpmpp_2m"), InvokeAI
#: ("kdpm_2_a"), NovelAI ("k_euler_ancestral"). The value's second item says why a nearest
#: entry stands in for a sampler diffusers lacks.
_BASES: dict[str, tuple[str, str]] = {
    "euler": ("Euler", ""),
    "euler a": ("Euler a", ""),
    "euler ancestral": ("Euler a", ""),
    "lms": ("LMS", ""),
    "klms": ("LMS", ""),
    "heun": ("Heun", ""),
    "dpm2": ("DPM2", ""),
    "dpm 2": ("DPM2", ""),
    "kdpm 2": ("DPM2", ""),
    "dpm2 a": ("DPM2 a", ""),
    "dpm 2 a": ("DPM2 a", ""),
    "dpm2 ancestral": ("DPM2 a", ""),
    "dpm 2 ancestral": ("DPM2 a", ""),
    "kdpm 2 a": ("DPM2 a", ""),
    "dpm++ 2m": ("DPM++ 2M", ""),
    "dpmpp 2m": ("DPM++ 2M", ""),
    "dpm++ sde": ("DPM++ SDE", ""),
    "dpmpp sde": ("DPM++ SDE", ""),
    "dpm++ 2m sde": ("DPM++ 2M SDE", ""),
    "dpmpp 2m sde": ("DPM++ 2M SDE", ""),
    "dpm++ 2m sde heun": ("DPM++ 2M SDE", "DPM++ 2M SDE Heun is not in diffusers"),
    "dpmpp 2m sde heun": ("DPM++ 2M SDE", "DPM++ 2M SDE Heun is not in diffusers"),
    "dpm++ 3m sde": ("DPM++ 2M SDE", "DPM++ 3M SDE is not in diffusers"),
    "dpmpp 3m sde": ("DPM++ 2M SDE", "DPM++ 3M SDE is not in diffusers"),
    "dpmpp 3m": ("DPM++ 2M SDE", "DPM++ 3M SDE is not in diffusers"),
    "dpm++ 2s a": ("DPM++ SDE", "DPM++ 2S a is not in diffusers"),
    "dpmpp 2s ancestral": ("DPM++ SDE", "DPM++ 2S a is not in diffusers"),
    "dpmpp 2s": ("DPM++ SDE", "DPM++ 2S a is not in diffusers"),
    "ddim": ("DDIM", ""),
    "plms": ("PNDM", ""),
    "pndm": ("PNDM", ""),
    "unipc": ("UniPC", ""),
    "uni pc": ("UniPC", ""),
    "uni pc bh2": ("UniPC", ""),
    "lcm": ("LCM", ""),
}

#: Noise schedules (A1111 suffix, Forge "Schedule type", ComfyUI ``scheduler``, InvokeAI "_k")
#: → the suffix our table uses; "" = the sampler's own default schedule.
_SCHEDULES = {"karras": " Karras", "k": " Karras", "exponential": " Exponential", "automatic": "", "normal": "",
              "simple": "", "uniform": "", "sgm uniform": "", "ddim uniform": "", "beta": "", "default": ""}


def _normalise(name: str) -> str:
    text = " ".join(name.casefold().replace("_", " ").replace("-", " ").split())
    for prefix in ("sample ", "k "):  # ComfyUI's old "sample_dpmpp_2m", k-diffusion's "k_euler"
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.removesuffix(" gpu")  # ComfyUI's GPU-noise variants draw the same schedule


def resolve_sampler(name: str, schedule: str | None = None) -> tuple[str, str] | None:
    """Any tool's sampler name, with an optional separate noise schedule (Forge's "Schedule
    type", ComfyUI's ``scheduler``), → (canonical table name, note); None when nothing fits.
    The note is empty when the match is exact, else one line saying what stands in for what."""
    if not isinstance(name, str) or not name.strip():
        return None
    direct = _LOOKUP.get(" ".join(name.split()).casefold())
    text = _normalise(name)
    suffix = ""
    for sched in sorted(_SCHEDULES, key=len, reverse=True):  # "sgm uniform" before "uniform"
        if text.endswith(" " + sched) and text[: -len(sched) - 1] in _BASES:
            text, suffix = text[: -len(sched) - 1], _SCHEDULES[sched]
            break
    if schedule and not suffix:
        suffix = _SCHEDULES.get(_normalise(schedule), "")
    if direct and not suffix:
        return direct, ""
    base, note = _BASES.get(text, (direct, "")) if text in _BASES or direct else (None, "")
    if base is None:
        return None
    if suffix and base + suffix in SCHEDULERS:
        return base + suffix, note
    if suffix:
        note = (note + "; " if note else "") + f"{base} has no{suffix} schedule in diffusers"
    return base, note


def canonical_name(name: str) -> str:
    """The canonical table name for any name `resolve_sampler` accepts (table names, aliases,
    A1111/Forge/ComfyUI/InvokeAI/NovelAI names), case-insensitively; `UnknownSchedulerError`
    (a `ParamError` on field "scheduler") listing the valid names otherwise."""
    found = resolve_sampler(name) if isinstance(name, str) else None
    if found is None:
        raise UnknownSchedulerError(name, list(ALL_NAMES))
    return found[0]


def scheduler_spec(name: str) -> tuple[str, dict[str, Any]]:
    cls_name, kwargs = SCHEDULERS[canonical_name(name)]
    return cls_name, dict(kwargs)
