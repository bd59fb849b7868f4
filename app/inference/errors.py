"""User-facing errors of the diffusion side. Each message says what went wrong and what to do,
because the editor and the CLI show it to the user as is."""

from __future__ import annotations


class ModelLoadError(Exception):
    """A model could not be found or loaded (missing file, unreadable checkpoint, ...)."""


class UnsupportedModelError(ModelLoadError):
    """The model exists but is not a Stable Diffusion 1.x model (SDXL, SD 2.x, ...)."""


class PickleRefusedError(ModelLoadError):
    """A pickle checkpoint (.ckpt/.pt/.bin) was refused: unpickling runs arbitrary code."""


class DeviceError(RuntimeError):
    """The requested device does not exist or is not usable with this torch build."""


class GpuOutOfMemory(RuntimeError):
    """The accelerator ran out of memory. The document is untouched; the backend stays usable.
    ``low_memory_active`` tells the UI whether offering the low-memory mode can still help."""

    def __init__(self, device: str, low_memory_active: bool, detail: str = ""):
        self.device = device
        self.low_memory_active = low_memory_active
        hint = (
            "Try a smaller resolution or batch size."
            if low_memory_active
            else "Turn on the low-memory mode (attention slicing, VAE tiling, CPU offload), "
            "or try a smaller resolution or batch size."
        )
        super().__init__(f"The {device} device ran out of memory. {hint}" + (f" ({detail})" if detail else ""))
