"""A1111 ControlNet extension infotext: ``ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny
[d14c016b], Weight: 1.0, …"``, written and read back as `ControlUnit`s.

The extension (sd-webui-controlnet, scripts/infotext.py) writes one field per enabled unit,
``ControlNet <index>``, whose value is ``Display Name: value`` pairs joined by ", " (field names
with words capitalised: ``guidance_start`` → ``Guidance Start``); values hold no "," or ":".
We write the fields that decide the pixels here plus the extension's defaults for the rest, so
A1111 pastes our infotext into its UI as it would its own.
"""

from __future__ import annotations

import re
from typing import Any

from app.core.guides import CONTROL_MODULES, MAX_CONTROLS, ControlUnit

_KEY = re.compile(r"^ControlNet (\d+)$")
#: The extension's module names that mean one of ours (it has many variants per family).
_MODULE_FAMILIES = (("canny", "canny"), ("softedge", "softedge"), ("hed", "softedge"), ("pidi", "softedge"),
                    ("scribble", "scribble"), ("lineart", "lineart"), ("tile", "tile"), ("blur", "blur"),
                    ("inpaint", "inpaint"), ("depth", "depth"), ("openpose", "openpose"), ("dw_openpose", "openpose"),
                    ("mlsd", "mlsd"), ("normal", "normal"), ("seg", "seg"), ("shuffle", "shuffle"))


def _value(text: object) -> str:
    return str(text).replace(",", " ").replace(":", " ").strip()


def format_unit(unit: ControlUnit, model_label: str) -> str:
    """One unit as the extension writes it (``model_label``: ``name [hash]`` or the name)."""
    fields = {"Module": unit.module, "Model": _value(model_label) or "None", "Weight": float(unit.weight),
              "Resize Mode": "Crop and Resize", "Guidance Start": float(unit.start), "Guidance End": float(unit.end),
              "Pixel Perfect": False, "Control Mode": "Balanced"}
    return ", ".join(f"{k}: {v}" for k, v in fields.items())


def parse_unit(text: str) -> dict[str, str]:
    """``Display Name: value, …`` → {display name: value} (a pair without ": " is skipped)."""
    out = {}
    for item in str(text).split(","):
        key, sep, value = item.strip().partition(": ")
        if sep:
            out[key.strip()] = value.strip()
    return out


def module_of(name: str) -> str | None:
    """Our module for the extension's preprocessor name (``canny``, ``softedge_pidinet``,
    ``depth_midas``, ``none``); None when there is no equivalent."""
    name = name.strip().lower()
    if name in ("none", "", "null"):
        return "none"
    if name in CONTROL_MODULES:
        return name
    return next((ours for prefix, ours in _MODULE_FAMILIES if name.startswith(prefix)), None)


def units_from_fields(fields: dict[str, Any]) -> tuple[tuple[ControlUnit, ...], list[str]]:
    """The ControlNet units of recalled infotext fields, in index order, and notes on what was
    left out (an unknown module, a value out of range, no model)."""
    from app.core.params import ParamError

    found: list[tuple[int, ControlUnit]] = []
    notes: list[str] = []
    for key, text in fields.items():
        m = _KEY.match(str(key))
        if not m:
            continue
        values = parse_unit(text)
        if str(values.get("Module", "")).lower().startswith("ip-adapter"):
            continue  # the reference image: `app.core.sdmeta.guide_infotext`
        module = module_of(values.get("Module", "none"))
        model = values.get("Model", "")
        if module is None:
            notes.append(f"{key}: preprocessor {values.get('Module')!r} has no equivalent here: left out")
            continue
        if model.lower() in ("", "none"):
            notes.append(f"{key}: no model named: left out")
            continue
        try:
            unit = ControlUnit(module, model, float(values.get("Weight", 1.0)),
                               float(values.get("Guidance Start", 0.0)), float(values.get("Guidance End", 1.0)))
            unit.check(key)
        except (ValueError, ParamError) as exc:
            notes.append(f"{key}: {exc}: left out")
            continue
        found.append((int(m.group(1)), unit))
    found.sort(key=lambda item: item[0])
    if len(found) > MAX_CONTROLS:
        notes.append(f"{len(found)} ControlNet units: only the first {MAX_CONTROLS} recalled")
    return tuple(unit for _, unit in found[:MAX_CONTROLS]), notes
