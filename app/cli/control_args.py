"""The CLI's ControlNet options: ``--control TYPE:IMAGE[:weight[:start:end]]`` (repeatable) and
``--control-model REF`` (one per unit, in order).

TYPE is the unit's preprocessor (`app.core.guides.CONTROL_MODULES`; "none" uses IMAGE as it is).
Without ``--control-model`` a unit gets the first ControlNet installed whose name says it reads
TYPE (``control_v11p_sd15_canny`` for canny); none found is a usage error naming the folders.
IMAGE of another size than the input is fitted as A1111 does by default ("Crop and Resize").
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.cli.errors import CliError
from app.core.guides import CONTROL_MODULES, MAX_CONTROLS, ControlUnit
from app.core.params import GenerationParams, ParamError

if TYPE_CHECKING:
    import numpy as np


def add_control_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ControlNet")
    g.add_argument("--control", action="append", metavar="TYPE:IMAGE[:W[:START:END]]",
                   help=f"guide the shape with a control image (up to {MAX_CONTROLS}, repeatable): TYPE is its "
                        f"preprocessor ({', '.join(CONTROL_MODULES)}; none = IMAGE as it is), W the weight 0–2 "
                        "(default 1), START:END the part of the steps it acts on, 0–1 (default 0:1)")
    g.add_argument("--control-model", action="append", metavar="REF",
                   help="the ControlNet of the matching --control (in order): a path, a name in the models "
                        "folder's ControlNet/ (or A1111's models/ControlNet) or a Hugging Face id in the cache "
                        "(default: the first installed whose name holds TYPE)")


def parse_spec(spec: str) -> tuple[str, str, list[float]]:
    """``TYPE:IMAGE[:W[:START:END]]`` → (type, image path, numbers); the path may hold ":"."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise CliError(f"--control {spec!r}: write TYPE:IMAGE[:WEIGHT[:START:END]], e.g. canny:edges.png:0.8")
    parts = rest.split(":")
    numbers: list[float] = []
    for count in (3, 1):
        if len(parts) > count:
            try:
                numbers = [float(x) for x in parts[-count:]]
            except ValueError:
                continue
            parts = parts[:-count]
            break
    return kind.strip().lower(), ":".join(parts), numbers


def with_controls(ns: argparse.Namespace, params: GenerationParams,
                  pixels: np.ndarray) -> tuple[GenerationParams, tuple[np.ndarray, ...]]:
    """``params`` with the --control units, and their control images at the size of ``pixels``."""
    specs: list[str] = getattr(ns, "control", None) or []
    models: list[str] = getattr(ns, "control_model", None) or []
    if len(models) > len(specs):
        raise CliError(f"--control-model given {len(models)} times for {len(specs)} --control units")
    if len(specs) > MAX_CONTROLS:
        raise CliError(f"--control: at most {MAX_CONTROLS} units")
    if not specs:
        return params, ()
    from app.core.control_fit import fit
    from app.core.imageio import ImageLoadError, load_image

    units, images = [], []
    height, width = pixels.shape[:2]
    for i, spec in enumerate(specs):
        kind, path, numbers = parse_spec(spec)
        model = models[i] if i < len(models) else _model_for(kind, spec)
        weight, start, end = numbers if len(numbers) == 3 else (numbers or [1.0]) + [0.0, 1.0]
        unit = ControlUnit(kind, model, weight, start, end)
        try:
            unit.check("--control")
        except ParamError as exc:
            raise CliError(f"--control {spec!r}: {exc.field.split('.')[-1]} {exc.value!r} is not valid: {exc.allowed}") from None
        try:
            loaded = load_image(path, read_metadata=False)
        except ImageLoadError as exc:
            raise CliError(f"--control {spec!r}: {exc}") from None
        units.append(unit)
        images.append(fit(loaded.pixels, (width, height)))
    return params.replace(controls=tuple(units)), tuple(images)


def _model_for(kind: str, spec: str) -> str:
    from app.service import ModelLoadError, controlnet

    if kind == "none":
        raise CliError(f"--control {spec!r}: TYPE none says nothing about which ControlNet reads the image: "
                       "give --control-model")
    try:
        return controlnet.find_for_module(kind).ref
    except ModelLoadError as exc:
        raise CliError(f"--control {spec!r}: {exc} (or give --control-model)") from None

