"""Device and dtype choice: CUDA fp16, Apple MPS fp16, CPU fp32, overridable by a string.

fp16 halves memory and doubles speed on GPUs; on the CPU fp16 is slow or unsupported, so fp32.
torch is imported inside the functions so that importing this module costs nothing at start-up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from app.inference.errors import DeviceError

_DTYPES = {"fp16": "float16", "float16": "float16", "half": "float16", "fp32": "float32", "float32": "float32",
           "bf16": "bfloat16", "bfloat16": "bfloat16"}


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # torch device string: "cuda:0", "mps", "cpu"
    dtype: object  # torch.dtype
    description: str  # for the UI / `models` command, e.g. "NVIDIA H100 (cuda:0), float16"

    @property
    def type(self) -> str:
        return self.device.split(":")[0]


def _parse(spec: str) -> tuple[str, int | None]:
    spec = spec.strip().lower()
    m = re.fullmatch(r"(cuda|mps|cpu)(?::(\d+))?", spec)
    if not m or (m[1] != "cuda" and m[2] is not None and m[2] != "0"):
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")
    return m[1], int(m[2]) if m[2] is not None else None


def choose_device(override: str | None = None, dtype: str | None = None) -> DeviceChoice:
    """Pick the best available device (CUDA, then MPS, then CPU) unless ``override`` names one.

    ``override`` (or env ``INPAINT_STUDIO_DEVICE``): "auto", "cpu", "cuda", "cuda:1", "mps".
    ``dtype`` (or env ``INPAINT_STUDIO_DTYPE``): "fp16", "fp32", "bf16"; default fp16 on GPUs, fp32
    on the CPU. Raises `DeviceError` naming the reason when the requested device is unavailable."""
    import torch

    override = override or os.environ.get("INPAINT_STUDIO_DEVICE") or "auto"
    dtype = dtype or os.environ.get("INPAINT_STUDIO_DTYPE")
    if override.strip().lower() == "auto":
        if torch.cuda.is_available():
            kind, index = "cuda", 0
        elif _mps_available(torch):
            kind, index = "mps", None
        else:
            kind, index = "cpu", None
    else:
        kind, index = _parse(override)

    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support (CPU-only wheel)" if torch.version.cuda is None else "no CUDA GPU is visible (driver missing or CUDA_VISIBLE_DEVICES empty)"
            raise DeviceError(f"CUDA was requested but {why}. Use --device cpu, or install a CUDA build of torch.")
        index = 0 if index is None else index
        if index >= torch.cuda.device_count():
            raise DeviceError(f"cuda:{index} was requested but only {torch.cuda.device_count()} CUDA device(s) exist (cuda:0 … cuda:{torch.cuda.device_count() - 1}).")
        device, name = f"cuda:{index}", torch.cuda.get_device_name(index)
        default = "float16"
    elif kind == "mps":
        if not _mps_available(torch):
            raise DeviceError("MPS (Apple GPU) was requested but torch reports it unavailable (needs Apple silicon, macOS 12.3+ and an MPS-enabled torch).")
        device, name = "mps", "Apple GPU"
        # fp16 on MPS works for SD 1.5 and halves memory; the fp32 VAE retry catches the rare NaN.
        default = "float16"
    else:
        device, name = "cpu", "CPU"
        default = "float32"

    key = (dtype or default).strip().lower()
    if key not in _DTYPES:
        raise DeviceError(f"unknown dtype {dtype!r}: use fp16, fp32 or bf16")
    torch_dtype = getattr(torch, _DTYPES[key])
    return DeviceChoice(device, torch_dtype, f"{name} ({device}), {_DTYPES[key]}")


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
