"""Tiny random-weight restoration models that spandrel detects from their state dicts, written
as the files users have (.safetensors, weights-only .pth), for tests/test_restoration*.py.

The architectures are spandrel's own classes with small hyper-parameters; nothing here tells the
loader what a file is: it must find out from the tensors, as with a downloaded model."""

from __future__ import annotations

import pathlib
from pathlib import Path

import numpy as np


def _arches():
    from app.inference.restoration.spandrel_import import spandrel

    spandrel()  # imports spandrel the way the app does (no torchvision here)
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.DnCNN import DnCNN
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.LaMa import LaMa

    return ESRGAN, Compact, DnCNN, LaMa


def save(model, path: Path) -> Path:
    """The model's weights as ``path`` (.safetensors or a weights-only torch .pth)."""
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, str(path))
    return path


def esrgan_x2(seed: int = 0):
    """RRDBNet (ESRGAN) ×2 with 8 filters and one block: receptive field ≈ 15 input pixels."""
    import torch

    ESRGAN, _, _, _ = _arches()
    torch.manual_seed(seed)
    return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)


def compact_x4(seed: int = 1):
    """Real-ESRGAN's SRVGGNetCompact ×4 with 8 features and 2 convolutions."""
    import torch

    _, Compact, _, _ = _arches()
    torch.manual_seed(seed)
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4)


def dncnn(seed: int = 2):
    """DnCNN denoiser (same size) with 8 channels and 5 layers."""
    import torch

    _, _, DnCNN, _ = _arches()
    torch.manual_seed(seed)
    return DnCNN(in_nc=3, out_nc=3, nc=8, nb=5)


def restoreformer(seed: int = 4):
    """RestoreFormer face restorer with 32 channels, two levels and a 16-entry codebook (its
    call normalises through torchvision's `normalize`, or our stand-in where torchvision is absent)."""
    import torch

    _arches()
    from spandrel.architectures.RestoreFormer import RestoreFormer

    torch.manual_seed(seed)
    return RestoreFormer(n_embed=16, embed_dim=8, ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=32, resolution=512)


def lama(seed: int = 3):
    """LaMa at its real size (spandrel builds only big-lama's shape: 51 M parameters, ~200 MB)."""
    import torch

    _, _, _, LaMa = _arches()
    torch.manual_seed(seed)
    return LaMa(in_nc=4, out_nc=3)


class CodeOnLoad:
    """What a hostile pickle holds: unpickling it fully would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def save_pickle_with_code(path: Path, marker: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conv_first.weight": torch.zeros(8, 3, 3, 3), "payload": CodeOnLoad(marker)}, str(path))
    return path


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB uint8 image (noise blurred a little, like a photo's texture)."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5) * 255 * 1.5 - 64, 0, 255).astype(np.uint8)
