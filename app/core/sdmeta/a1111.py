"""AUTOMATIC1111 infotext, also written by Forge, SD.Next, Civitai, Fooocus (A1111 scheme) and
Stability Matrix: PNG ``parameters`` chunk or EXIF UserComment.

Parsed with A1111's own rules (modules/infotext_utils.py ``parse_generation_parameters``): the
last line holds the parameters only if it has at least three ``key: value`` pairs, values may
be JSON-quoted, ``WxH`` values also give ``key-1``/``key-2``. Text without such a line (an EXIF
comment "Screenshot") is not generation parameters, and JSON is left to the JSON readers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.core.sdmeta.fields import canonical_keys
from app.core.sdmeta.found import Found

#: A1111's pattern (``\s*(\w[\w \-/]+):…``) tried at every position of a long line without a
#: colon is quadratic: 100 KB of "a a a …" took 72 s. The same matches with a key of at most
#: `MAX_KEY` characters (A1111's longest are ~30) and no leading ``\s*`` (findall skips the
#: blanks anyway) is linear.
MAX_KEY = 80
_RE_PARAM = re.compile(r'(\w[\w \-/]{1,%d}):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)' % (MAX_KEY - 1))
_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_SOURCES = ("parameters", "UserComment", "Parameters", "ImageDescription", "stealth")
#: Keys any generation line has; three generic "a: b" pairs alone do not make infotext.
_CORE = {"Steps", "Sampler", "Seed", "CFG scale"}


def unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def parse_fields(text: str) -> dict[str, str]:
    """A1111 infotext → {"Prompt", "Negative prompt", key: value…} by A1111's rules."""
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


def read(texts: dict[str, str]) -> Found | None:
    for source in _SOURCES:
        text = texts.get(source)
        if not text or text.lstrip()[:1] in "{[":
            continue
        fields = canonical_keys(parse_fields(text))
        if len(_CORE & set(fields)) >= 2:
            return Found(_flavour(fields, texts), fields)
    return None


def _flavour(fields: dict[str, Any], texts: dict[str, str]) -> str:
    """Which A1111-compatible tool wrote it, from the fields it adds."""
    version = str(fields.get("Version", ""))
    if "Civitai resources" in fields or "Civitai metadata" in fields:
        return "Civitai"
    if str(fields.get("App", "")).lower().startswith("sd.next"):
        return "SD.Next"
    if version.startswith("f") and version[1:2].isdigit() or "forge" in version.lower():
        return "Forge"
    if "fooocus" in version.lower():
        return "Fooocus"
    if "smproj" in texts or "parameters-json" in texts:
        return "Stability Matrix"
    return "AUTOMATIC1111"
