"""The scheduler table: every sampler × schedule type pair, and every name users know for one.

A scheduler name is a sampler, optionally followed by a schedule type (`app.core.sigma_schedules`):
"Euler a Karras", "DPM++ 2M SGM Uniform"; the sampler alone means its own schedule ("Automatic"),
so the combined names of earlier versions ("DPM++ 2M Karras") are the same pairs. Kept as data in
one module so the window, the CLI, the APIs and the PNG metadata agree on names. Importing it does
not import torch or diffusers; `app.inference.diffusers.schedulers.make_scheduler` does.
"""

from __future__ import annotations

from typing import Any

from app.core.params import ParamError
from app.core.sigma_schedules import AUTOMATIC, SCHEDULE_TYPES


class UnknownSchedulerError(ParamError):
    """A scheduler name that is neither a known name nor an alias; lists the valid names."""

    def __init__(self, name: object):
        super().__init__("scheduler", name, "a sampler (" + ", ".join(SAMPLERS) + "), optionally followed by a "
                         "schedule type (" + ", ".join(SCHEDULE_TYPES[1:]) + "), e.g. 'Euler a Karras'; or one of "
                         + ", ".join(ALIASES))


#: k-diffusion's DPM++ 2M SDE is diffusers' multistep solver in its SDE variant.
SDE = {"algorithm_type": "sde-dpmsolver++"}

#: Sampler (A1111's name, PLMS as "PNDM") → (diffusers class name, extra kwargs for ``Cls.from_config``).
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", SDE),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
    "TCD": ("TCDScheduler", {}),  # trajectory consistency distillation (TCD LoRAs), few steps
}
#: PNDM (PLMS) steps a fixed timestep grid and takes neither sigmas nor timesteps: its own schedule only.
FIXED_SCHEDULE = ("PNDM",)


def schedules_for(sampler: str) -> tuple[str, ...]:
    """The schedule types ``sampler`` runs with."""
    return (AUTOMATIC,) if sampler in FIXED_SCHEDULE else SCHEDULE_TYPES


def compose(sampler: str, schedule: str = AUTOMATIC) -> str:
    """(sampler, schedule type) → the one scheduler name params carry: "Euler a Karras"; the
    sampler alone for Automatic, so the names of earlier versions ("DPM++ 2M Karras") stay."""
    return sampler if schedule in ("", AUTOMATIC) else f"{sampler} {schedule}"


#: Canonical name → (sampler, schedule type), every pair we run, sampler-major in table order.
PAIRS: dict[str, tuple[str, str]] = {compose(s, t): (s, t) for s in SAMPLERS for t in schedules_for(s)}


def split(name: str) -> tuple[str, str]:
    """Any accepted scheduler name → (sampler, schedule type); `UnknownSchedulerError` otherwise."""
    return PAIRS[canonical_name(name)]


#: Other names for the same entries (diffusers class names, older UI names, k-diffusion names).
ALIASES: dict[str, str] = {
    "DPM Multi": "DPM++ 2M",
    "DPMSolverMultistep": "DPM++ 2M",
    "DPM Single": "DPM++ SDE",
    "K_EULER": "Euler",
    "K_EULER_ANCESTRAL": "Euler a",
    "KLMS": "LMS",
}

#: Every pair's name (what a diffusion backend accepts: `Capabilities.schedulers`); the window offers the two parts.
SCHEDULER_NAMES: tuple[str, ...] = tuple(PAIRS)
SAMPLER_NAMES: tuple[str, ...] = tuple(SAMPLERS)
ALL_NAMES: tuple[str, ...] = SCHEDULER_NAMES + tuple(ALIASES)

_LOOKUP = {n.casefold(): n for n in PAIRS} | {a.casefold(): c for a, c in ALIASES.items()}

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
    "tcd": ("TCD", ""),
}

#: Noise schedules of other tools (A1111 suffix, Forge "Schedule type", ComfyUI ``scheduler``,
#: InvokeAI "_k", NovelAI ``noise_schedule``), normalised → our schedule type. ComfyUI's
#: "ddim_uniform" is A1111's "DDIM"; "native"/"default" mean the sampler's own (Automatic).
_SCHEDULES = {"automatic": AUTOMATIC, "default": AUTOMATIC, "native": AUTOMATIC, "uniform": "Uniform",
              "karras": "Karras", "k": "Karras", "exponential": "Exponential", "polyexponential": "Polyexponential",
              "sgm uniform": "SGM Uniform", "kl optimal": "KL Optimal", "align your steps": "Align Your Steps",
              "ays": "Align Your Steps", "simple": "Simple", "normal": "Normal", "ddim": "DDIM",
              "ddim uniform": "DDIM", "beta": "Beta"}


def _normalise(name: str) -> str:
    text = " ".join(name.casefold().replace("_", " ").replace("-", " ").split())
    for prefix in ("sample ", "k "):  # ComfyUI's old "sample_dpmpp_2m", k-diffusion's "k_euler"
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.removesuffix(" gpu")  # ComfyUI's GPU-noise variants draw the same schedule


def resolve_sampler(name: str, schedule: str | None = None) -> tuple[str, str] | None:
    """Any tool's sampler name, with an optional separate noise schedule (Forge's "Schedule
    type", ComfyUI's ``scheduler``), → (canonical pair name, note); None when nothing fits.
    The note is empty when the match is exact, else one line saying what stands in for what."""
    if not isinstance(name, str) or not name.strip():
        return None
    direct = _LOOKUP.get(" ".join(name.split()).casefold())
    if direct and not schedule:
        return direct, ""
    text = _normalise(name)
    sched = ""
    for known in sorted(_SCHEDULES, key=len, reverse=True):  # "sgm uniform" before "uniform"
        if text.endswith(" " + known) and text[: -len(known) - 1] in _BASES:
            text, sched = text[: -len(known) - 1], _SCHEDULES[known]
            break
    if direct:
        text = _normalise(PAIRS[direct][0])
        sched = sched or PAIRS[direct][1]
    note = ""
    if schedule and sched in ("", AUTOMATIC):
        sched = _SCHEDULES.get(_normalise(schedule), "")
        if not sched:
            note = f"schedule type {schedule!r} is not one we run: the sampler's own (Automatic) stands in"
    base, why = _BASES.get(text, (PAIRS[direct][0] if direct else None, ""))
    if base is None:
        return None
    note = "; ".join(n for n in (why, note) if n)
    if sched and sched not in schedules_for(base):
        note = (note + "; " if note else "") + f"{base} runs only its own schedule, not {sched}"
        sched = AUTOMATIC
    return compose(base, sched or AUTOMATIC), note


def schedule_type(name: str) -> str:
    """Any tool's name for a schedule type ("karras", "sgm_uniform", "Align Your Steps") → ours;
    `ParamError` on field "schedule" listing ours otherwise."""
    found = _SCHEDULES.get(_normalise(name)) if isinstance(name, str) else None
    if found is None:
        raise ParamError("schedule", name, "one of " + ", ".join(SCHEDULE_TYPES))
    return found


def canonical_name(name: str) -> str:
    """The canonical pair name for any name `resolve_sampler` accepts (pair names, aliases,
    A1111/Forge/ComfyUI/InvokeAI/NovelAI names), case-insensitively; `UnknownSchedulerError`
    (a `ParamError` on field "scheduler") naming the samplers and schedule types otherwise."""
    found = resolve_sampler(name) if isinstance(name, str) else None
    if found is None:
        raise UnknownSchedulerError(name)
    return found[0]


def scheduler_spec(name: str) -> tuple[str, dict[str, Any], str]:
    """(diffusers class name, kwargs, schedule type) for any accepted name."""
    sampler, schedule = split(name)
    cls_name, kwargs = SAMPLERS[sampler]
    return cls_name, dict(kwargs), schedule
