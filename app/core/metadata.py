"""Generation parameters inside image files ("recall parameters from image").

Two records are written into every PNG we save:

* ``parameters`` — AUTOMATIC1111's infotext, the de-facto standard that A1111, Forge, SD.Next,
  InvokeAI's importer, Civitai and most image browsers read::

      a photo of a cat
      Negative prompt: blurry
      Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: sd15, Denoising strength: 1.0, Mask blur: 4

  Values holding ``,`` ``:`` or a newline are JSON-quoted, exactly as A1111's ``quote()`` does.
* ``inpaint-studio`` — our JSON with the full `GenerationParams.to_dict()`, which is lossless.

`read_params` prefers our JSON, then A1111's text (PNG chunk or JPEG/WebP EXIF UserComment),
then InvokeAI's ``invokeai_metadata``. Reading foreign files never raises for odd values: out of
range numbers are clamped and unknown samplers fall back to our default, with the original text
kept in ``params.extra`` so nothing the user had is silently lost.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from app.core.schedulers import ALIASES as SCHEDULER_ALIASES
from app.core.params import CLASSICAL_MODELS, DEFAULT_SCHEDULER, GenerationParams, ParamError

A1111_KEY = "parameters"
JSON_KEY = "inpaint-studio"
INVOKEAI_KEY = "invokeai_metadata"

# A1111's own pattern (modules/infotext_utils.py): key, then a JSON-quoted value or text up to a comma.
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")

#: A1111 / Forge / InvokeAI sampler names → our scheduler names (DESIGN.md table). Samplers we
#: have no equivalent for map to the nearest one we do have.
SAMPLER_FROM_A1111 = {
    "euler a": "Euler a",
    "euler": "Euler",
    "lms": "LMS",
    "lms karras": "LMS Karras",
    "heun": "Heun",
    "dpm2": "DPM2",
    "dpm2 a": "DPM2 a",
    "dpm2 karras": "DPM2 Karras",
    "dpm2 a karras": "DPM2 a Karras",
    "dpm++ 2m": "DPM++ 2M",
    "dpm++ 2m karras": "DPM++ 2M Karras",
    "dpm++ sde": "DPM++ SDE",
    "dpm++ sde karras": "DPM++ SDE",
    "dpm++ 2s a": "DPM++ SDE",
    "dpm++ 2s a karras": "DPM++ SDE",
    "dpm++ 2m sde": "DPM++ 2M",
    "dpm++ 2m sde karras": "DPM++ 2M Karras",
    "dpm++ 2m sde exponential": "DPM++ 2M",
    "dpm++ 3m sde": "DPM++ 2M",
    "dpm++ 3m sde karras": "DPM++ 2M Karras",
    "ddim": "DDIM",
    "plms": "PNDM",
    "pndm": "PNDM",
    "unipc": "UniPC",
    "lcm": "LCM",
    # InvokeAI scheduler ids
    "k_euler": "Euler",
    "k_euler_a": "Euler a",
    "euler_a": "Euler a",
    "euler_k": "Euler",
    "k_lms": "LMS",
    "klms": "LMS",
    "lms_k": "LMS Karras",
    "k_heun": "Heun",
    "heun_k": "Heun",
    "kdpm_2": "DPM2",
    "kdpm_2_a": "DPM2 a",
    "k_dpm_2": "DPM2",
    "k_dpm_2_a": "DPM2 a",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_k": "DPM++ 2M Karras",
    "k_dpmpp_2": "DPM++ 2M",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_k": "DPM++ SDE",
    "dpmpp_2s": "DPM++ SDE",
    "dpmpp_2s_k": "DPM++ SDE",
    "k_euler_ancestral": "Euler a",
}

#: Our names and aliases → the name A1111 writes, so its UI recognises the sampler. The aliases
#: come from the scheduler table (pure data: importing it loads no torch); only PNDM differs.
SAMPLER_TO_A1111 = {"PNDM": "PLMS", **SCHEDULER_ALIASES}

_MASKED_CONTENT_TO_A1111 = {"fill": "fill", "latent_noise": "latent noise"}
_MASKED_CONTENT_FROM_A1111 = {"original": "original", "fill": "fill", "latent noise": "latent_noise", "latent nothing": "latent_noise"}


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def quote(value: Any) -> str:
    """A1111's quoting: JSON-quote a value that holds a comma, a colon or a newline."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def _model_name(model: str) -> str:
    if model in CLASSICAL_MODELS:
        return model
    name = Path(model).name if (os.sep in model or model.endswith((".safetensors", ".ckpt"))) else model
    for ext in (".safetensors", ".ckpt"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name or model


def format_a1111(params: GenerationParams, width: int, height: int) -> str:
    """A1111 infotext for ``params``; ``width``×``height`` unless params fix the model size."""
    fields: dict[str, Any] = {
        "Steps": params.steps,
        "Sampler": SAMPLER_TO_A1111.get(params.scheduler, params.scheduler),
        "CFG scale": _num(params.guidance),
        "Seed": params.seed,
        "Size": f"{params.width or width}x{params.height or height}",
        "Model": _model_name(params.model),
        "Denoising strength": _num(params.strength),
    }
    if params.is_classical:  # no sampling: seed, steps, sampler, CFG and strength decided nothing
        for key in ("Steps", "Sampler", "CFG scale", "Seed", "Denoising strength"):
            del fields[key]
    if params.mode == "inpaint" or params.is_classical:  # a classical method only inpaints
        fields["Mask blur"] = params.mask_blur
        # Written for both values: A1111 omits "Whole picture", but our default is "Only masked",
        # so an omitted field would read back as the other setting.
        fields["Inpaint area"] = "Only masked" if params.inpaint_area == "masked" else "Whole picture"
        if params.inpaint_area == "masked":
            fields["Masked area padding"] = params.padding
        if params.masked_content in _MASKED_CONTENT_TO_A1111:
            fields["Masked content"] = _MASKED_CONTENT_TO_A1111[params.masked_content]
    line = ", ".join(f"{k}: {quote(v)}" for k, v in fields.items() if v is not None and v != "")
    negative = f"\nNegative prompt: {params.negative_prompt}" if params.negative_prompt else ""
    return f"{params.prompt}{negative}\n{line}".strip()


def _num(value: float) -> str:
    """As A1111 prints its float fields: 7.5 → "7.5", 7 → "7.0"."""
    return str(float(value))


def to_json(params: GenerationParams) -> str:
    return json.dumps(params.to_dict(), ensure_ascii=False, sort_keys=True, default=str)


def png_text_chunks(params: GenerationParams | None, width: int, height: int) -> list[tuple[str, str]]:
    """(key, text) pairs for a PNG: the A1111 infotext and our JSON."""
    if params is None:
        return []
    return [(A1111_KEY, format_a1111(params, width, height)), (JSON_KEY, to_json(params))]


def pnginfo(params: GenerationParams | None, width: int, height: int) -> PngImagePlugin.PngInfo | None:
    """Pillow's PngInfo with our chunks: tEXt when Latin-1, else UTF-8 iTXt (as A1111 writes)."""
    pairs = png_text_chunks(params, width, height)
    if not pairs:
        return None
    info = PngImagePlugin.PngInfo()
    for key, text in pairs:
        try:
            text.encode("latin-1")
            info.add_text(key, text)
        except UnicodeEncodeError:
            info.add_itxt(key, text)
    return info


def exif_with_params(params: GenerationParams | None, width: int, height: int) -> Image.Exif | None:
    """EXIF with the A1111 text in UserComment (how A1111 stores it in JPEG and WebP)."""
    if params is None:
        return None
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + format_a1111(params, width, height).encode("utf-16-be")
    return exif


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def parse_a1111_fields(text: str) -> dict[str, str]:
    """A1111 infotext → {"Prompt", "Negative prompt", key: value…}, like A1111's own parser:
    the last line is the parameter line only if it has at least three ``key: value`` pairs;
    ``WxH`` values are split into ``key-1``/``key-2``; quoted values are unquoted."""
    res: dict[str, str] = {}
    prompt: list[str] = []
    negative: list[str] = []
    *lines, last = text.strip().replace("\r\n", "\n").split("\n")
    if len(_RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    res["Prompt"] = "\n".join(prompt)
    res["Negative prompt"] = "\n".join(negative)
    for key, value in _RE_PARAM.findall(last):
        value = value.strip()
        if value[:1] == '"' and value[-1:] == '"':
            value = unquote(value)
        m = _RE_SIZE.match(value)
        if m:
            res[f"{key}-1"], res[f"{key}-2"] = m.group(1), m.group(2)
        res[key] = value
    return res


def map_sampler(name: str, schedule_type: str | None = None) -> str | None:
    """An A1111/InvokeAI sampler name → ours, or None when there is no sensible equivalent."""
    key = name.strip().lower()
    if schedule_type and schedule_type.strip().lower() == "karras" and not key.endswith("karras"):
        key_karras = key + " karras"
        if key_karras in SAMPLER_FROM_A1111:
            return SAMPLER_FROM_A1111[key_karras]
    return SAMPLER_FROM_A1111.get(key)


def parse_a1111(text: str) -> GenerationParams:
    """A1111 infotext → `GenerationParams`; never raises for odd values (see module doc)."""
    f = parse_a1111_fields(text)
    kw: dict[str, Any] = {"prompt": f["Prompt"], "negative_prompt": f["Negative prompt"]}
    extra: dict[str, Any] = {}
    adjusted: list[str] = []

    def number(key: str, cast, lo, hi, field_name: str) -> None:
        if key not in f:
            return
        try:
            value = cast(float(f[key])) if cast is int else cast(f[key])
        except (TypeError, ValueError):
            adjusted.append(f"{key}: {f[key]!r} ignored")
            return
        if cast is int and value != float(f[key]):
            value = int(round(float(f[key])))
        clamped = min(max(value, lo), hi)
        if clamped != value:
            adjusted.append(f"{key}: {value} → {clamped}")
        kw[field_name] = clamped

    number("Steps", int, 1, 150, "steps")
    number("CFG scale", float, 0.0, 30.0, "guidance")
    number("Denoising strength", float, 0.01, 1.0, "strength")
    number("Mask blur", int, 0, 64, "mask_blur")
    number("Masked area padding", int, 0, 256, "padding")
    if "Seed" in f:
        try:
            seed = int(float(f["Seed"]))
            kw["seed"] = seed % 2**32 if seed >= 0 else -1
        except ValueError:
            adjusted.append(f"Seed: {f['Seed']!r} ignored")
    if "Sampler" in f:
        mapped = map_sampler(f["Sampler"], f.get("Schedule type"))
        kw["scheduler"] = mapped or DEFAULT_SCHEDULER
        if mapped is None:
            adjusted.append(f"Sampler: {f['Sampler']} → {DEFAULT_SCHEDULER}")
    for axis, key in (("width", "Size-1"), ("height", "Size-2")):
        if key in f:
            v = int(f[key])
            if 256 <= v <= 2048 and v % 8 == 0:
                kw[axis] = v
            else:
                extra.setdefault("a1111_size", f.get("Size"))
    if "Model" in f:
        if f["Model"] in CLASSICAL_MODELS:
            kw["model"] = f["Model"]
        else:
            extra["a1111_model"] = f["Model"]  # a name, not a path we can load: kept for the user
    if "Inpaint area" in f:
        kw["inpaint_area"] = "masked" if f["Inpaint area"].lower().startswith("only") else "whole"
    if "Masked content" in f:
        kw["masked_content"] = _MASKED_CONTENT_FROM_A1111.get(f["Masked content"].lower(), "original")
    masked = any(k in f for k in ("Mask blur", "Inpaint area", "Masked content", "Mask mode"))
    kw["mode"] = "inpaint" if masked or "Denoising strength" not in f else "img2img"
    known = {"Prompt", "Negative prompt", "Steps", "CFG scale", "Denoising strength", "Mask blur", "Masked area padding",
             "Seed", "Sampler", "Size", "Size-1", "Size-2", "Model", "Inpaint area", "Masked content"}
    others = {k: v for k, v in f.items() if k not in known}
    if others:
        extra["a1111"] = others
    if adjusted:
        extra["a1111_adjusted"] = adjusted
    kw["extra"] = extra
    try:
        return GenerationParams(**kw).validate()
    except ParamError:  # belt and braces: a field we did not clamp
        return GenerationParams(prompt=kw["prompt"], negative_prompt=kw["negative_prompt"], extra=extra)


def _parse_invokeai(text: str) -> GenerationParams | None:
    data = json.loads(text)
    if not isinstance(data, dict):
        return None
    lines = [str(data.get("positive_prompt", data.get("prompt", "")))]
    if data.get("negative_prompt"):
        lines.append(f"Negative prompt: {data['negative_prompt']}")
    pairs = {
        "Steps": data.get("steps"),
        "Sampler": data.get("scheduler"),
        "CFG scale": data.get("cfg_scale"),
        "Seed": data.get("seed"),
        "Size": f"{data.get('width')}x{data.get('height')}" if data.get("width") else None,
        "Denoising strength": data.get("strength"),
    }
    lines.append(", ".join(f"{k}: {quote(v)}" for k, v in pairs.items() if v is not None) + ", Source: InvokeAI")
    return parse_a1111("\n".join(lines))


def _decode_user_comment(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw or None
    if not isinstance(raw, (bytes, bytearray)) or not raw:
        return None
    head, body = bytes(raw[:8]), bytes(raw[8:])
    if head.startswith(b"UNICODE"):
        for enc in ("utf-16-be", "utf-16-le"):
            try:
                text = body.decode(enc)
            except UnicodeDecodeError:
                continue
            if text and all(ch.isprintable() or ch in "\n\r\t" for ch in text[:64]):
                return text
        return None
    if head.startswith(b"ASCII") or head == b"\x00" * 8:
        return body.decode("latin-1").rstrip("\x00") or None
    return bytes(raw).decode("utf-8", "replace").rstrip("\x00") or None


def read_a1111_text(image: Image.Image) -> str | None:
    """The A1111 infotext of an opened image: PNG chunk or EXIF UserComment; None if absent."""
    text = image.info.get(A1111_KEY)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if text:
        return str(text)
    try:
        comment = image.getexif().get_ifd(0x8769).get(0x9286)
    except Exception:
        return None
    return _decode_user_comment(comment)


def read_params(source: Image.Image | str | os.PathLike[str]) -> GenerationParams | None:
    """Recall generation parameters from an image (opened or a path); None when it has none.
    Our JSON wins; then A1111's text; then InvokeAI's JSON. Never raises for bad metadata."""
    if isinstance(source, Image.Image):
        return _read_from(source)
    try:
        with Image.open(source) as image:
            found = _read_from(image)
            if found is None and image.format == "PNG":
                image.load()  # text chunks after the pixel data are only read on load
                found = _read_from(image)
            return found
    except (OSError, ValueError, SyntaxError):
        return None


def _read_from(image: Image.Image) -> GenerationParams | None:
    ours = image.info.get(JSON_KEY)
    if ours:
        try:
            return GenerationParams.from_dict(json.loads(ours))
        except (ValueError, ParamError, TypeError):
            pass  # damaged or from a newer version we cannot validate: fall back to A1111's text
    text = read_a1111_text(image)
    if text and text.strip():
        return parse_a1111(text)
    invoke = image.info.get(INVOKEAI_KEY)
    if invoke:
        try:
            return _parse_invokeai(invoke)
        except (ValueError, TypeError):
            return None
    return None
