"""User-facing errors of the inference side, in the one `app.core.errors.UserError` hierarchy.
Each message says what went wrong and what to do, because every front end shows it as is."""

from __future__ import annotations

from app.core.errors import MODEL_MISSING, OUT_OF_MEMORY, UserError


class ModelLoadError(UserError):
    """A model could not be found or loaded (missing file, unreadable checkpoint, ...)."""

    title = "Cannot load the model"
    kind = MODEL_MISSING
    field = "model"


class UnsupportedModelError(ModelLoadError):
    """The model exists but is not a Stable Diffusion 1.x model (SDXL, SD 2.x, ...)."""


class PickleRefusedError(ModelLoadError):
    """A pickle checkpoint (.ckpt/.pt/.bin) was refused: unpickling runs arbitrary code."""


class MissingDependencyError(ModelLoadError):
    """torch/diffusers are not installed: diffusion models cannot run, the classical methods can."""

    title = "Diffusion support is not installed"

    def __init__(self, detail: str):
        super().__init__(f"Diffusion models need torch and diffusers, which this installation lacks ({detail}). "
                         "Install the 'diffusion' extra (python -m pip install -e \".[diffusion]\"), "
                         "or use a classical method (builtin:telea).")


class DeviceError(UserError, RuntimeError):
    """The requested device does not exist or is not usable with this torch build."""

    title = "Device not available"
    field = "device"


class GpuOutOfMemory(UserError, RuntimeError):
    """The accelerator ran out of memory. The document is untouched; the backend stays usable.
    ``low_memory_active`` tells the UI whether offering the low-memory mode can still help."""

    title = "Out of memory"
    kind = OUT_OF_MEMORY

    def __init__(self, device: str, low_memory_active: bool, detail: str = ""):
        self.device = device
        self.low_memory_active = low_memory_active
        hint = (
            "Nothing in your image was changed. Try a smaller resolution or batch size."
            if low_memory_active
            else "Nothing in your image was changed. Turn on the low-memory mode (attention slicing, VAE tiling, "
            "CPU offload), or try a smaller resolution or batch size."
        )
        super().__init__(f"The {device} device ran out of memory. {hint}" + (f" ({detail})" if detail else ""))

