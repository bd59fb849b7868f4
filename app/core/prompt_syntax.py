"""AUTOMATIC1111's prompt syntax, parsed without torch so the UI, CLI and metadata can use it too.

- emphasis: ``(word)`` ×1.1, ``((word))`` ×1.21, ``[word]`` ÷1.1, ``(word:1.3)`` ×1.3; ``\\(`` etc.
  are literal brackets; an unclosed bracket applies to the rest of the prompt (as in A1111);
- ``BREAK`` (capitals, a word on its own) ends the current 75-token chunk;
- extra networks: ``<lora:name:weight>`` tags are taken out of the text CLIP sees.

The weights are applied to the text encoder's output by `app.inference.diffusers.prompts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
#: Marks a BREAK in `parse_prompt_attention`'s output (A1111 uses the same weight -1).
BREAK_WEIGHT = -1.0

_TOKENS = re.compile(
    r"""
    \\[()\[\]\\]        # an escaped bracket or backslash: literal
    | \\                # a lone backslash: literal
    | \(  | \[          # openers
    | :\s*([+-]?[.\d]+)\s*\)   # ":1.3)" closes a round bracket with an explicit weight
    | \)  | \]          # closers
    | [^\\()\[\]:]+     # plain text
    | :                 # a colon that is not a weight
    """,
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """``text`` as (fragment, weight) pairs; neighbours of equal weight are merged and a BREAK
    is the pair ("BREAK", `BREAK_WEIGHT`). ``"a (red:1.5) car"`` → [("a ", 1.0), ("red", 1.5),
    (" car", 1.0)]. Never raises: unmatched brackets are applied up to the end."""
    parts: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for part in parts[start:]:
            part[1] *= factor

    for match in _TOKENS.finditer(text):
        piece, weight = match.group(0), match.group(1)
        if piece.startswith("\\"):
            parts.append([piece[1:], 1.0])  # a lone backslash vanishes, as in A1111
        elif piece == "(":
            round_open.append(len(parts))
        elif piece == "[":
            square_open.append(len(parts))
        elif weight is not None and round_open:
            scale_from(round_open.pop(), _to_float(weight))
        elif piece == ")" and round_open:
            scale_from(round_open.pop(), ROUND_MULTIPLIER)
        elif piece == "]" and square_open:
            scale_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            for i, chunk in enumerate(_BREAK.split(piece)):
                if i:
                    parts.append(["BREAK", BREAK_WEIGHT])
                parts.append([chunk, 1.0])
    for start in round_open:
        scale_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        scale_from(start, SQUARE_MULTIPLIER)
    merged: list[list] = []
    for part in parts or [["", 1.0]]:
        if merged and merged[-1][1] == part[1]:
            merged[-1][0] += part[0]
        else:
            merged.append(part)
    return [(t, w) for t, w in merged]


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "1.2.3": A1111 would fail; treat as no explicit weight
        return ROUND_MULTIPLIER


def is_plain(text: str) -> bool:
    """True when ``text`` has no emphasis and no BREAK: CLIP can take it as is."""
    return parse_prompt_attention(text) == [(text, 1.0)]


@dataclass(frozen=True)
class LoraTag:
    name: str
    weight: float


def extract_loras(text: str) -> tuple[str, list[LoraTag]]:
    """(text without ``<lora:…>`` tags, the tags in order). ``<lora:name>`` has weight 1;
    ``<lora:name:te:unet>`` (A1111's separate text-encoder weight) uses the first weight.
    A tag with an unreadable weight raises ValueError naming it. Other extra networks
    (``<hypernet:…>``) are left in the text."""
    tags: list[LoraTag] = []

    def take(match: re.Match) -> str:
        if match.group(1) != "lora":
            return match.group(0)
        name, *weights = match.group(2).split(":")
        try:
            weight = float(weights[0]) if weights and weights[0].strip() else 1.0
        except ValueError:
            raise ValueError(f"{match.group(0)}: the LoRA weight must be a number, e.g. <lora:{name}:0.8>") from None
        tags.append(LoraTag(name.strip(), weight))
        return ""

    return _EXTRA_NETWORK.sub(take, text), tags


def lora_tag(name: str, weight: float) -> str:
    """The tag a LoRA picker inserts: ``<lora:name:0.7>``."""
    return f"<lora:{name}:{weight:g}>"
