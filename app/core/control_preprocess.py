"""Built-in ControlNet preprocessors: turn an image into the control image a ControlNet reads.

Only what needs no downloaded model runs here (numpy + OpenCV; the core layer). Each module
mirrors the A1111 ControlNet extension's preprocessor of that name, with its option names and
defaults, so a unit made here reads the same to a user of that extension:

=============  ===============================================================================
module         what it does (A1111 name)
=============  ===============================================================================
none           the image as is, normalised to RGB8 (gray, RGBA, 16-bit accepted)
canny          Canny edges, white on black (``canny``; ``low_threshold`` 100, ``high_threshold`` 200)
softedge       soft, anti-aliased edges (an OpenCV stand-in for ``softedge_hed``/``pidinet``: the
               gradient magnitude of the blurred image — a difference of Gaussians' cousin —
               computed at ≤ 4 MP and scaled back, since soft edges carry no fine detail;
               ``sigma`` 2.0 px at that working scale, ``gamma`` 0.7)
scribble       thick binary strokes from a sketch or photo (``scribble_xdog``: difference of
               Gaussians σ 0.5 / 5, ``threshold`` 32)
lineart        dark lines on a light background made white-on-black (``lineart_standard``, the
               extension's model-free line art; ``sigma`` 6.0)
mlsd           straight line segments, white on black, for the M-LSD ControlNet: an OpenCV stand-in
               for ``mlsd`` (the LSD line-segment detector at ≤ 1 MP instead of the M-LSD network;
               segments shorter than ``min_length`` × the image diagonal, default 0.04, are dropped,
               as M-LSD drops its weak short ones)
tile           the image down- and up-sampled (``tile_resample``; ``down_sampling_rate`` 1.0)
blur           Gaussian blur (``blur_gaussian``; ``sigma`` 9.0)
shuffle        the image's content scrambled by a smooth random warp (``shuffle``; ``seed`` 0)
inpaint        the image with the masked pixels black (``inpaint_only``), see below
=============  ===============================================================================

The modules that need a network ("depth", "openpose", "normal", "seg") raise a
`PreprocessorModelMissing` naming the model file the extension uses; none is run by this version.

**The inpaint ControlNet** (``control_v11p_sd15_inpaint``) wants masked pixels at −1 in a float
image, which a uint8 image cannot hold. So ``preprocess("inpaint", image, mask)`` returns the
RGB8 image with masked pixels black (for display; every module's result is H×W×3 uint8), and the
pipeline input is made with `inpaint_condition(control_image, mask)`: float32 H×W×3 in [0, 1],
masked pixels (mask ≥ 128, the engine's binarize rule) exactly −1.0. The generation side must call
`inpaint_condition` with the *request's* mask for every unit whose module is "inpaint" (the editor
sends the document's current pixels as that unit's image).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from app.core.compositing import to_rgb8
from app.core.errors import UserError
from app.core.params import ParamError

#: Model-free modules and their options (name → default).
OPTIONS: dict[str, dict[str, float]] = {
    "none": {},
    "canny": {"low_threshold": 100.0, "high_threshold": 200.0},
    "softedge": {"sigma": 2.0, "gamma": 0.7},
    "scribble": {"threshold": 32.0},
    "lineart": {"sigma": 6.0},
    "mlsd": {"min_length": 0.04},
    "tile": {"down_sampling_rate": 1.0},
    "blur": {"sigma": 9.0},
    "shuffle": {"seed": 0.0},
    "inpaint": {},
}

#: Modules that need a network, with the file the A1111 ControlNet extension loads for them
#: (from the lllyasviel/Annotators repository).
MODEL_FILES: dict[str, str] = {
    "depth": "dpt_hybrid-midas-501f0c75.pt (MiDaS)",
    "openpose": "body_pose_model.pth and hand_pose_model.pth (OpenPose)",
    "normal": "scannet.pt (NormalBae)",
    "seg": "upernet_global_small.pth (UniFormer)",
}

BUILT_IN = tuple(OPTIONS)

#: Soft edges are computed at most at this many pixels (then scaled to the image's size).
SOFTEDGE_WORK_PIXELS = 4_000_000
#: Straight lines are found at most at this many pixels (M-LSD itself works at 512²).
MLSD_WORK_PIXELS = 1_000_000


class PreprocessorModelMissing(UserError):
    """The module needs a network this version does not run; the message says which."""

    title = "Preprocessor needs a model"

    def __init__(self, module: str) -> None:
        self.module = module
        super().__init__(
            f'The "{module}" preprocessor needs a model ({MODEL_FILES[module]}, from the lllyasviel/Annotators '
            "repository), which this version of Inpaint Studio does not run. Make the control image in another "
            'tool and import it into the control layer with the module set to "none", or use a built-in '
            "preprocessor: " + ", ".join(m for m in BUILT_IN if m != "none") + "."
        )


def preprocess(module: str, image: np.ndarray, mask: np.ndarray | None = None, **options: float) -> np.ndarray:
    """The control image of ``image`` (H×W gray, H×W×3 RGB or H×W×4 RGBA, uint8 or uint16) made by
    ``module``: always a new H×W×3 uint8 array of the image's size.

    ``mask`` (H×W, ≥ 128 = masked) is used by "inpaint" only (required there). ``options`` are the
    module's (see `OPTIONS`); an unknown one raises `ParamError`, as does an unknown module or a bad
    image; a module that needs a network raises `PreprocessorModelMissing`.
    """
    settings = check(module, **options)
    rgb = _rgb8(image)
    if module == "inpaint":
        return _inpaint(rgb, _mask(mask, rgb.shape[:2]))
    return _MODULES[module](rgb, **settings)


def check(module: str, **options: float) -> dict[str, float]:
    """The errors `preprocess` would raise for ``module`` and ``options``, without an image (a
    window checks before it hands the work to a thread); returns every option's value."""
    if module in MODEL_FILES:
        raise PreprocessorModelMissing(module)
    if module not in OPTIONS:
        raise ParamError("module", module, "one of " + ", ".join((*BUILT_IN, *MODEL_FILES)))
    return _options(module, options)


def inpaint_condition(control_image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """What the inpaint ControlNet reads: float32 H×W×3, the image in [0, 1] and masked pixels
    (mask ≥ 128) exactly −1.0 (diffusers' ``make_inpaint_condition``)."""
    rgb = _rgb8(control_image)
    out = rgb.astype(np.float32)
    out *= 1.0 / 255.0
    out[_mask(mask, rgb.shape[:2]) >= 128] = -1.0
    return out


# -- checks -----------------------------------------------------------------------------------
def _options(module: str, given: dict[str, Any]) -> dict[str, float]:
    known = OPTIONS[module]
    out = dict(known)
    for key, value in given.items():
        if key not in known:
            allowed = ", ".join(known) if known else "none"
            raise ParamError(f"{module}.{key}", value, f"not an option of {module} (its options: {allowed})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ParamError(f"{module}.{key}", value, "must be a finite number")
        out[key] = float(value)
    _check_ranges(module, out)
    return out


def _check_ranges(module: str, o: dict[str, float]) -> None:
    def need(key: str, lo: float, hi: float) -> None:
        if not lo <= o[key] <= hi:
            raise ParamError(f"{module}.{key}", o[key], f"must be from {lo:g} to {hi:g}")

    if module == "canny":
        need("low_threshold", 0, 1000)
        need("high_threshold", 0, 1000)
    elif module == "softedge":
        need("sigma", 0.1, 64)
        need("gamma", 0.05, 8)
    elif module == "scribble":
        need("threshold", 0, 255)
    elif module in ("lineart", "blur"):
        need("sigma", 0.1, 256)
    elif module == "tile":
        need("down_sampling_rate", 1, 64)
    elif module == "mlsd":
        need("min_length", 0, 1)
    elif module == "shuffle":
        need("seed", 0, 2**32 - 1)


def _rgb8(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    ok_shape = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))
    if not ok_shape or arr.size == 0 or arr.dtype not in (np.uint8, np.uint16):
        raise ParamError("image", f"{arr.shape} {arr.dtype}", "a non-empty gray, RGB or RGBA image of 8 or 16 bit")
    return to_rgb8(arr)


def _mask(mask: Any, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        raise ParamError("mask", None, "the inpaint preprocessor needs the mask (H×W, 255 = repaint)")
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.shape != shape:
        raise ParamError("mask", f"{m.shape}", f"a mask of the image's size {shape}")
    if m.dtype == bool:
        return m.astype(np.uint8) * 255
    if m.dtype != np.uint8:
        raise ParamError("mask", str(m.dtype), "an 8-bit or boolean mask")
    return m


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


# -- the modules ------------------------------------------------------------------------------
def _none(rgb: np.ndarray) -> np.ndarray:
    return rgb.copy()  # `to_rgb8` may hand back the caller's own array


def _canny(rgb: np.ndarray, low_threshold: float, high_threshold: float) -> np.ndarray:
    # On the gray image (one third of the work of the colour Canny; same edges on photographs).
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return _gray_to_rgb(cv2.Canny(gray, low_threshold, high_threshold, L2gradient=False))


def _softedge(rgb: np.ndarray, sigma: float, gamma: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = min(1.0, (SOFTEDGE_WORK_PIXELS / (h * w)) ** 0.5)
    small_size = (max(1, round(w * scale)), max(1, round(h * scale)))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, small_size, interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.magnitude(gx, gy)
    top = float(np.percentile(magnitude[:: max(1, magnitude.shape[0] // 256)], 99.5)) if magnitude.size else 0.0
    if top <= 1e-6:
        edges = np.zeros(magnitude.shape, np.uint8)
    else:
        cv2.multiply(magnitude, 1.0 / top, dst=magnitude)
        np.clip(magnitude, 0.0, 1.0, out=magnitude)
        cv2.pow(magnitude, gamma, dst=magnitude)
        edges = cv2.convertScaleAbs(magnitude, alpha=255.0)
    if edges.shape != (h, w):
        edges = cv2.resize(edges, (w, h), interpolation=cv2.INTER_LINEAR)
    return _gray_to_rgb(edges)


#: Rows per band of the float filters (scribble, lineart): a band's float copies stay in cache.
BAND_ROWS = 128


def _blur_reach(sigma: float) -> int:
    """Rows a float Gaussian blur of ``sigma`` reads on each side (OpenCV's kernel: 8σ + 1, odd)."""
    return (int(round(sigma * 8 + 1)) | 1) // 2


def _in_bands(rgb: np.ndarray, reach: int, band: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``band(rows)`` → H'×W float32 over horizontal bands, each read with ``reach`` rows of context.

    Bit-identical to one call on the whole image (every output row sees the same input rows and
    the same image-edge reflection) while the float temporaries stay a band's size: on 24 MP the
    whole-image float copies are ~300 MB each and the filters become memory-bound.
    """
    h = rgb.shape[0]
    out = np.empty(rgb.shape[:2], np.float32)
    for y0 in range(0, h, BAND_ROWS):
        y1 = min(h, y0 + BAND_ROWS)
        a, b = max(0, y0 - reach), min(h, y1 + reach)
        if a == 0 and b == h:
            out[y0:y1] = band(rgb)[y0:y1]
            continue
        # Context rows beyond the image are OpenCV's default border (reflect 101), made here so a
        # band at the edge sees exactly what the whole-image filter sees.
        top, bottom = reach - (y0 - a), reach - (b - y1)
        part = cv2.copyMakeBorder(rgb[a:b], top, bottom, 0, 0, cv2.BORDER_REFLECT_101) if top or bottom else rgb[a:b]
        out[y0:y1] = band(part)[reach:reach + (y1 - y0)]
    return out


def _min_channel(x: np.ndarray) -> np.ndarray:
    c = cv2.split(x)
    return cv2.min(cv2.min(c[0], c[1]), c[2])


def _scribble(rgb: np.ndarray, threshold: float) -> np.ndarray:
    def band(part: np.ndarray) -> np.ndarray:
        x = part.astype(np.float32)
        return _min_channel(cv2.GaussianBlur(x, (0, 0), 5.0) - cv2.GaussianBlur(x, (0, 0), 0.5))

    dog = (255.0 - _in_bands(rgb, _blur_reach(5.0), band)).clip(0, 255).astype(np.uint8)
    out = np.zeros(rgb.shape[:2], np.uint8)
    out[2 * (255 - dog.astype(np.int32)) > threshold] = 255
    return _gray_to_rgb(out)


def _lineart(rgb: np.ndarray, sigma: float) -> np.ndarray:
    def band(part: np.ndarray) -> np.ndarray:
        x = part.astype(np.float32)
        return _min_channel(cv2.GaussianBlur(x, (0, 0), sigma) - x)

    intensity = _in_bands(rgb, _blur_reach(sigma), band).clip(0, 255)
    strong = intensity[intensity > 8]
    intensity /= max(16.0, float(np.median(strong)) if strong.size else 16.0)
    intensity *= 127
    return _gray_to_rgb(intensity.clip(0, 255).astype(np.uint8))


def _mlsd(rgb: np.ndarray, min_length: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    out = np.zeros((h, w), np.uint8)
    if min(h, w) < 8:  # nothing a line detector can see
        return _gray_to_rgb(out)
    scale = min(1.0, (MLSD_WORK_PIXELS / (h * w)) ** 0.5)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    lines = cv2.createLineSegmentDetector().detect(gray)[0]
    if lines is not None:
        segments = lines.reshape(-1, 4) * np.array([w / gray.shape[1], h / gray.shape[0]] * 2, np.float32)
        length = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
        keep = np.round(segments[length >= min_length * float(np.hypot(w, h))]).astype(np.int32)
        if len(keep):
            # One pixel at M-LSD's 512 px, as thick here as its output is once scaled up.
            cv2.polylines(out, list(keep.reshape(-1, 2, 2)), False, 255, max(1, round(max(h, w) / 512)), cv2.LINE_8)
    return _gray_to_rgb(out)


def _tile(rgb: np.ndarray, down_sampling_rate: float) -> np.ndarray:
    if down_sampling_rate <= 1.0:
        return rgb.copy()
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, round(w / down_sampling_rate)), max(1, round(h / down_sampling_rate))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def _shuffle(rgb: np.ndarray, seed: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(int(seed))
    f = 256

    def noise_disk() -> np.ndarray:
        n = rng.uniform(0, 1, ((h // f) + 2, (w // f) + 2)).astype(np.float32)
        n = cv2.resize(n, (w + 2 * f, h + 2 * f), interpolation=cv2.INTER_CUBIC)[f:f + h, f:f + w]
        n -= n.min()
        return n / max(float(n.max()), 1e-6)

    map_x = noise_disk() * float(w - 1)
    map_y = noise_disk() * float(h - 1)
    return cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _inpaint(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[mask >= 128] = 0
    return out


_MODULES: dict[str, Callable[..., np.ndarray]] = {
    "none": _none,
    "canny": _canny,
    "softedge": _softedge,
    "scribble": _scribble,
    "lineart": _lineart,
    "mlsd": _mlsd,
    "tile": _tile,
    "blur": _blur,
    "shuffle": _shuffle,
}
