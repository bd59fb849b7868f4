"""Read generation parameters from any SD tool's image files, recognised by content.

``read_metadata(path_or_image)`` → `MetadataReport`: the format found, every field read, the
`GenerationParams` to recall (or None), notes on what was approximated, problems that stop a
recall. ``recall(path_or_image)`` → `RecallResult` is what the window calls: params plus the
set of params fields the file actually holds (so a recall changes only those), or None and a
one-line reason — a recall never damages the form. The CLI's ``info`` command uses the same.

Text hidden in the pixels' low bits ("stealth" PNG info of A1111's extension and NovelAI) is
read when the chunks hold nothing. Readers, tried in this order: ours (lossless JSON), A1111-style text (A1111, Forge, SD.Next,
Civitai, Fooocus' A1111 scheme, Stability Matrix), SwarmUI, Fooocus, Easy Diffusion, Fooocus' log keys,
Civitai's generator JSON, ComfyUI (PNG chunks or EXIF tags),
NovelAI, InvokeAI, diffusers JSON from Hugging Face Spaces.
"""

from __future__ import annotations

import dataclasses
import io
import os
from dataclasses import dataclass
from typing import Any

from PIL import Image

from app.core import boundedjson
from app.core.decode_budget import ImageLoadError, check_image, read_image_file
from app.core.params import GenerationParams, ParamError
from app.core.sdmeta import a1111, civitai_json, comfyui, fooocus_log, invokeai, keyed_json, novelai
from app.core.sdmeta.fields import build_params
from app.core.sdmeta.found import Found, SamplerChoice
from app.core.sdmeta.sources import collect_texts, png_texts
from app.core.sdmeta.stealth import read_stealth

__all__ = ["MetadataReport", "RecallResult", "SamplerChoice", "read_metadata", "read_texts", "recall", "OURS_KEY"]

OURS_KEY = "inpaint-studio"
#: `info`/recall search the pixels of larger images for stealth text only when opened in full
#: (the window's load has decoded them anyway); a path alone is not decoded past this.
STEALTH_MAX_PIXELS = 64 * 1024 * 1024
_ALL_FIELDS = frozenset(f for f in GenerationParams.__dataclass_fields__ if f != "extra")


@dataclass(frozen=True)
class MetadataReport:
    format: str  # "AUTOMATIC1111", "ComfyUI", … or "none"
    params: GenerationParams | None
    fields: dict[str, Any]  # every parameter read, under A1111's names
    raw: dict[str, str]  # the metadata texts found, by chunk / tag name
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    choices: tuple[SamplerChoice, ...] = ()
    #: The GenerationParams fields the file actually set.
    fields_set: frozenset[str] = frozenset()

    @property
    def model_name(self) -> str | None:
        return _text(self.fields.get("Model"))

    @property
    def model_hash(self) -> str | None:
        return _text(self.fields.get("Model hash"))


@dataclass(frozen=True)
class RecallResult:
    """What "recall parameters" applies: ``params`` (None = change nothing) and one line for the
    status bar; ``fields_set`` = the params fields to apply; ``choices`` = ComfyUI samplers to
    pick from (call `recall` again with ``choice=node_id``)."""

    params: GenerationParams | None
    message: str
    fields_set: frozenset[str] = frozenset()
    choices: tuple[SamplerChoice, ...] = ()


def read_metadata(source: Image.Image | str | os.PathLike[str], choice: str | None = None) -> MetadataReport:
    """The report for an image (opened or a path). Never raises: an unreadable file is a report
    with format "none" and the reason as its problem."""
    if isinstance(source, Image.Image):
        return _report(source, choice)
    try:
        data = read_image_file(source)
    except ImageLoadError as exc:
        return MetadataReport("none", None, {}, {}, problems=(f"cannot read {os.fspath(source)}: {exc}",))
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _report_within_budget(image, data, os.path.basename(os.fspath(source)), choice)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        return MetadataReport("none", None, {}, {}, problems=(f"cannot read {os.fspath(source)}: {exc}",))


def _report_within_budget(image: Image.Image, data: bytes, name: str, choice: str | None) -> MetadataReport:
    """The report of a file. A PNG's text chunks are read from its bytes (all of them, without
    decoding pixels); pixels are decoded only for the stealth text, and only within the decode
    budget and `STEALTH_MAX_PIXELS` — past those a note says the pixels were not looked at."""
    if image.format == "PNG":
        texts, exif = png_texts(data)
        for key, text in texts.items():
            image.info.setdefault(key, text)
        image.info.setdefault("exif", exif)  # present (even empty): Pillow's getexif() then decodes nothing
    refused = False
    try:
        header = check_image(image, data, name)
    except ImageLoadError as exc:
        reason, refused = str(exc).split(";")[0], True
    else:
        if header.width * header.height <= STEALTH_MAX_PIXELS:
            try:
                return _report(image, choice)
            except ValueError as exc:  # Pillow refusing a chunk while decoding: the header's report below
                reason = str(exc)
        else:
            reason = f"{header.width}×{header.height} is too large to search for text hidden in the pixels"
    report = _report(image, choice, pixels=False)
    if not refused and (report.params is not None or image.format not in ("PNG", "WEBP")):
        return report  # nothing was missed: the stealth text is only looked for when the chunks hold none
    return dataclasses.replace(report, notes=(*report.notes, f"pixels not read: {reason}"))


def recall(source: Image.Image | str | os.PathLike[str], choice: str | None = None) -> RecallResult:
    report = read_metadata(source, choice)
    if report.params is None:
        message = report.problems[0] if report.problems else "no generation parameters in this image"
        return RecallResult(None, message, choices=report.choices)
    summary = f"recalled {len(report.fields_set)} settings from {report.format} metadata"
    return RecallResult(report.params, "; ".join((summary, *report.notes)), report.fields_set, report.choices)


def _report(image: Image.Image, choice: str | None, pixels: bool = True) -> MetadataReport:
    texts = collect_texts(image)
    if pixels and image.format in ("PNG", "WEBP", None) and _recognise(texts, choice) is None:
        hidden = read_stealth(image)  # lossless: the pixels may hide it
        if hidden:
            texts["stealth"] = hidden
    return read_texts(texts, choice)


def read_texts(texts: dict[str, str], choice: str | None = None) -> MetadataReport:
    """The report for metadata texts already taken from a file ({chunk or tag name: text}), e.g.
    by a server that got them in a request. Linear in the texts' size and never raises."""
    found = _recognise(texts, choice)
    if found is None:
        return MetadataReport("none", None, {}, texts, problems=(_why_nothing(texts),))
    if found.params is not None:
        return MetadataReport(found.format, found.params, found.fields, texts, tuple(found.notes), (),
                              tuple(found.choices), frozenset(found.params.deciding_fields))
    if found.problems:
        return MetadataReport(found.format, None, found.fields, texts, tuple(found.notes), tuple(found.problems),
                              tuple(found.choices))
    params, fields_set, notes = build_params(found.fields)
    if not fields_set:
        return MetadataReport(found.format, None, found.fields, texts, tuple(found.notes + notes),
                              (f"{found.format} metadata without usable parameters",))
    params = params.replace(extra={**params.extra, "source_format": found.format})
    return MetadataReport(found.format, params, found.fields, texts, tuple(found.notes + notes), (),
                          tuple(found.choices), fields_set)


def _recognise(texts: dict[str, str], choice: str | None) -> Found | None:
    ours = _ours(texts)
    if ours:
        return ours
    readers = (a1111.read, *keyed_json.READERS, fooocus_log.read, civitai_json.read, lambda t: comfyui.read(t, choice),
               novelai.read, invokeai.read)
    for reader in readers:
        found = reader(texts)
        if found is not None:
            return found
    return None


def _ours(texts: dict[str, str]) -> Found | None:
    text = texts.get(OURS_KEY)
    if not text:
        return None
    try:
        params = GenerationParams.from_dict(boundedjson.loads(text))
    except (ValueError, ParamError, TypeError):
        return None  # damaged or from a newer version: the A1111 text beside it is read instead
    fields = {k: v for k, v in params.to_dict().items() if k in params.deciding_fields}
    return Found("Inpaint Studio", {**fields, "Model": params.model}, params=params)


def _why_nothing(texts: dict[str, str]) -> str:
    if not texts:
        return "no generation parameters in this image (it has no metadata text)"
    for key in ("parameters", "UserComment", "prompt", "Comment"):
        if key in texts:
            text = " ".join(texts[key].split())
            shown = text if len(text) <= 40 else text[:39] + "…"
            return f"{key} holds {shown!r}, which is not generation parameters of a known tool"
    return "no generation parameters in this image (metadata: " + ", ".join(sorted(texts)) + ")"


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
