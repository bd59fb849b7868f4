"""Versions of the pieces the app runs on, for the About dialog, `--version` and bug reports.

Read from the installed distributions' metadata (``importlib.metadata``) so that asking costs
nothing: importing torch to learn its version would take seconds and load the GPU driver. The
device is reported only when torch is *already* loaded (a model has been used); before that the
honest answer is "not loaded yet". In a PyInstaller bundle the metadata is copied in by the spec;
a module that is already imported is asked for its ``__version__`` as a fallback.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

import app

#: What we report → (distribution names to try, module whose __version__ is the fallback).
COMPONENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "torch": (("torch",), "torch"),
    "diffusers": (("diffusers",), "diffusers"),
    "transformers": (("transformers",), "transformers"),
    "PySide6": (("PySide6-Essentials", "PySide6", "pyside6_essentials", "pyside6"), "PySide6"),
    "numpy": (("numpy",), "numpy"),
    "OpenCV": (("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless"), "cv2"),
    "Pillow": (("pillow", "Pillow"), "PIL"),
}


def package_version(name: str) -> str | None:
    """Installed version of one component of `COMPONENTS` (or any distribution), or None."""
    dists, module = COMPONENTS.get(name, ((name,), name))
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        except Exception:  # broken metadata must not break an About box
            continue
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", None) if loaded is not None else None
    return str(version) if version else None


def qt_version() -> str | None:
    """The Qt runtime version, when QtCore is already imported (else None: importing it here
    would pull Qt into a headless CLI run)."""
    qtcore = sys.modules.get("PySide6.QtCore")
    if qtcore is None:
        return None
    try:
        return str(qtcore.qVersion())
    except Exception:
        return None


def device_in_use() -> str | None:
    """The torch device a model would run on, if torch is already loaded; None otherwise."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "cuda"):
        return None
    try:
        if torch.cuda.is_available():
            index = torch.cuda.current_device()
            name = torch.cuda.get_device_name(index)
            build = getattr(torch.version, "cuda", None) or getattr(torch.version, "hip", None) or "?"
            return f"cuda:{index} ({name}, CUDA {build})"
        mps = getattr(getattr(torch, "backends", None), "mps", None)
        if mps is not None and mps.is_available():
            return "mps (Apple GPU)"
        return f"cpu ({torch.get_num_threads()} threads)"
    except Exception as exc:  # a broken driver is worth showing, not crashing over
        return f"unknown ({type(exc).__name__}: {exc})"


def versions() -> dict[str, str]:
    """Ordered name → version text; missing components say "not installed"."""
    out = {
        "Inpaint Studio": app.__version__,
        "Python": f"{platform.python_version()} ({platform.python_implementation()}, {sys.platform})",
    }
    for name in COMPONENTS:
        out[name] = package_version(name) or "not installed"
    qt = qt_version()
    if qt:
        out["Qt"] = qt
    device = device_in_use()
    out["Device"] = device if device else ("torch not loaded yet" if out["torch"] != "not installed" else "CPU (classical only)")
    if getattr(sys, "frozen", False):
        out["Bundle"] = "PyInstaller"
    return out


def version_text() -> str:
    """Multi-line text for ``--version`` and the About dialog's copy button."""
    return "\n".join(f"{k}: {v}" for k, v in versions().items())
