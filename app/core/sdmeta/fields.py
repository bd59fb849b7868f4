"""Turn the fields any reader found (A1111's names: "Steps", "CFG scale", "Seed", …) into
`GenerationParams`, with one line per value that had to be adjusted or left out.

Every tool family's reader maps its own keys onto A1111's names, so ranges, sampler names,
seeds and the txt2img / img2img / inpaint decision are decided once, here.
"""

from __future__ import annotations

import math

from typing import Any

from app.core.params import CLASSICAL_MODELS, SEED_MAX, GenerationParams, ParamError
from app.core.schedulers import resolve_sampler
from app.core.sdmeta.controlnet import units_from_fields
from app.core.sdmeta.guide_infotext import guides_from_fields

#: A1111's field names; keys are matched case-insensitively ("CFG Scale" as "CFG scale").
KNOWN = ("Prompt", "Negative prompt", "Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Size-1",
         "Size-2", "Model", "Model hash", "Denoising strength", "Mask blur", "Inpaint area", "Masked area padding",
         "Masked content", "Hires upscale", "Hires steps", "Hires upscaler", "Hires resize-1", "Hires resize-2")
_CANON = {k.casefold(): k for k in KNOWN}
_MASK_KEYS = ("Mask blur", "Inpaint area", "Masked content", "Mask mode", "Masked area padding")
_HIRES_KEYS = ("Hires upscale", "Hires steps", "Hires upscaler", "Hires resize-1")
_MASKED_CONTENT = {"original": "original", "fill": "fill", "latent noise": "latent_noise", "latent nothing": "latent_nothing"}

#: GenerationParams fields set from each A1111 key, so recall changes only what the file holds.
_FIELD_OF = {"Prompt": "prompt", "Negative prompt": "negative_prompt", "Steps": "steps", "Sampler": "scheduler",
             "CFG scale": "guidance", "Seed": "seed", "Size-1": "width", "Size-2": "height",
             "Denoising strength": "strength", "Mask blur": "mask_blur", "Masked area padding": "padding",
             "Inpaint area": "inpaint_area", "Masked content": "masked_content"}


def canonical_keys(fields: dict[str, Any]) -> dict[str, Any]:
    """Known keys spelled as A1111 spells them; unknown keys kept as they are."""
    return {_CANON.get(k.casefold(), k): v for k, v in fields.items()}


def origin(fields: dict[str, Any]) -> str:
    """"inpaint", "img2img" or "txt2img": what produced the image, from which fields it has.
    Hires fix writes a "Denoising strength" for its second pass: that image is still txt2img."""
    if any(k in fields for k in _MASK_KEYS):
        return "inpaint"
    if any(k in fields for k in _HIRES_KEYS):
        return "txt2img"
    return "img2img" if fields.get("Denoising strength") not in (None, "") else "txt2img"


def build_params(fields: dict[str, Any]) -> tuple[GenerationParams, frozenset[str], list[str]]:
    """(params, the params fields the file set, notes). Never raises: an odd value is left out
    with a note, a number out of range is clamped with a note."""
    f = canonical_keys(fields)
    kw: dict[str, Any] = {"prompt": str(f.get("Prompt") or ""), "negative_prompt": str(f.get("Negative prompt") or "")}
    notes: list[str] = []
    set_keys = {k for k in ("Prompt", "Negative prompt") if f.get(k)}

    for key, cast, lo, hi in (("Steps", int, 1, 150), ("CFG scale", float, 0.0, 30.0), ("Mask blur", int, 0, 64),
                              ("Masked area padding", int, 0, 256)):
        _number(f, kw, set_keys, notes, key, cast, lo, hi)
    _seed(f, kw, set_keys, notes)
    _sampler(f, kw, set_keys, notes)
    _size(f, kw, set_keys, notes)
    made_by = origin(f)
    _mode(f, kw, set_keys, notes, made_by)
    if str(f.get("Model", "")) in CLASSICAL_MODELS:
        kw["model"] = f["Model"]
        set_keys.add("Model")
    kw["controls"], control_notes = units_from_fields(f)  # A1111's ControlNet extension: "ControlNet 0", …
    notes += control_notes
    if kw["controls"]:
        set_keys.add("ControlNet")
    guides = guides_from_fields(f, notes)  # soft inpainting, the IP-Adapter unit
    kw.update(guides)
    kw["extra"] = {"origin": made_by, "source_fields": {k: v for k, v in f.items() if k not in ("Prompt", "Negative prompt")}}
    try:
        params = GenerationParams(**kw).validate()
    except ParamError as exc:  # belt and braces: a field none of the checks above knows
        notes.append(f"{exc}: left out, and with it every setting but the prompts")
        params = GenerationParams(prompt=kw["prompt"], negative_prompt=kw["negative_prompt"], extra=kw["extra"])
        set_keys &= {"Prompt", "Negative prompt"}
    names = {_FIELD_OF[k] for k in set_keys if k in _FIELD_OF} | ({"model"} if "Model" in set_keys else set())
    names |= {"controls"} if "ControlNet" in set_keys else set()
    if "mode" in kw:
        names.add("mode")
    names |= {name for name in guides if getattr(params, name) is not None}
    return params, frozenset(names), notes


def _number(f: dict[str, Any], kw: dict[str, Any], set_keys: set[str], notes: list[str], key: str, cast: type,
            lo: float, hi: float) -> None:
    """Field ``key`` as a number clamped to [lo, hi] (with a note), or left out with a note."""
    if f.get(key) in (None, ""):
        return
    try:
        value = cast(round(float(f[key]))) if cast is int else float(f[key])
    except (TypeError, ValueError, OverflowError):
        notes.append(f"{key} {f[key]!r} is not a number: left out")
        return
    if not math.isfinite(value):  # NaN compares false both ways: clamping it gave NaN and lost every field
        notes.append(f"{key} {f[key]!r} is not a finite number: left out")
        return
    clamped = min(max(value, lo), hi)
    if clamped != value:
        notes.append(f"{key} {value} is outside {lo}–{hi}: set to {clamped}")
    kw[_FIELD_OF[key]] = cast(clamped)
    set_keys.add(key)


def _mode(f: dict[str, Any], kw: dict[str, Any], set_keys: set[str], notes: list[str], made_by: str) -> None:
    """Mode, strength and the inpaint-only fields from what made the image: a txt2img image is
    recalled as an inpaint at full strength, which regenerates the area as txt2img made it."""
    if made_by == "txt2img":
        kw["strength"] = 1.0
        if any(k in f for k in _HIRES_KEYS):
            notes.append(f"hires fix (×{f.get('Hires upscale', '?')}, second pass at denoising "
                         f"{f.get('Denoising strength', '?')}) is not re-run: recalled as its first, txt2img pass")
    else:
        kw["mode"] = made_by
        _number(f, kw, set_keys, notes, "Denoising strength", float, 0.01, 1.0)
    if made_by == "inpaint":
        if "Inpaint area" in f:
            kw["inpaint_area"] = "masked" if str(f["Inpaint area"]).lower().startswith("only") else "whole"
            set_keys.add("Inpaint area")
        if "Masked content" in f:
            kw["masked_content"] = _MASKED_CONTENT.get(str(f["Masked content"]).lower(), "original")
            set_keys.add("Masked content")


def _seed(f: dict[str, Any], kw: dict[str, Any], set_keys: set[str], notes: list[str]) -> None:
    if f.get("Seed") in (None, ""):
        return
    try:
        seed = int(str(f["Seed"]).strip())
    except ValueError:
        try:
            seed = int(float(f["Seed"]))  # "42.0"; large seeds never go through float
        except (TypeError, ValueError, OverflowError):
            notes.append(f"Seed {f['Seed']!r} is not a number: left out")
            return
    if not -1 <= seed <= SEED_MAX:
        notes.append(f"Seed {seed} is outside 0–{SEED_MAX}: left out")
        return
    kw["seed"] = seed
    set_keys.add("Seed")


def _sampler(f: dict[str, Any], kw: dict[str, Any], set_keys: set[str], notes: list[str]) -> None:
    if not f.get("Sampler"):
        return
    found = resolve_sampler(str(f["Sampler"]), str(f.get("Schedule type") or "") or None)
    if found is None:
        notes.append(f"sampler {f['Sampler']!r} has no equivalent here: left out")
        return
    kw["scheduler"], note = found
    if note:
        notes.append(note)
    set_keys.add("Sampler")


def _size(f: dict[str, Any], kw: dict[str, Any], set_keys: set[str], notes: list[str]) -> None:
    if "Size-1" not in f and isinstance(f.get("Size"), str) and "x" in f["Size"]:
        f["Size-1"], f["Size-2"] = f["Size"].split("x", 1)
    size = []
    for key in ("Size-1", "Size-2"):
        try:
            size.append(int(float(f[key])))
        except (KeyError, TypeError, ValueError):
            return
    if all(256 <= v <= 2048 and v % 8 == 0 for v in size):
        kw["width"], kw["height"] = size
        set_keys.update(("Size-1", "Size-2"))
    else:
        notes.append(f"size {size[0]}x{size[1]} is not 256–2048 in steps of 8: left out")
