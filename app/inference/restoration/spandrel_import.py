"""Importing spandrel where torchvision is missing or broken.

spandrel 0.4 declares torchvision, but imports it only in two architecture modules, at import
time: LaMa (`rotate`, `InterpolationMode`, used only by a spatial-transform wrapper that
spandrel's LaMa never builds) and RestoreFormer (`normalize`, a per-channel affine map). There
is no CPU build of torchvision on PyPI for our pinned CPU torch (the CUDA wheel fails with
"operator torchvision::nms does not exist"), and a broken torchvision also breaks transformers'
SAM processor, so we install spandrel without its dependencies and, only when torchvision does
not import, let spandrel's import see a stand-in for those three names. The stand-in is in
`sys.modules` only during that import, so nothing else ever sees a fake torchvision; where the
real one works (a CUDA workstation) it is used unchanged. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import enum
import sys
import threading
import types

from app.inference.errors import ModelLoadError

_lock = threading.Lock()
_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class RestorationNotInstalledError(ModelLoadError):
    """spandrel (or torch) is missing: restoration models cannot run; the classical methods can."""

    title = "Restoration support is not installed"

    def __init__(self, detail: str):
        super().__init__(
            f"Restoration models (LaMa, upscalers, face restorers) need torch and spandrel, which this "
            f"installation lacks ({detail}). Install them: python -m pip install -e \".[diffusion,restore]\" "
            "and python -m pip install --no-deps spandrel (README: Photo restoration).")


def spandrel():
    """The `spandrel` module, imported once; `RestorationNotInstalledError` if it cannot be."""
    with _lock:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        try:
            import torch  # noqa: F401  (a clear message when torch itself is missing)
        except ImportError as exc:
            raise RestorationNotInstalledError(str(exc)) from exc
        stand_in = None if _torchvision_works() else _stand_in_modules()
        sys.modules.update(stand_in or {})
        try:
            import spandrel as module

            _install_extra_arches()
        except ImportError as exc:
            raise RestorationNotInstalledError(str(exc)) from exc
        finally:
            if stand_in is not None:
                for name in _NAMES:
                    sys.modules.pop(name, None)
        return module


#: The opt-in extra that adds DDColor, MAT, CodeFormer, … to spandrel (README: Photo restoration).
EXTRA_PACKAGE = "spandrel-extra-arches"


def extra_arches_installed() -> bool:
    """Whether spandrel-extra-arches' architectures are registered (after `spandrel()`)."""
    return "spandrel_extra_arches" in sys.modules


def _install_extra_arches() -> None:
    """Register spandrel-extra-arches' architectures where the package is installed: its code
    carries its architectures' licences (some non-commercial), so it is never a requirement."""
    try:
        import spandrel_extra_arches
    except ImportError:
        return
    spandrel_extra_arches.install(ignore_duplicates=True)


def _torchvision_works() -> bool:
    try:
        import torchvision.transforms.functional  # noqa: F401
    except Exception:  # absent (ImportError), or built for another torch (RuntimeError)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]  # a half-imported package must not be found later
        return False
    return True


def _stand_in_modules() -> dict[str, types.ModuleType]:
    """The three names spandrel imports, as modules that exist only during its import."""
    root, transforms, functional = (types.ModuleType(name) for name in _NAMES)
    root.transforms, transforms.functional = transforms, functional

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    def rotate(*args, **kwargs):
        raise RestorationNotInstalledError("this model rotates features, which needs torchvision")

    def normalize(tensor, mean, std, inplace=False):
        """torchvision's normalize: (x - mean) / std per channel of a C×H×W or N×C×H×W tensor."""
        import torch

        mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        return tensor.sub_(mean_t).div_(std_t) if inplace else (tensor - mean_t) / std_t

    functional.InterpolationMode, functional.rotate, functional.normalize = InterpolationMode, rotate, normalize
    return dict(zip(_NAMES, (root, transforms, functional)))
