"""Where restoration model files live, found without reading weights or importing torch.

Every models folder (`catalog.models_dirs`) and an A1111/Forge install's ``models/`` folder are
searched for the sub-folders other tools use (A1111: ESRGAN, RealESRGAN, GFPGAN, Codeformer,
SwinIR, ScuNET, …; ComfyUI: upscale_models, facerestore_models, inpaint; ours: restoration).
The folder's name is only a hint of what a file is for; the loader's detection decides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.inference.diffusers.catalog import a1111_root, models_dirs
from app.inference.errors import ModelLoadError

#: What we load: safetensors, and torch's zip/pickle files read only by its weights-only
#: unpickler (`loader.read_state_dict`). `.ckpt`/`.bin` are left to the diffusion catalog.
SUFFIXES = (".safetensors", ".pth", ".pt")

INPAINT, UPSCALE, FACE, RESTORE, COLORIZE = "inpaint", "upscale", "face", "restore", "colorize"

#: Sub-folder name (lower case) → the purpose it implies; None = any (our own folder).
FOLDERS: dict[str, str | None] = {
    "restoration": None,
    "lama": INPAINT, "inpaint": INPAINT, "mat": INPAINT,
    "esrgan": UPSCALE, "realesrgan": UPSCALE, "swinir": UPSCALE, "hat": UPSCALE, "dat": UPSCALE,
    "upscale_models": UPSCALE,
    "gfpgan": FACE, "codeformer": FACE, "restoreformer": FACE, "facerestore_models": FACE,
    "scunet": RESTORE, "nafnet": RESTORE, "drunet": RESTORE, "fbcnn": RESTORE, "denoise": RESTORE,
    "ddcolor": COLORIZE, "colorize": COLORIZE,
}
#: What a purpose needs beyond its file, said when none is found.
HINTS = {COLORIZE: ". Colourising needs a DDColor model (DDColor/ or colorize/ sub-folder) and the optional "
                   "package spandrel-extra-arches: python -m pip install --no-deps spandrel-extra-arches"}
#: Nesting searched below a sub-folder (``ESRGAN/4x/model.pth`` is found, deeper is not).
MAX_DEPTH = 2


@dataclass(frozen=True)
class RestorationFile:
    path: Path
    folder_purpose: str | None  # what its folder implies (a hint)

    @property
    def name(self) -> str:
        return self.path.stem


def search_roots() -> list[Path]:
    """The folders whose sub-folders hold restoration models: the models folders and an A1111
    install's ``models/`` (where its ``Stable-diffusion/`` sits beside ``ESRGAN/``)."""
    roots = [d for d in models_dirs()]
    if (root := a1111_root()) is not None:
        roots = [d for d in roots if d != root / "models" / "Stable-diffusion"] + [root / "models"]
    return roots


def discover() -> list[RestorationFile]:
    """Every restoration model file found, in search order, each real file once."""
    found: list[RestorationFile] = []
    seen: set[tuple[int, int]] = set()
    for root in search_roots():
        try:
            folders = sorted(root.iterdir()) if root.is_dir() else []
        except OSError:  # unreadable: nothing found there
            continue
        for folder in folders:
            purpose = FOLDERS.get(folder.name.lower(), "absent")
            if purpose == "absent" or not folder.is_dir():
                continue
            for path in _model_files(folder):
                try:
                    st = path.stat()
                except OSError:  # a dangling link
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    found.append(RestorationFile(path, purpose))
    return found


def _model_files(folder: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        depth = len(Path(dirpath).relative_to(folder).parts)
        if depth >= MAX_DEPTH - 1:
            dirnames.clear()
        dirnames.sort()
        files += [Path(dirpath) / f for f in sorted(filenames) if Path(f).suffix.lower() in SUFFIXES]
    return files


def resolve(name_or_path: str | None, purpose: str) -> Path:
    """A model file for ``purpose``: an existing path, else a discovered file of that name (stem
    or file name), else — given no name — the first file found in a folder of that purpose.
    `ModelLoadError` naming where we looked when there is none."""
    if name_or_path:
        path = Path(name_or_path).expanduser()
        if path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise ModelLoadError(f"{path}: not a restoration model file (expected .safetensors, .pth or .pt)")
            return path
        for f in discover():
            if name_or_path in (f.name, f.path.name):
                return f.path
        raise ModelLoadError(f"restoration model not found: {name_or_path} ({_where()})")
    for f in discover():
        if f.folder_purpose == purpose:
            return f.path
    raise ModelLoadError(f"no {purpose} model found ({_where()}); give one with --model FILE{HINTS.get(purpose, '')}")


def _where() -> str:
    subfolders = ", ".join(sorted({k for k, v in FOLDERS.items()}))
    return "looked in the sub-folders " + subfolders + " of " + ", ".join(str(r) for r in search_roots())
