"""Reading a restoration model file and letting spandrel detect what it is.

The pickle rule: `.safetensors`, or `.pth`/`.pt` read by ``torch.load(weights_only=True)``,
whose unpickler builds only tensors and plain containers. A file that needs anything more (a
full pickle, a TorchScript archive) is refused: spandrel's own loader would run TorchScript,
so we read the file ourselves and hand spandrel only the state dict.
"""

from __future__ import annotations

import pickle
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from app.inference.errors import ModelLoadError, PickleRefusedError, UnsupportedModelError
from app.inference.restoration import files
from app.inference.restoration.spandrel_import import EXTRA_PACKAGE, extra_arches_installed, spandrel

#: spandrel's purpose → ours (an "SR" model of scale 1 restores rather than upscales).
PURPOSES = {"SR": files.UPSCALE, "FaceSR": files.FACE, "Inpainting": files.INPAINT, "Restoration": files.RESTORE}
#: Architectures whose purpose spandrel names too broadly ("Restoration").
ARCHITECTURE_PURPOSES = {"DDColor": files.COLORIZE}
#: Architectures only spandrel-extra-arches brings: a tensor name each of their files has (to
#: say which package a file needs) and the licence of its code, which the user weighs.
EXTRA_ARCHITECTURES = {
    "DDColor": ("refine_net.0.0.weight_orig", "academic, non-commercial use (the weights' card says Apache-2.0)"),
    "MAT": ("synthesis.first_stage.conv_first.conv.resample_filter", "CC BY-NC 4.0, non-commercial"),
    "CodeFormer": ("ft_layers.0.self_attn.in_proj_weight", "S-Lab License 1.0, non-commercial"),
}


@dataclass(frozen=True)
class ModelSummary:
    """What a file holds, as spandrel detects it from the tensors' names and shapes."""

    path: Path
    architecture: str  # spandrel's id: "ESRGAN", "Compact", "LaMa", "GFPGAN", "DnCNN", …
    purpose: str  # files.UPSCALE / FACE / INPAINT / RESTORE / COLORIZE
    scale: int
    input_channels: int
    output_channels: int
    size_multiple: int  # the model's input sides must be multiples of this
    size_minimum: int
    tiling: str  # spandrel's ModelTiling name: SUPPORTED, DISCOURAGED or INTERNAL


def read_state_dict(path: Path, device: str = "cpu", *, meta: bool = False) -> dict:
    """The tensors of ``path`` (canonicalised by spandrel: ``params_ema`` etc. unwrapped);
    ``meta``: only their shapes and dtypes, as tensors on torch's "meta" device (the file's data
    is mapped, not read)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in files.SUFFIXES:
        raise ModelLoadError(f"{path.name}: not a restoration model file (expected .safetensors, .pth or .pt)")
    spandrel()
    import torch

    try:
        if suffix == ".safetensors":
            state = _safetensors_meta(path) if meta else _safetensors(path, device)
        elif _is_torchscript(path):
            raise PickleRefusedError(
                f"{path.name} is a TorchScript archive, a program rather than weights (IOPaint's big-lama.pt is one): "
                "only .safetensors or weights-only .pth/.pt files are loaded. Use a .safetensors version of the model.")
        else:
            state = torch.load(str(path), map_location="cpu" if meta else device, weights_only=True, mmap=meta)
    except pickle.UnpicklingError as exc:
        raise PickleRefusedError(
            f"{path.name} holds more than weights (loading it would run code it contains): only .safetensors or "
            "weights-only .pth/.pt files are loaded. Use a .safetensors version of the model.") from exc
    except PickleRefusedError:
        raise
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file") from None
    except Exception as exc:  # truncated, not a torch file, a TorchScript archive, …
        raise ModelLoadError(f"{path.name}: cannot be read as model weights ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path.name}: holds a {type(state).__name__}, not a dictionary of weights")
    state = canonical(state)
    return {k: v.to("meta") for k, v in state.items()} if meta else state


#: A LaMa generator saved without its wrapper's prefix (``model.1.bn_l…``: what converting
#: IOPaint's TorchScript big-lama.pt gives) — spandrel 0.4 knows only ``model.model.`` and
#: ``generator.model.``.
_BARE_LAMA_KEY = "model.1.bn_l.running_mean"


def canonical(state: dict) -> dict:
    """spandrel's canonical state dict (``params_ema``, ``state_dict``, ``module.`` unwrapped),
    with a bare LaMa generator given back the prefix spandrel detects."""
    state = spandrel().canonicalize_state_dict(state)
    if _BARE_LAMA_KEY in state and "model." + _BARE_LAMA_KEY not in state:
        state = {"model." + k: v for k, v in state.items()}
    return state


def _is_torchscript(path: Path) -> bool:
    """torch.jit.save writes a zip with a ``code/`` folder (and ``constants.pkl``); weights don't."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.endswith("/constants.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _safetensors(path: Path, device: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path), device=device)


def _safetensors_meta(path: Path) -> dict:
    import torch
    from safetensors import safe_open

    dtypes = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        out = {}
        for key in f.keys():
            part = f.get_slice(key)
            out[key] = torch.empty(part.get_shape(), dtype=dtypes.get(part.get_dtype(), torch.float32), device="meta")
        return out


def build(state: dict, path: Path, device: str):
    """spandrel's descriptor for a canonical state dict (on "meta": shapes only), in eval mode."""
    module = spandrel()
    try:
        return module.ModelLoader(device=device).load_from_state_dict(state).eval()
    except module.UnsupportedModelError:
        needed = extra_architecture(state)
        if needed is not None and not extra_arches_installed():
            raise UnsupportedModelError(
                f"{path.name} is a {needed} model, an architecture that comes with {EXTRA_PACKAGE}, an optional "
                f"package whose architectures carry their own licences ({needed}: {EXTRA_ARCHITECTURES[needed][1]}). "
                f"Install it: python -m pip install --no-deps {EXTRA_PACKAGE} (README: Photo restoration).") from None
        raise UnsupportedModelError(
            f"{path.name}: not an architecture spandrel {module.__version__} knows (LaMa, ESRGAN, Compact, SwinIR, "
            "HAT, GFPGAN, RestoreFormer, SCUNet, NAFNet, DRUNet, FBCNN, …)") from None
    except Exception as exc:  # a known architecture with shapes it cannot build
        raise UnsupportedModelError(f"{path.name}: looks like a model spandrel knows but does not load "
                                    f"({type(exc).__name__}: {exc})") from exc


def extra_architecture(state: dict) -> str | None:
    """The spandrel-extra-arches architecture ``state``'s tensor names belong to, if any."""
    for architecture, (name, _licence) in EXTRA_ARCHITECTURES.items():
        if any(key == name or key.endswith("." + name) for key in state):
            return architecture
    return None


def summarise(descriptor, path: Path) -> ModelSummary:
    req = descriptor.size_requirements
    return ModelSummary(
        path=Path(path),
        architecture=str(descriptor.architecture.id),
        purpose=_purpose(descriptor),
        scale=int(descriptor.scale),
        input_channels=int(descriptor.input_channels),
        output_channels=int(descriptor.output_channels),
        size_multiple=int(req.multiple_of),
        size_minimum=int(req.minimum),
        tiling=descriptor.tiling.name,
    )


def _purpose(descriptor) -> str:
    if str(descriptor.architecture.id) in ARCHITECTURE_PURPOSES:
        return ARCHITECTURE_PURPOSES[str(descriptor.architecture.id)]
    if descriptor.purpose == "SR" and descriptor.scale == 1:
        return files.RESTORE
    return PURPOSES.get(descriptor.purpose, files.RESTORE)


_detected: dict[tuple[str, int, int], ModelSummary] = {}
_detected_lock = threading.Lock()


def detect(path: Path) -> ModelSummary:
    """What ``path`` holds, without building the model's weights: the tensors become shapes on
    torch's "meta" device, so detecting a 200 MB LaMa takes a fraction of a second.
    Remembered per (path, size, mtime) for the process."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _detected_lock:
        if key in _detected:
            return _detected[key]
    import torch

    state = read_state_dict(path, meta=True)
    try:
        with torch.device("meta"):
            summary = summarise(build(state, path, "meta"), path)
    except UnsupportedModelError as exc:
        if exc.__cause__ is None:  # no architecture matched
            raise
        # one matched but reads tensor values while building (DDColor runs its encoder): for real
        summary = summarise(build(read_state_dict(path), path, "cpu"), path)
    except Exception:
        summary = summarise(build(read_state_dict(path), path, "cpu"), path)
    with _detected_lock:
        _detected[key] = summary
    return summary


def load(path: Path, device: str = "cpu"):
    """The spandrel model descriptor of ``path`` on ``device``, in eval mode."""
    return build(read_state_dict(path), Path(path), device)


def best_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
