"""Running ControlNets: the diffusers ControlNet pipelines made from the loaded one with
``from_pipe`` (every SD weight shared, nothing reloaded), the ControlNet models loaded once per
backend, and the public arguments that feed them.

A unit of weight 0 is left out before anything is built, so a run whose units all weigh 0 is the
plain pipeline's run: the same pixels bit for bit. Several units run as one
`MultiControlNetModel` with per-unit ``controlnet_conditioning_scale`` and
``control_guidance_start/end``. Control images arrive already cropped and resized like the
region's image (`app.inference.engine`), so the pipeline sees them at the work size.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PIL import Image

from app.core.guides import ControlUnit
from app.inference.diffusers import controlnet as files

#: ControlNet pipelines kept per backend (one per pipeline kind and model set); each is a few
#: Python objects over shared weights.
MAX_PIPES = 4


def memo_hint(net):
    """``net`` whose hint encoder (``controlnet_cond_embedding``: a stack of convolutions over the
    full-resolution control image) runs once per run instead of once per step: the pipelines
    pass the same control tensor every step, so its embedding is the same every step. Keyed on
    the tensor itself (and its version, so an in-place change recomputes); the same values bit
    for bit, one work-size computation instead of one per step."""
    embed = net.controlnet_cond_embedding
    compute = embed.forward
    last: dict = {}

    def forward(cond):
        if last.get("input") is not cond or last.get("version") != cond._version:
            last.clear()  # the old run's tensors go first
            last.update(input=cond, version=cond._version, output=compute(cond))
        return last["output"]

    embed.forward = forward
    return net


class ControlNets:
    """The ControlNet side of one `DiffusionBackend`: loaded models (by path) and pipelines."""

    def __init__(self, device, allow_pickle: bool = False):
        self.device = device
        self.allow_pickle = allow_pickle
        self._models: dict[str, object] = {}
        self._pipes: OrderedDict[tuple, object] = OrderedDict()

    @staticmethod
    def active(request) -> list[tuple[ControlUnit, np.ndarray]]:
        """The units that change the pixels (weight > 0), each with its work-size image."""
        units = request.params.controls
        images = getattr(request, "control_images", ())
        if len(images) != len(units):
            raise ValueError(f"{len(units)} control units but {len(images)} control images")
        return [(u, _condition(u, img, request.mask)) for u, img in zip(units, images) if u.weight > 0]

    def model(self, ref: str):
        """The loaded `ControlNetModel` for ``ref`` (loaded once, on this backend's device)."""
        info = files.preflight(ref, self.allow_pickle)
        key = str(info.path.resolve())
        if key not in self._models:
            net = files.load_controlnet(info, self.device.dtype, self.allow_pickle).to(self.device.device).eval()
            self._models[key] = memo_hint(net)
        return self._models[key]

    def pipeline(self, base, units: list[tuple[ControlUnit, np.ndarray]]):
        """The ControlNet pipeline over ``base`` (the inpaint or img2img pipeline the mode runs
        on) for ``units``; ``base`` itself when there are none."""
        if not units:
            return base
        from diffusers import (MultiControlNetModel, StableDiffusionControlNetImg2ImgPipeline,
                               StableDiffusionControlNetInpaintPipeline, StableDiffusionImg2ImgPipeline)

        models = [self.model(unit.model) for unit, _ in units]
        cls = (StableDiffusionControlNetImg2ImgPipeline if isinstance(base, StableDiffusionImg2ImgPipeline)
               else StableDiffusionControlNetInpaintPipeline)
        key = (cls.__name__, id(base), tuple(id(m) for m in models))
        if key not in self._pipes:
            net = models[0] if len(models) == 1 else MultiControlNetModel(models)
            pipe = cls.from_pipe(base, controlnet=net, dtype=self.device.dtype)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[key] = pipe
            while len(self._pipes) > MAX_PIPES:
                self._pipes.popitem(last=False)
        self._pipes.move_to_end(key)
        pipe = self._pipes[key]
        if pipe.safety_checker is not base.safety_checker:  # turned on after this pipeline was made
            pipe.register_modules(safety_checker=base.safety_checker, feature_extractor=base.feature_extractor)
        return pipe

    @staticmethod
    def call_kwargs(units: list[tuple[ControlUnit, np.ndarray]]) -> dict:
        """The pipeline's public ControlNet arguments for ``units`` (none when there are none)."""
        if not units:
            return {}
        images = [_pipeline_image(img) for _, img in units]
        one = len(units) == 1
        return dict(control_image=images[0] if one else images,
                    controlnet_conditioning_scale=units[0][0].weight if one else [u.weight for u, _ in units],
                    control_guidance_start=[u.start for u, _ in units], control_guidance_end=[u.end for u, _ in units])

    @staticmethod
    def model_labels(params) -> dict[str, dict[str, str]]:
        """{``CONTROLNET_MODELS``: {model ref: "name [hash]"}}: how A1111's infotext names the
        units' models (`app.core.metadata.controlnet_fields`); a model not found here is left
        out (the run itself reports it) and is written by its own name."""
        from app.core.metadata import CONTROLNET_MODELS

        labels = {}
        for unit in params.controls:
            try:
                info = files.resolve(unit.model)
            except Exception:  # noqa: BLE001
                continue
            labels[unit.model] = f"{info.name} [{files.short_hash(info)}]"
        return {CONTROLNET_MODELS: labels} if labels else {}


def _condition(unit: ControlUnit, image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """What the unit's ControlNet reads: the image, or for the inpaint ControlNet the picture
    with the masked pixels at −1 (float; `app.core.control_preprocess.inpaint_condition`)."""
    if unit.module != "inpaint" or mask is None:
        return image
    from app.core.control_preprocess import inpaint_condition

    return inpaint_condition(image, mask)


def _pipeline_image(image: np.ndarray):
    """A uint8 map as a PIL image; a float condition (values below 0) as a 1×3×H×W tensor, which
    the ControlNet pipelines take as it is."""
    if image.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(image))
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
