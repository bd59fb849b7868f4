"""Applying an image model (upscaler, denoiser, face restorer run on the whole image) to the
document's pixels in their own format: gray, RGB or RGBA, 8 or 16 bits; a same-size model also
within a selection (`apply_in_mask`), outside of which every pixel stays bit-identical.

The model sees float32 RGB in [0, 1] (16-bit data keeps its precision: nothing goes through 8
bits); the result is rounded back to the input's dtype; alpha is not shown to the model but
resized with it (bicubic, the same filter for 8 and 16 bits) or, at scale 1, kept bit-exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from app.core import compositing, maskops
from app.core.errors import EmptyMaskError
from app.inference.engine import CancelFn
from app.inference.restoration import tiling

#: Working-memory budget without an accelerator (bytes): big enough for 512-px tiles at ×1.
CPU_BUDGET = 1 << 30
#: Share of the accelerator's free memory a run may plan for.
GPU_SHARE = 0.5


def default_budget(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free * GPU_SHARE)
    return CPU_BUDGET


def model_function(descriptor, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """h×w×C float32 in [0, 1] → h·s×w·s×C' float32, padding the input (mirrored) to the sides
    the model accepts and cropping the output back."""
    import torch

    req = descriptor.size_requirements
    scale = descriptor.scale

    def run(block: np.ndarray) -> np.ndarray:
        h, w = block.shape[:2]
        ph, pw = _padded(h, req), _padded(w, req)
        if req.square:
            ph = pw = max(ph, pw)
        if (ph, pw) != (h, w):
            mode = cv2.BORDER_REFLECT_101 if ph - h < h and pw - w < w else cv2.BORDER_REPLICATE
            block = cv2.copyMakeBorder(block, 0, ph - h, 0, pw - w, mode)
            block = block.reshape(ph, pw, -1)
        tensor = torch.from_numpy(np.ascontiguousarray(block.transpose(2, 0, 1)))[None].to(device)
        with torch.inference_mode():
            out = descriptor(tensor)
            out = out[0, :, : h * scale, : w * scale].clamp(0, 1).float().cpu().numpy()
        return out.transpose(1, 2, 0)

    return run


def choose_tile(descriptor, height: int, width: int, budget: int, overlap: int = tiling.DEFAULT_OVERLAP) -> int:
    """The tile from the budget, except where spandrel says tiling hurts: a model that tiles
    internally (INTERNAL) always sees the whole image, one that needs global context
    (DISCOURAGED: SCUNet, SwinIR, …) sees it whole when the estimate fits the budget."""
    whole = max(height, width)
    kind = getattr(getattr(descriptor, "tiling", None), "name", "SUPPORTED")
    scale = int(descriptor.scale)
    if kind == "INTERNAL" or (kind == "DISCOURAGED" and tiling.estimate_bytes(whole, scale, 0) <= budget):
        return whole
    multiple = max(descriptor.size_requirements.multiple_of, 1)
    return tiling.tile_for_budget(budget, scale, overlap, multiple)


def _padded(side: int, req) -> int:
    side = max(side, req.minimum)
    multiple = max(req.multiple_of, 1)
    return -(-side // multiple) * multiple


def apply_image_model(
    descriptor,
    pixels: np.ndarray,
    *,
    device: str = "cpu",
    tile: int | None = None,
    overlap: int = tiling.DEFAULT_OVERLAP,
    budget: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: CancelFn | None = None,
) -> np.ndarray:
    """The model applied to ``pixels`` (layout and dtype kept; sides × the model's scale)."""
    compositing.check_pixels(pixels)
    scale = int(descriptor.scale)
    maxv = float(np.iinfo(pixels.dtype).max)
    height, width = pixels.shape[:2]
    colour = pixels if pixels.ndim == 2 else pixels[:, :, : 3 if pixels.shape[2] >= 3 else 1]
    colour = colour.reshape(height, width, -1)
    if tile is None:
        tile = choose_tile(descriptor, height, width, budget or default_budget(device), overlap)
    fn = model_function(descriptor, device)
    gray_model = descriptor.input_channels == 1

    def on_floats(block: np.ndarray) -> np.ndarray:  # one tile's floats at a time, never the image's
        f = block.astype(np.float32) / np.float32(maxv)
        return fn(f if gray_model or f.shape[2] == 3 else np.repeat(f, 3, axis=2))

    def to_dtype(block: np.ndarray) -> np.ndarray:
        return np.rint(block * maxv).astype(pixels.dtype)

    def tiled(image: np.ndarray, done: int, total: int) -> np.ndarray:
        def step(i, n):
            if progress is not None:
                progress(done * n + i, total * n)
        return tiling.run_tiled(on_floats, image, scale=scale, tile=tile, overlap=overlap, out_dtype=pixels.dtype,
                                convert=to_dtype, progress=step, cancelled=cancelled)

    if gray_model:  # each channel on its own
        planes = [tiled(colour[:, :, [c]], c, colour.shape[2]) for c in range(colour.shape[2])]
        out = np.concatenate(planes, axis=2)
    else:
        out = tiled(colour, 0, 1)
        if colour.shape[2] == 1:
            out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[:, :, None]
    if pixels.ndim == 2:
        return out[:, :, 0]
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3]
        if scale != 1:
            alpha = cv2.resize(alpha, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC)
        return np.dstack([out, alpha])
    return out


#: Pixels of real surround the model sees around a selection (what a denoiser needs to see).
CONTEXT = 32


def apply_in_mask(descriptor, pixels: np.ndarray, mask: np.ndarray, *, blur: int = 4, context: int = CONTEXT,
                  **kwargs) -> np.ndarray:
    """A same-size model applied where ``mask`` is painted (255), blended out over ``blur`` px
    with the editor's feather (`maskops.feather`): pixels ``blur`` + 1 px or more from the mask,
    and alpha everywhere, stay bit-identical. The model runs only on the mask's box plus
    ``context``, so the cost follows the selection. ``kwargs`` go to `apply_image_model`."""
    if int(descriptor.scale) != 1:
        raise ValueError("a model that changes the image's size cannot be applied to a selection")
    compositing.check_pixels(pixels)
    height, width = pixels.shape[:2]
    hard = maskops.binarize(maskops.validate_mask(mask, (height, width)))
    box = maskops.bounds(hard)
    if box is None:
        raise EmptyMaskError()
    paint = box.pad(maskops.feather_reach(blur)).clamp(width, height)
    work = paint.pad(context).clamp(width, height)
    restored = apply_image_model(descriptor, pixels[work.slices], **kwargs)
    inner = restored[paint.y - work.y: paint.y - work.y + paint.height, paint.x - work.x: paint.x - work.x + paint.width]
    weights = maskops.feather(hard, blur, paint)
    out = pixels.copy()
    colour = out[paint.slices]
    new = inner
    if colour.ndim == 3 and colour.shape[2] == 4:
        colour, new = colour[:, :, :3], inner[:, :, :3]
    touched = weights > 0
    w = weights if colour.ndim == 2 else weights[:, :, None]
    blended = colour.astype(np.float32) + (new.astype(np.float32) - colour) * w
    colour[touched] = np.clip(np.rint(blended), 0, np.iinfo(pixels.dtype).max).astype(pixels.dtype)[touched]
    return out
