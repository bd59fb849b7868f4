"""Soft inpainting and the reference image in A1111 infotext, both ways.

Soft inpainting is written as A1111 ≥ 1.8's ``scripts/soft_inpainting.py`` writes it
("Soft inpainting enabled: True, Soft inpainting schedule bias: 1.0, …", its six labels). The
reference image is an IP-Adapter unit of the ControlNet extension, written after the control
units as it writes them: ``ControlNet N: "Module: ip-adapter_clip_sd15, Model: NAME, Weight: W,
Guidance Start: 0.0, Guidance End: 1.0"``; on reading, the first unit whose module is an
``ip-adapter*`` one becomes the reference (the other units are ControlNets).
"""

from __future__ import annotations

import re
from typing import Any

from app.core.guides import Reference, SoftInpainting

ENABLED = "Soft inpainting enabled"
#: `SoftInpainting` field → A1111's infotext label.
SOFT_LABELS = {
    "schedule_bias": "Soft inpainting schedule bias",
    "preservation_strength": "Soft inpainting preservation strength",
    "transition_contrast_boost": "Soft inpainting transition contrast boost",
    "mask_influence": "Soft inpainting mask influence",
    "difference_threshold": "Soft inpainting difference threshold",
    "difference_contrast": "Soft inpainting difference contrast",
}
#: The ControlNet extension's preprocessor for an SD 1.5 IP-Adapter.
IP_ADAPTER_MODULE = "ip-adapter_clip_sd15"
_UNIT_KEY = re.compile(r"^ControlNet (\d+)$")
_UNIT_FIELD = re.compile(r"\s*([\w ]+):\s*([^,]*)(?:,|$)")


def guide_fields(params) -> dict[str, str]:
    """The infotext fields of ``params.soft_inpainting`` and ``params.reference``."""
    out: dict[str, str] = {}
    soft: SoftInpainting | None = params.soft_inpainting
    if soft is not None:
        out[ENABLED] = "True"
        out.update({label: str(float(getattr(soft, name))) for name, label in SOFT_LABELS.items()})
    ref: Reference | None = params.reference
    if ref is not None:
        model = re.sub(r"[,:\"]", "", ref.model.replace("\\", "/").rsplit("/", 1)[-1])
        for suffix in (".safetensors", ".bin", ".pth", ".pt"):
            model = model[: -len(suffix)] if model.endswith(suffix) else model
        out[f"ControlNet {len(params.controls)}"] = (f"Module: {IP_ADAPTER_MODULE}, Model: {model}, "
                                                    f"Weight: {float(ref.weight)}, Guidance Start: 0.0, Guidance End: 1.0")
    return out


def unit_fields(text: str) -> dict[str, str]:
    """``"Module: x, Model: y [hash], Weight: 1"`` → {"Module": "x", "Model": "y [hash]", …}."""
    return {k.strip(): v.strip() for k, v in _UNIT_FIELD.findall(str(text))}


def guides_from_fields(f: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """``soft_inpainting`` / ``reference`` for `GenerationParams` from infotext fields (odd
    values are left out with a note, ranges clamped with a note)."""
    out: dict[str, Any] = {}
    if str(f.get(ENABLED, "")).strip().lower() == "true":
        values: dict[str, float] = {}
        for name, label in SOFT_LABELS.items():
            if label in f:
                value = _number(f[label], label, notes)
                if value is not None:
                    values[name] = _clamp(value, *_SOFT_RANGES[name], label, notes)
        out["soft_inpainting"] = SoftInpainting(**values)
    units = sorted((int(m.group(1)), v) for k, v in f.items() if (m := _UNIT_KEY.match(str(k))))
    for _, text in units:
        unit = unit_fields(text)
        if unit.get("Module", "").lower().startswith("ip-adapter"):
            model = re.sub(r"\s*\[[0-9a-fA-F]+\]$", "", unit.get("Model", "")).strip()
            weight = _number(unit.get("Weight", Reference().weight), "ControlNet Weight", notes)
            if model and model.lower() != "none":
                out["reference"] = Reference(model, _clamp(Reference().weight if weight is None else weight,
                                                           0.0, 2.0, "ControlNet Weight", notes))
            break
    return out


def reference_unit(unit: dict[str, Any]) -> Reference | None:
    """The `Reference` of one ControlNet-extension unit as webuiapi's ``ControlNetUnit.to_dict()``
    sends it (``module``, ``model``, ``weight``; ``image``/``input_image`` decoded by the caller),
    or None when the unit is not an IP-Adapter one. For the server's ``alwayson_scripts.controlnet``."""
    if not str(unit.get("module", "")).lower().startswith("ip-adapter"):
        return None
    model = re.sub(r"\s*\[[0-9a-fA-F]+\]$", "", str(unit.get("model", ""))).strip()
    weight = unit.get("weight", Reference().weight)
    return Reference(model or "ip-adapter_sd15", float(weight) if isinstance(weight, (int, float)) else weight)


_SOFT_RANGES = {"schedule_bias": (0.0, 8.0), "preservation_strength": (0.0, 8.0),
                "transition_contrast_boost": (1.0, 32.0), "mask_influence": (0.0, 1.0),
                "difference_threshold": (0.0, 8.0), "difference_contrast": (0.0, 8.0)}


def _number(value: Any, label: str, notes: list[str]) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        notes.append(f"{label} {value!r} is not a number: left out")
        return None
    if number != number or number in (float("inf"), float("-inf")):
        notes.append(f"{label} {value!r} is not a finite number: left out")
        return None
    return number


def _clamp(value: float, lo: float, hi: float, label: str, notes: list[str]) -> float:
    clamped = min(max(value, lo), hi)
    if clamped != value:
        notes.append(f"{label} {value} is outside {lo}–{hi}: set to {clamped}")
    return clamped
