"""The CLI's soft-inpainting and reference-image options (``--soft``, ``--reference``, ``--ip-adapter``).

``--soft`` alone turns soft inpainting on with A1111's defaults; ``--soft schedule_bias=1.5,
difference_threshold=1`` sets any of its fields (`app.core.guides.SoftInpainting`). With it the
mask's grey levels are kept (not thresholded at half). ``--reference IMG[:WEIGHT]`` guides by an
image through the IP-Adapter ``--ip-adapter`` names (a file, or a name in the models folders;
default ``ip-adapter_sd15``, the ControlNet extension's file name).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from app.cli.errors import CliError
from app.core.guides import Reference, SoftInpainting, from_json

if TYPE_CHECKING:
    import numpy as np

DEFAULT_ADAPTER = "ip-adapter_sd15"


def add_guide_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("soft inpainting and reference image")
    g.add_argument("--soft", nargs="?", const="", metavar="FIELD=V,…",
                   help="soft inpainting: the mask's grey levels decide how much each pixel changes (A1111's); "
                        "optionally schedule_bias, preservation_strength, transition_contrast_boost, "
                        "mask_influence, difference_threshold, difference_contrast, e.g. --soft preservation_strength=1")
    g.add_argument("--reference", metavar="IMG[:WEIGHT]",
                   help=f"a reference image (IP-Adapter) and its weight 0–2 (default {Reference().weight:g})")
    g.add_argument("--ip-adapter", metavar="FILE",
                   help=f"the IP-Adapter weights for --reference: a path or a name in the models folder's ipadapter/ "
                        f"or ControlNet/ (default: {DEFAULT_ADAPTER})")


def guide_params(ns: argparse.Namespace) -> dict[str, Any]:
    """The `GenerationParams` fields the options set (``soft_inpainting``, ``reference``)."""
    out: dict[str, Any] = {}
    if getattr(ns, "soft", None) is not None:
        fields: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in ns.soft.split(","))):
            name, sep, value = item.partition("=")
            try:
                fields[name.strip().replace("-", "_")] = float(value)
            except ValueError:
                raise CliError(f"--soft {item!r}: write FIELD=NUMBER, e.g. preservation_strength=1") from None
            if not sep:
                raise CliError(f"--soft {item!r}: write FIELD=NUMBER, e.g. preservation_strength=1")
        out["soft_inpainting"] = from_json("soft_inpainting", fields) if fields else SoftInpainting()
    if getattr(ns, "reference", None):
        _, weight = split_reference(ns.reference)
        out["reference"] = Reference(ns.ip_adapter or DEFAULT_ADAPTER, weight)
    elif getattr(ns, "ip_adapter", None):
        raise CliError("--ip-adapter needs --reference IMG")
    return out


def split_reference(text: str) -> tuple[str, float]:
    """``IMG[:WEIGHT]`` → (path, weight); a drive letter's colon is part of the path."""
    path, sep, tail = text.rpartition(":")
    if sep and path and not tail.startswith(("\\", "/")):
        try:
            return path, float(tail)
        except ValueError:
            pass
    return text, Reference().weight


def reference_image(ns: argparse.Namespace) -> np.ndarray | None:
    """The ``--reference`` image as RGB8 (any size), or None."""
    if not getattr(ns, "reference", None):
        return None
    from app.core.compositing import to_rgb8
    from app.core.imageio import load_image

    return to_rgb8(load_image(split_reference(ns.reference)[0], read_metadata=False).pixels)
