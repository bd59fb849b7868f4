"""Fooocus' log labels as JSON keys ("Prompt", "Negative Prompt", "Guidance Scale", "Base Model",
"Sampler", "Scheduler", "Seed", …) in a PNG ``parameters`` chunk, as Fooocus 2.1 and its forks
write it (the lowercase ``metadata_scheme`` JSON of later versions is `keyed_json`'s).

Older versions leave the steps out: the Performance preset then gives them, as Fooocus sets them.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from app.core.sdmeta.found import Found
from app.core.sdmeta.sources import json_object

_KEYS = {"Prompt": "Prompt", "Negative Prompt": "Negative prompt", "Steps": "Steps", "Guidance Scale": "CFG scale",
         "Sampler": "Sampler", "Scheduler": "Schedule type", "Seed": "Seed", "Base Model": "Model",
         "Version": "Version", "Denoising Strength": "Denoising strength"}
#: Fooocus' Performance presets → steps (modules/flags.py Steps).
_PERFORMANCE_STEPS = {"quality": 60, "speed": 30, "extreme speed": 8, "lightning": 4, "hyper-sd": 4}
_MARKS = ("Base Model", "Fooocus V2 Expansion", "Performance", "Refiner Model", "ADM Guidance")


def read(texts: dict[str, str]) -> Found | None:
    data = json_object(texts.get("parameters")) or json_object(texts.get("UserComment"))
    if not data or "Prompt" not in data or not (any(k in data for k in _MARKS)
                                                or str(data.get("Version", "")).startswith("Fooocus")):
        return None
    fields: dict[str, Any] = {_KEYS[k]: v for k, v in data.items() if k in _KEYS and v not in (None, "", "None")}
    size = _resolution(data.get("Resolution"))
    if size:
        fields["Size-1"], fields["Size-2"] = size
    notes = []
    steps = _PERFORMANCE_STEPS.get(str(data.get("Performance", "")).strip().casefold())
    if "Steps" not in fields and steps:
        fields["Steps"] = steps
        notes.append(f"steps from Fooocus' {data['Performance']} preset: {steps}")
    if data.get("Styles") not in (None, "", "[]"):
        notes.append("Fooocus expands the prompt with styles; recalled: the prompt as typed")
    return Found("Fooocus", fields, notes)


def _resolution(value: Any) -> tuple[int, int] | None:
    """"(1152, 896)", "1152×896 ∣ 9:7" or [1152, 896] → (1152, 896)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        pair = value
    else:
        m = re.match(r"\s*\(?\s*(\d+)\s*[,x×*]\s*(\d+)", str(value or ""))
        if not m:
            return None
        pair = ast.literal_eval(f"({m.group(1)}, {m.group(2)})")
    try:
        return int(pair[0]), int(pair[1])
    except (TypeError, ValueError):
        return None
