"""One way from a front end's fields to checked `GenerationParams`, and every rule of a run.

Each front end names the same parameters its own way (the CLI ``--steps``, Replicate
``num_inference_steps``, Appypie ``num_steps``, the window's panel "Steps"). A front end hands its
values, keyed by `GenerationParams` field, with its `FrontEnd` (the name map) to `build`, which
coerces JSON forms and fills defaults but checks nothing; `check` holds every rule (ranges, the
scheduler table, a prompt for a diffusion model, what a prompt-free method ignores) and runs once
per run, in `GenerationService.check`. Either raises `FieldError`, which names the front end's own
field, so the same bad value is refused in the same words everywhere.

Adding a field: give `GenerationParams` the field (with its range in ``validate``), pass it in
the front end's ``build`` call, and add it to that front end's `FrontEnd.names` where its name
differs. Nothing here changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.params import GenerationParams, ParamError, coerce_field, default_strength
from app.core.prompt_syntax import extract_loras
from app.core.schedulers import canonical_name
from app.inference.registry import Capabilities, nominal_capabilities

#: The names `build` accepts: every `GenerationParams` field.
PARAM_FIELDS = frozenset(f.name for f in dataclasses.fields(GenerationParams))
#: Fields that are not `GenerationParams` fields but are refused by name (the images of a request).
REQUEST_FIELDS = ("image", "mask")
_DEFAULTS = GenerationParams()


class FieldError(ParamError):
    """A `ParamError` in a front end's words: ``field`` is the front end's name for it
    (``--steps``, ``num_inference_steps``), ``param`` the `GenerationParams` field."""

    def __init__(self, front_field: str, param: str, value: Any, allowed: str):
        super().__init__(front_field, value, allowed)
        self.param = param


@dataclass(frozen=True)
class FrontEnd:
    """A front end's name for each `GenerationParams` field (and ``image``/``mask``) that it
    spells differently; a field not named keeps its own name."""

    name: str
    names: Mapping[str, str] = field(default_factory=dict)

    def of(self, param: str) -> str:
        """The front end's name of ``param``; ``controls[1].weight`` maps its head, ``controls``."""
        head, sep, rest = param.partition("[") if "[" in param else param.partition(".")
        if head in self.names:
            return self.names[head] + (sep + rest if sep else "")
        return param

    def error(self, exc: ParamError) -> FieldError:
        """``exc`` naming this front end's field (an error already in some front end's words keeps its param)."""
        param = exc.param if isinstance(exc, FieldError) else exc.field
        return FieldError(self.of(param), param, exc.value, exc.allowed)

    def with_names(self, **names: str) -> FrontEnd:
        """This front end with more (or other) names: how a front end grows a field."""
        return FrontEnd(self.name, {**self.names, **names})


#: `GenerationParams`' own names: project files, PNG metadata, the service's callers.
PARAMS = FrontEnd("params")


def build(front: FrontEnd, given: Mapping[str, Any], base: GenerationParams = _DEFAULTS) -> GenerationParams:
    """``base`` with the values ``given`` (None = not given), each coerced to its field's type
    (the guide fields from their JSON forms, the scheduler by any tool's name); strength, when
    not given, is the default for the mode. Checks no range (that is `check`'s); a value of the
    wrong type is a `FieldError`."""
    unknown = set(given) - PARAM_FIELDS
    if unknown:
        raise TypeError(f"not GenerationParams fields: {', '.join(sorted(unknown))}")
    try:
        values = {name: coerce_field(name, value) for name, value in given.items() if value is not None}
    except ParamError as exc:
        raise front.error(exc) from None
    if "scheduler" in values:  # any tool's name in the table's spelling; an unknown one is `check`'s to name
        with contextlib.suppress(ParamError):
            values["scheduler"] = canonical_name(values["scheduler"])
    if "strength" not in values and "mode" in values:
        values["strength"] = default_strength(values["mode"])
    return base.replace(**values)


def check(params: GenerationParams, caps: Capabilities, front: FrontEnd = PARAMS) -> GenerationParams:
    """Every rule of a run, in one place: ``params`` validated (ranges, choices, guides), the
    scheduler by the scheduler table's names (even where the backend ignores it), readable
    ``<lora:…>`` tags, a prompt for a
    model that is guided by one, and fitted to what the backend can do (`fit_to`). Raises
    `FieldError` in ``front``'s words; returns the params to run."""
    try:
        params = params.validate()
        params = params.replace(scheduler=canonical_name(params.scheduler))
        for name in ("prompt", "negative_prompt"):
            _check_lora_tags(name, getattr(params, name))
        if caps.requires_prompt and not params.prompt.strip():
            raise ParamError("prompt", params.prompt, "required with a diffusion model: say what to paint")
        return fit_to(params, caps)
    except ParamError as exc:
        raise front.error(exc) from None


def _check_lora_tags(name: str, text: str) -> None:
    """Every ``<lora:NAME:WEIGHT>`` tag readable, found here rather than as a failed run."""
    try:
        extract_loras(text)
    except ValueError as exc:
        raise ParamError(name, text, str(exc)) from None


def check_nominal(params: GenerationParams, front: FrontEnd = PARAMS) -> GenerationParams:
    """`check` against what the model's reference alone tells (`nominal_capabilities`: no file
    read, no server asked): the window's check on its GUI thread, before the service checks the
    model's own capabilities on the worker."""
    return check(params, nominal_capabilities(params.model), front)


def fit_to(params: GenerationParams, caps: Capabilities) -> GenerationParams:
    """Refuse what the backend cannot do; reset what it ignores, so records hold only what
    decided the pixels (a prompt-free record has seed 0, batch 1 and default sampler fields)."""
    changes: dict[str, object] = {}
    if params.mode == "img2img" and not caps.img2img:
        raise ParamError("mode", params.mode, f"{params.model} only inpaints; img2img needs a diffusion model")
    if caps.schedulers:
        if params.scheduler not in caps.schedulers:
            raise ParamError("scheduler", params.scheduler, "one of " + ", ".join(caps.schedulers))
    else:
        changes.update(scheduler=_DEFAULTS.scheduler, steps=_DEFAULTS.steps, guidance=_DEFAULTS.guidance,
                       strength=1.0)
    if not caps.seeds:
        changes.update(seed=0, batch_size=1)  # every seed gives the same pixels: one candidate
    elif params.batch_size > caps.max_batch:
        raise ParamError("batch_size", params.batch_size, f"at most {caps.max_batch} with {params.model}")
    if not caps.prompts:  # no model to guide: no reference image, no per-step soft inpainting
        changes.update(prompt="", negative_prompt="", reference=None, soft_inpainting=None)
    if caps.native_resolution:
        changes.update(width=None, height=None)
    return params.replace(**changes) if changes else params
