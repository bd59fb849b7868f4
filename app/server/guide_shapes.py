"""Soft inpainting and the reference image in A1111's request shape (``alwayson_scripts``).

- ``alwayson_scripts["soft inpainting"].args`` (A1111 matches script titles case-insensitively):
  ``[enabled, schedule_bias, preservation_strength, transition_contrast_boost, mask_influence,
  difference_threshold, difference_contrast]``, the order of A1111's ``scripts/soft_inpainting.py``
  ``ui()``; missing trailing values keep A1111's defaults.
- an IP-Adapter unit of the ControlNet extension (``alwayson_scripts.controlnet.args[i]`` as
  webuiapi's ``ControlNetUnit.to_dict()`` sends it, ``module`` ``ip-adapter*``): the reference
  image (``image``, or the older ``input_image``) with ``model`` and ``weight``. Only the first
  enabled one is used; the other units are ControlNets (`app.server.controlnet_shape`).
"""

from __future__ import annotations

from typing import Any

from app.core.guides import SoftInpainting
from app.core.sdmeta.guide_infotext import reference_unit
from app.server.errors import bad_field

SOFT_FIELDS = ("schedule_bias", "preservation_strength", "transition_contrast_boost", "mask_influence",
               "difference_threshold", "difference_contrast")


def _script(body: dict[str, Any], title: str) -> tuple[str, Any] | None:
    scripts = body.get("alwayson_scripts")
    if not isinstance(scripts, dict):
        return None
    for key, value in scripts.items():
        if isinstance(key, str) and key.strip().lower() == title:
            return key, value
    return None


def _args(found: tuple[str, Any]) -> list:
    key, value = found
    args = value.get("args") if isinstance(value, dict) else None
    if not isinstance(args, list):
        raise bad_field(f"alwayson_scripts.{key}.args", args, "a list")
    return args


def soft_inpainting(body: dict[str, Any]) -> SoftInpainting | None:
    """`SoftInpainting` from ``alwayson_scripts["soft inpainting"]``, None when absent or off."""
    found = _script(body, "soft inpainting")
    if found is None:
        return None
    args = _args(found)
    if not args or args[0] not in (True, 1):
        return None
    if len(args) > 1 + len(SOFT_FIELDS):
        raise bad_field(f"alwayson_scripts.{found[0]}.args", f"{len(args)} values",
                        f"at most {1 + len(SOFT_FIELDS)}: enabled, " + ", ".join(SOFT_FIELDS))
    values = {}
    for index, (name, value) in enumerate(zip(SOFT_FIELDS, args[1:]), start=1):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad_field(f"alwayson_scripts.{found[0]}.args[{index}]", value, f"{name}: a number")
        values[name] = float(value)
    return SoftInpainting(**values)  # ranges: checked with the other params (a 400 naming the field)


def reference(body: dict[str, Any]):
    """(`Reference`, its image value, field name) of the first enabled IP-Adapter unit in
    ``alwayson_scripts.controlnet``, or None."""
    found = _script(body, "controlnet")
    if found is None:
        return None
    for index, unit in enumerate(_args(found)):
        if not isinstance(unit, dict) or unit.get("enabled", True) in (False, 0):
            continue
        ref = reference_unit(unit)
        if ref is None:
            continue
        field = f"alwayson_scripts.{found[0]}.args[{index}]"
        image = unit.get("image") or unit.get("input_image")
        if isinstance(image, dict):  # the extension's {"image": …, "mask": …} form
            image = image.get("image")
        if not image:
            raise bad_field(f"{field}.image", None, "the reference image (base64) for the IP-Adapter unit")
        return ref, image, f"{field}.image"
    return None
