"""The service's ControlNet rules, the same for every front end: one control image per unit, the
document's size, a backend that can run them, models that resolve before anything loads; and
the one seam where a unit's preprocessor makes its control image from the given one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from app.core.params import GenerationParams, ParamError
from app.inference import remote

if TYPE_CHECKING:
    from app.inference.registry import Capabilities
    from app.service.generation import GenerationRequest


def check_controls(request: GenerationRequest, params: GenerationParams, caps: Capabilities) -> None:
    """`ParamError` naming what is wrong; torch-free (model files are resolved from headers)."""
    units, images = params.controls, request.control_images
    if not units and not images:
        return
    if len(units) > caps.controls:
        raise ParamError("controls", f"{len(units)} units",
                         f"{params.model} cannot use ControlNet: controls need a diffusion model" if not caps.controls
                         else f"at most {caps.controls} ControlNet units with {params.model}")
    if len(images) != len(units):
        raise ParamError("control_images", f"{len(images)} images", f"one control image per control unit ({len(units)})")
    height, width = request.image.shape[:2]
    for i, image in enumerate(images):
        shape = getattr(image, "shape", None)
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or shape != (height, width, 3):
            raise ParamError(f"control_images[{i}]", shape, f"an RGB uint8 image of the document's size {width}×{height}")
    if params.masked_content == "latent_nothing" and params.mode == "inpaint" and any(u.weight > 0 for u in units):
        raise ParamError("masked_content", params.masked_content,
                         "original, fill or latent_noise with ControlNet (its pipeline takes no latent-nothing input)")
    if not remote.is_remote(params.model):  # a remote server resolves its own models
        from app.inference.diffusers.controlnet import preflight
        from app.inference.errors import ModelLoadError

        for i, unit in enumerate(units):
            try:
                preflight(unit.model, request.options.allow_pickle)
            except ModelLoadError as exc:
                raise ParamError(f"controls[{i}].model", unit.model, exc.message) from None


#: Modules whose input image is what the ControlNet reads ("inpaint": the picture, which the
#: backend turns into the −1-marked condition with the region's mask).
AS_GIVEN = ("none", "inpaint")


def control_images(request: GenerationRequest, params: GenerationParams) -> tuple[np.ndarray, ...]:
    """Each unit's control image: the request's own when they are finished maps
    (``request.control_maps``: the editor's layers) or the module needs none (`AS_GIVEN`), else
    made from the given image by the unit's preprocessor (`preprocess`: the CLI's and the APIs'
    inputs, as A1111's ControlNet extension does)."""
    if request.control_maps:
        return tuple(request.control_images)
    return tuple(image if unit.module in AS_GIVEN else preprocess(unit.module, image)
                 for unit, image in zip(params.controls, request.control_images))


def preprocess(module: str, image: np.ndarray) -> np.ndarray:
    """The one seam to the preprocessors (`app.core.control_preprocess`, imported only when a
    unit needs one)."""
    from app.core.control_preprocess import preprocess as run

    return run(module, image)
