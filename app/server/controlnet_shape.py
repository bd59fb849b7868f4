"""The A1111 ControlNet extension's request shape: ``alwayson_scripts.controlnet.args``, a list
of units as webuiapi's ``ControlNetUnit.to_dict()`` sends them (``image``/``input_image``,
``mask``, ``module``, ``model``, ``weight``, ``resize_mode``, ``guidance_start``, ``guidance_end``,
``control_mode``, ``enabled``, and preprocessor knobs we take and ignore: ``processor_res``,
``threshold_a/b``, ``pixel_perfect``, ``low_vram``, ``hr_option``).

Every value is checked before the queue; a bad one is a 422 naming its field
(``alwayson_scripts.controlnet.args[0].weight``). A unit without an image uses the init image
(the extension does the same); ``model`` "None" picks the first installed ControlNet for the
module, as the CLI does. Models are named as the server lists them, never by path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.control_fit import RESIZE_MODES, fit, resize_mode
from app.core.guides import MAX_CONTROLS, ControlUnit
from app.core.imageio import LoadedImage
from app.core.params import ParamError
from app.core.sdmeta.controlnet import module_of
from app.server.errors import bad_field
from app.server.fetch import FetchPolicy, image_from_value

#: Our ControlUnit field → the extension's name for it.
_FIELD = {"module": "module", "model": "model", "weight": "weight", "start": "guidance_start", "end": "guidance_end"}
_BALANCED = ("Balanced", 0, "0")


@dataclass(frozen=True)
class ParsedUnit:
    unit: ControlUnit
    image: Any  # the request's image value (base64, data URI, URL), or None: the init image
    resize_mode: str
    where: str


def parse(body: dict[str, Any]) -> list[ParsedUnit]:
    """The enabled units of ``body``'s ControlNet script (none when it has none)."""
    scripts = body.get("alwayson_scripts")
    if scripts in (None, {}):
        return []
    if not isinstance(scripts, dict):
        raise bad_field("alwayson_scripts", scripts, "a JSON object of script name → {args: [...]}", 422)
    name, entry = next(((k, v) for k, v in scripts.items() if str(k).lower() == "controlnet"), (None, None))
    if name is None:
        return []
    base = f"alwayson_scripts.{name}.args"
    args = entry.get("args") if isinstance(entry, dict) else None
    if not isinstance(args, list):
        raise bad_field(base, args, "a list of ControlNet units (JSON objects)", 422)
    parsed = [_unit(f"{base}[{i}]", arg) for i, arg in enumerate(args)]
    parsed = [p for p in parsed if p is not None]
    if len(parsed) > MAX_CONTROLS:
        raise bad_field(base, f"{len(parsed)} enabled units", f"at most {MAX_CONTROLS} enabled units", 422)
    return parsed


def _unit(where: str, arg: Any) -> ParsedUnit | None:
    if not isinstance(arg, dict):
        raise bad_field(where, arg, "a ControlNet unit (a JSON object)", 422)
    enabled = arg.get("enabled", True)
    if not isinstance(enabled, bool):
        raise bad_field(f"{where}.enabled", enabled, "true or false", 422)
    if not enabled:
        return None
    if str(arg.get("module", "")).lower().startswith("ip-adapter"):
        return None  # the reference image: `app.server.guide_shapes.reference`
    module = module_of(_text(arg, "module", where, "none"))
    if module is None:
        raise bad_field(f"{where}.module", arg.get("module"), "a preprocessor this server has (none, canny, softedge, "
                        "scribble, lineart, tile, blur, inpaint, depth, openpose, mlsd, normal, seg, shuffle)", 422)
    image = arg.get("image", arg.get("input_image"))
    mask = arg.get("mask", arg.get("mask_image"))
    if isinstance(image, dict):  # the extension's older {"image": ..., "mask": ...}
        image, mask = image.get("image"), image.get("mask", mask)
    if image in (None, ""):
        image = None
    elif not isinstance(image, str):
        raise bad_field(f"{where}.image", image, "a base64 image, a data URI or an http(s) URL", 422)
    if mask not in (None, ""):
        raise bad_field(f"{where}.mask", mask, "none: a per-unit mask is not supported (the request's mask applies)", 422)
    mode = resize_mode(arg.get("resize_mode", "Crop and Resize"))
    if mode is None:
        raise bad_field(f"{where}.resize_mode", arg.get("resize_mode"), " / ".join(RESIZE_MODES) + " (or 0/1/2)", 422)
    if arg.get("control_mode", "Balanced") not in _BALANCED:
        raise bad_field(f"{where}.control_mode", arg.get("control_mode"), "Balanced (0): the other modes are not supported", 422)
    numbers = {key: arg.get(key, default) for key, default in (("weight", 1.0), ("guidance_start", 0.0), ("guidance_end", 1.0))}
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad_field(f"{where}.{key}", value, "a number", 422)
    unit = ControlUnit(module, _model(where, _text(arg, "model", where, "None"), module),
                       float(numbers["weight"]), float(numbers["guidance_start"]), float(numbers["guidance_end"]))
    try:
        unit.check("unit")
    except ParamError as exc:
        raise bad_field(f"{where}.{_FIELD[exc.field.split('.')[-1]]}", exc.value, exc.allowed, 422) from None
    return ParsedUnit(unit, image, mode, where)


def _text(arg: dict[str, Any], key: str, where: str, default: str) -> str:
    value = arg.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_field(f"{where}.{key}", value, "text", 422)
    return value


def _model(where: str, name: str, module: str) -> str:
    """The name of the installed ControlNet ``name`` means ("None": the first for ``module``)."""
    from app.service import ModelLoadError, controlnet

    try:
        if name.strip() in ("", "None", "none"):
            return controlnet.find_for_module(module).name
        return controlnet.resolve(name, allow_paths=False).name
    except ModelLoadError as exc:
        raise bad_field(f"{where}.model", name, _no_paths(str(exc)), 422) from None


def _no_paths(message: str) -> str:
    from app.server.errors import scrub_paths

    return scrub_paths(message)


async def images(parsed: list[ParsedUnit], init: LoadedImage, policy: FetchPolicy) -> tuple[np.ndarray, ...]:
    """Each unit's control image at the init image's size (fitted by its resize mode)."""
    height, width = init.pixels.shape[:2]
    out = []
    for p in parsed:
        pixels = init.pixels if p.image is None else (await image_from_value(p.image, f"{p.where}.image", policy)).pixels
        out.append(fit(pixels, (width, height), p.resize_mode))
    return tuple(out)
