"""`GenerationParams`: the single source of truth for one generation.

The UI, the CLI, PNG metadata and project files all read and write this one dataclass, so a
range or a default is defined once, here. Validation errors name the field, the value and
what is allowed, because that is what a user needs to fix the input.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field, fields
from typing import Any

from app.core import guides
from app.core.errors import UserError
from app.core.guides import ControlUnit, Reference, SoftInpainting

MODES = ("inpaint", "img2img")
INPAINT_AREAS = ("masked", "whole")
MASKED_CONTENT = ("original", "fill", "latent_noise", "latent_nothing")
#: Match tone and colour of the generated region to its surround. "auto" = on for diffusion
#: models (whose output drifts), off for the classical methods (built from the surround itself).
COLOR_MATCH = ("auto", "on", "off")

@dataclass(frozen=True)
class ClassicalMethod:
    """One built-in classical inpainting method: its display name and OpenCV's flag name."""

    label: str
    cv2_flag: str


#: The one table of built-in classical methods; any other model reference names a diffusion model.
CLASSICAL_METHODS: dict[str, ClassicalMethod] = {
    "builtin:telea": ClassicalMethod("Classical — Telea (fast)", "INPAINT_TELEA"),
    "builtin:ns": ClassicalMethod("Classical — Navier–Stokes", "INPAINT_NS"),
}
CLASSICAL_MODELS = tuple(CLASSICAL_METHODS)
#: LaMa (`app.inference.restoration.lama`): "lama" or "lama:PATH". Like a classical method it
#: takes no prompt, seed, sampler, CFG or strength.
LAMA_MODEL = "lama"


def is_lama_model(model: str) -> bool:
    return model == LAMA_MODEL or model.startswith(LAMA_MODEL + ":")


def is_prompt_free(model: str) -> bool:
    """The one answer to "is it classical?": no prompt, seed, sampler, CFG or strength decides
    what ``model`` paints (the classical methods, LaMa). `Capabilities.prompt_free` says the
    same of a loaded or remote backend."""
    return model in CLASSICAL_METHODS or is_lama_model(model)


DEFAULT_MODEL = "builtin:telea"
DEFAULT_SCHEDULER = "DPM++ 2M Karras"

#: Seeds are 64-bit: ComfyUI, Fooocus and torch.Generator.manual_seed use the full unsigned range.
SEED_MAX = 2**64 - 1
#: Random seeds are drawn as A1111 draws them (32-bit): short to read and to type.
RANDOM_SEED_MAX = 2**32 - 1


def default_strength(mode: str) -> float:
    """Inpainting replaces the masked content fully; img2img keeps a quarter of the original."""
    return 1.0 if mode == "inpaint" else 0.75


class ParamError(UserError, ValueError):
    """A parameter is out of range or of the wrong kind. ``field`` names the offending field,
    ``value`` what was given and ``allowed`` what would be accepted."""

    title = "Invalid parameter"

    def __init__(self, field_name: str, value: Any, allowed: str):
        self.field = field_name
        self.value = value
        self.allowed = allowed
        missing = value is None or (isinstance(value, str) and not value.strip())
        super().__init__(f"{field_name} is missing: {allowed}" if missing else f"{field_name} = {value!r} is not valid: {allowed}")


#: Fields holding `app.core.guides` values (JSON: dicts and lists).
GUIDE_FIELDS = ("controls", "reference", "soft_inpainting")

#: What a prompt-free method (classical, LaMa) ignores.
SAMPLING_FIELDS = frozenset({"prompt", "negative_prompt", "scheduler", "steps", "guidance", "strength", "seed",
                             "batch_size", *GUIDE_FIELDS})


@dataclass(frozen=True)
class GenerationParams:
    """Everything that decides the pixels of one generation (besides image, mask and weights)."""

    prompt: str = ""
    negative_prompt: str = ""
    mode: str = "inpaint"
    model: str = DEFAULT_MODEL
    scheduler: str = DEFAULT_SCHEDULER
    steps: int = 25
    guidance: float = 7.5
    strength: float = 1.0
    seed: int = -1
    batch_size: int = 1
    #: Model resolution; ``None`` = derived from the region (rounded to a multiple of 8).
    width: int | None = None
    height: int | None = None
    mask_blur: int = 4
    mask_grow: int = 0
    inpaint_area: str = "masked"
    padding: int = 32
    masked_content: str = "original"
    color_match: str = "auto"
    #: ControlNets, in order; their images are `GenerationRequest.control_images`.
    controls: tuple[ControlUnit, ...] = ()
    #: IP-Adapter; its image is `GenerationRequest.reference_image`.
    reference: Reference | None = None
    #: Per-pixel change from the mask's grey levels; None = the mask is binarised for denoising.
    soft_inpainting: SoftInpainting | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> GenerationParams:
        """Raise `ParamError` for the first invalid field; return self so calls chain."""
        _check_choice("mode", self.mode, MODES)
        _check_choice("inpaint_area", self.inpaint_area, INPAINT_AREAS)
        _check_choice("masked_content", self.masked_content, MASKED_CONTENT)
        _check_choice("color_match", self.color_match, COLOR_MATCH)
        _check_str("prompt", self.prompt)
        _check_str("negative_prompt", self.negative_prompt)
        _check_str("model", self.model)
        if not self.model.strip():
            raise ParamError("model", self.model, "a model path, a Hugging Face id or one of " + ", ".join(CLASSICAL_MODELS))
        _check_str("scheduler", self.scheduler)
        _check_int("steps", self.steps, 1, 150)
        _check_float("guidance", self.guidance, 0.0, 30.0)
        _check_float("strength", self.strength, 0.01, 1.0)
        if self.seed != -1:
            _check_int("seed", self.seed, 0, SEED_MAX, extra="or -1 for random")
        else:
            _check_int("seed", self.seed, -1, SEED_MAX)
        _check_int("batch_size", self.batch_size, 1, 8)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, 256, 2048)
                if value % 8:
                    raise ParamError(name, value, "must be a multiple of 8 (256–2048)")
        _check_int("mask_blur", self.mask_blur, 0, 64)
        _check_int("mask_grow", self.mask_grow, 0, 64)
        _check_int("padding", self.padding, 0, 256)
        if not isinstance(self.controls, tuple) or len(self.controls) > guides.MAX_CONTROLS:
            raise ParamError("controls", self.controls, f"a tuple of at most {guides.MAX_CONTROLS} control units")
        for i, unit in enumerate(self.controls):
            unit.check(f"controls[{i}]")
        if self.reference is not None:
            self.reference.check("reference")
        if self.soft_inpainting is not None:
            self.soft_inpainting.check("soft_inpainting")
        return self

    @property
    def is_prompt_free(self) -> bool:
        """No prompt, seed, sampler, CFG or strength decides the pixels (`is_prompt_free`)."""
        return is_prompt_free(self.model)

    @property
    def deciding_fields(self) -> tuple[str, ...]:
        """The fields that decided this run's pixels: what a reader shows and a recall sets
        (a prompt-free method's record keeps default sampling fields that decided nothing)."""
        names = [f for f in self.__dataclass_fields__
                 if f != "extra" and not (f in GUIDE_FIELDS and not getattr(self, f))]
        return tuple(f for f in names if f not in SAMPLING_FIELDS) if self.is_prompt_free else tuple(names)

    # -- seeds ------------------------------------------------------------------------------
    def with_resolved_seed(self, rng: random.Random | None = None) -> GenerationParams:
        """Replace seed −1 by a concrete random seed, so the seed actually used is recorded."""
        if self.seed != -1:
            return self
        return dataclasses.replace(self, seed=(rng or random.SystemRandom()).randint(0, RANDOM_SEED_MAX))

    def batch_seeds(self) -> list[int]:
        """Seeds of the batch items: s, s+1, … (wrapping at 2³²), as A1111 does."""
        if self.seed == -1:
            raise ValueError("resolve the seed first (with_resolved_seed)")
        return [(self.seed + i) % (SEED_MAX + 1) for i in range(self.batch_size)]

    def replace(self, **changes: Any) -> GenerationParams:
        return dataclasses.replace(self, **changes)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the guide fields become dicts and lists."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in GUIDE_FIELDS:
            data[name] = guides.to_json(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = False) -> GenerationParams:
        """Build from a dict (a project file, our PNG JSON chunk); unknown keys are ignored
        unless ``strict``; values are coerced to the field's type and then validated."""
        if not isinstance(data, dict):
            raise ParamError("parameters", type(data).__name__, "a JSON object of parameters")
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if strict and unknown:
            raise ParamError(sorted(unknown)[0], data[sorted(unknown)[0]], "not a known parameter")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            kwargs[name] = coerce_field(name, value)
        return cls(**kwargs).validate()


def coerce_field(name: str, value: Any) -> Any:
    """``value`` (as JSON or a front end gives it) as field ``name``'s type, or a `ParamError`
    naming the field; ranges are `validate`'s."""
    kind = str(GenerationParams.__dataclass_fields__[name].type)
    if name == "extra":
        if not isinstance(value, dict):
            raise ParamError(name, value, "a JSON object")
        return value
    if name in GUIDE_FIELDS:
        return guides.from_json(name, value)
    if value is None and "None" in kind:
        return None
    try:
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind.startswith("str"):
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError, OverflowError):
        raise ParamError(name, value, f"must be of type {kind.split(' ')[0]}") from None
    return value


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParamError(name, value, "one of " + ", ".join(choices))


def _check_str(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ParamError(name, value, "must be text")


def _check_int(name: str, value: Any, lo: int, hi: int, extra: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(name, value, f"must be a whole number from {lo} to {hi}")
    if not lo <= value <= hi:
        raise ParamError(name, value, f"must be from {lo} to {hi}" + (f" {extra}" if extra else ""))


def _check_float(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ParamError(name, value, f"must be a number from {lo:g} to {hi:g}")
    if not lo <= value <= hi:
        raise ParamError(name, value, f"must be from {lo:g} to {hi:g}")
