"""What guides a generation besides the prompt: control layers, a reference image, soft inpainting.

These are parts of `GenerationParams`, so each is a small frozen value with its own checks and
a JSON form; the pixels they need (control images, the reference image) travel in the
`GenerationRequest` beside the document's image, never in the parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: Preprocessors that make a control image from the document. "none" = the control layer is
#: used as painted or imported.
CONTROL_MODULES = ("none", "canny", "softedge", "scribble", "lineart", "tile", "blur", "inpaint", "depth",
                   "openpose", "mlsd", "normal", "seg", "shuffle")
MAX_CONTROLS = 4


@dataclass(frozen=True)
class ControlUnit:
    """One ControlNet: which preprocessor made its image, which model reads it, how strongly, and
    over which part of the schedule (fractions of the steps, as A1111's "Guidance Start/End")."""

    module: str = "none"
    model: str = ""
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0

    def check(self, where: str) -> None:
        from app.core.params import ParamError

        if self.module not in CONTROL_MODULES:
            raise ParamError(f"{where}.module", self.module, "one of " + ", ".join(CONTROL_MODULES))
        if not isinstance(self.model, str) or not self.model.strip():
            raise ParamError(f"{where}.model", self.model, "a ControlNet model: a path, a name in the models "
                             "folder or a Hugging Face id")
        _check_number(f"{where}.weight", self.weight, 0.0, 2.0)
        _check_number(f"{where}.start", self.start, 0.0, 1.0)
        _check_number(f"{where}.end", self.end, 0.0, 1.0)
        if self.start >= self.end:
            raise ParamError(f"{where}.end", self.end, f"must be greater than start ({self.start:g})")


@dataclass(frozen=True)
class Reference:
    """A reference image (IP-Adapter): which adapter and how strongly it steers the result."""

    model: str = ""
    weight: float = 0.6

    def check(self, where: str) -> None:
        from app.core.params import ParamError

        if not isinstance(self.model, str) or not self.model.strip():
            raise ParamError(f"{where}.model", self.model, "an IP-Adapter weights file or Hugging Face id")
        _check_number(f"{where}.weight", self.weight, 0.0, 2.0)


@dataclass(frozen=True)
class SoftInpainting:
    """A1111's soft inpainting (differential diffusion): a mask value of v lets a pixel change by v.
    The names and defaults are A1111's, so its infotext maps one to one."""

    schedule_bias: float = 1.0
    preservation_strength: float = 0.5
    transition_contrast_boost: float = 4.0
    mask_influence: float = 0.0
    difference_threshold: float = 0.5
    difference_contrast: float = 2.0

    def check(self, where: str) -> None:
        _check_number(f"{where}.schedule_bias", self.schedule_bias, 0.0, 8.0)
        _check_number(f"{where}.preservation_strength", self.preservation_strength, 0.0, 8.0)
        _check_number(f"{where}.transition_contrast_boost", self.transition_contrast_boost, 1.0, 32.0)
        _check_number(f"{where}.mask_influence", self.mask_influence, 0.0, 1.0)
        _check_number(f"{where}.difference_threshold", self.difference_threshold, 0.0, 8.0)
        _check_number(f"{where}.difference_contrast", self.difference_contrast, 0.0, 8.0)


def to_json(value: Any) -> Any:
    """The JSON form of a guide field: dicts for the values, a list for the control units."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return [asdict(unit) for unit in value]
    return asdict(value)


def from_json(name: str, value: Any) -> Any:
    """Parse ``controls``/``reference``/``soft_inpainting`` from their JSON form (unknown keys are
    refused, so a typo is not silently a default)."""
    from app.core.params import ParamError

    if name == "controls":
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise ParamError(name, value, "a list of control units")
        if len(value) > MAX_CONTROLS:
            raise ParamError(name, f"{len(value)} units", f"at most {MAX_CONTROLS} control units")
        return tuple(_unit(ControlUnit, f"controls[{i}]", item) for i, item in enumerate(value))
    if value is None:
        return None
    kind = Reference if name == "reference" else SoftInpainting
    if value is True and kind is SoftInpainting:
        return SoftInpainting()
    return _unit(kind, name, value)


def _unit(kind: type, where: str, value: Any) -> Any:
    from app.core.params import ParamError

    if isinstance(value, kind):
        return value
    if not isinstance(value, dict):
        raise ParamError(where, value, f"a JSON object with {', '.join(f.name for f in fields(kind))}")
    known = {f.name: f for f in fields(kind)}
    for key in value:
        if key not in known:
            raise ParamError(f"{where}.{key}", value[key], "not a known field: " + ", ".join(known))
    args: dict[str, Any] = {}
    for key, item in value.items():
        if known[key].type == "str":
            if not isinstance(item, str):
                raise ParamError(f"{where}.{key}", item, "must be text")
            args[key] = item
        else:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise ParamError(f"{where}.{key}", item, "must be a number")
            args[key] = float(item)
    return kind(**args)


def _check_number(name: str, value: Any, lo: float, hi: float) -> None:
    from app.core.params import ParamError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ParamError(name, value, f"must be a number from {lo:g} to {hi:g}")
    if not lo <= value <= hi:
        raise ParamError(name, value, f"must be from {lo:g} to {hi:g}")
