"""The model catalog: what models exist and what each one is, read offline from JSON configs and
safetensors headers only (no torch), so listing models costs nothing at start-up.

Sources: diffusers folders and single `.safetensors` checkpoints in the models folders, and SD
1.x repos already in the Hugging Face cache. Each `ModelInfo` says why it is unusable if it is.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from app.core import boundedjson
from app.core.params import CLASSICAL_METHODS
from app.inference.errors import ModelLoadError
from app.storage.paths import models_dir
from app.storage.shared_settings import SharedSettings

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SD_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionInpaintPipeline", "StableDiffusionImg2ImgPipeline")
SD1 = "sd1"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    ref: str  # what GenerationParams.model holds: builtin:*, a path, or a Hugging Face repo id
    kind: str  # "classical" | "diffusers" | "single_file" | "hf_cache"
    path: Path | None
    inpainting: bool | None  # 9-channel UNet; None when unknown (pickle files are not opened)
    family: str  # "classical", "sd1", or what else it is ("sdxl", "sd2", ...) when unsupported
    note: str = ""  # why it cannot be used, or what it needs (e.g. allow_pickle)

    @property
    def usable(self) -> bool:
        return self.family in ("classical", SD1) and not self.note


# -- where models live ---------------------------------------------------------------------------
def a1111_root() -> Path | None:
    """An AUTOMATIC1111 or Forge install to borrow models from: env INPAINT_STUDIO_A1111 (the
    folder holding models/Stable-diffusion), or None."""
    env = os.environ.get("INPAINT_STUDIO_A1111", "").strip() or SharedSettings().a1111_folder()
    return Path(env).expanduser() if env else None


def models_dirs(extra_paths=()) -> list[Path]:
    """The user models folder (`app.storage.paths.models_dir`), then the folders in env
    INPAINT_STUDIO_MODELS (os.pathsep-separated), then an A1111 install's
    models/Stable-diffusion, then ``extra_paths``."""
    dirs = [models_dir()]
    env = os.environ.get("INPAINT_STUDIO_MODELS", "")
    dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    if (root := a1111_root()) is not None:
        dirs.append(root / "models" / "Stable-diffusion")
    dirs += [Path(p).expanduser() for p in extra_paths]
    return dirs




def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, honouring HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME and
    XDG_CACHE_HOME at call time (huggingface_hub reads them only once, at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


# -- inspection (no torch) -----------------------------------------------------------------------
#: A model config or index over this is not one (diffusers' largest are a few KB; a sharded
#: index lists a few thousand tensors).
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def _read_json(path: Path) -> dict:
    """A model's JSON config or index; `ModelLoadError` unless it is a readable JSON object."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ValueError(f"{path.stat().st_size} bytes; a config is a few KB")
        data = boundedjson.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path.parent}: missing file {path.name}") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: holds a JSON {type(data).__name__}, not the object a config must be; the file is damaged")
    return data


def inspect_diffusers_folder(folder: Path) -> tuple[str, bool, str]:
    """(family, inpainting, reason-if-unsupported) from a diffusers folder's JSON configs."""
    index = _read_json(folder / "model_index.json")
    cls = index.get("_class_name", "")
    if not isinstance(cls, str):
        return "unknown", False, f"{folder / 'model_index.json'}: _class_name is {cls!r}, not a pipeline name; the file is damaged"
    if "text_encoder_2" in index or "XL" in cls:
        return "sdxl", False, "Stable Diffusion XL is not supported (this editor runs SD 1.x models)"
    if "Pix2Pix" in cls:
        return "pix2pix", False, PIX2PIX_NOTE
    if cls not in SD_PIPELINES:
        return "other", False, f"{cls or 'this pipeline'} is not a Stable Diffusion 1.x pipeline"
    unet = _read_json(folder / "unet" / "config.json")
    inpainting = unet.get("in_channels") == 9
    cross = unet.get("cross_attention_dim")
    if unet.get("addition_embed_type") == "text_time" or cross == 2048:
        return "sdxl", inpainting, "Stable Diffusion XL is not supported (this editor runs SD 1.x models)"
    sched = folder / "scheduler" / "scheduler_config.json"
    v_pred = sched.exists() and _read_json(sched).get("prediction_type") == "v_prediction"
    if cross == 1024 or v_pred:
        what = "v-prediction, " if v_pred else ""
        return "sd2", inpainting, f"Stable Diffusion 2.x ({what}1024-dim OpenCLIP text encoder) is not supported; use an SD 1.x model"
    if unet.get("in_channels") == 8:
        return "pix2pix", False, PIX2PIX_NOTE
    if unet.get("in_channels") not in (4, 9):
        return "other", inpainting, f"a UNet with {unet.get('in_channels')} input channels is not an SD 1.x base (4) or inpainting (9) model"
    return SD1, inpainting, ""


#: The parts of a diffusers folder that must hold a weights file for the pipeline to load.
WEIGHT_PARTS = ("unet", "vae", "text_encoder")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
WEIGHT_FILES = {"unet": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors",
                "text_encoder": "model.safetensors"}
PIX2PIX_NOTE = "an InstructPix2Pix model (8-channel UNet, edits by instruction) is not supported; use an SD 1.x model"
LORA_NOTE = "a LoRA, not a model: put it in a Lora folder and add <lora:NAME:0.8> to the prompt"


def _has_weights(part: Path) -> bool:
    return part.is_dir() and any(f.suffix in WEIGHT_SUFFIXES and f.is_file() for f in part.iterdir())


def _complete(info: ModelInfo) -> ModelInfo:
    """A listed diffusers folder whose configs look right but whose weights are missing or cut
    short (an unfinished download) is skipped with that reason rather than offered and failing
    on load."""
    if not info.usable or info.path is None or not info.path.is_dir():
        return info
    missing = [part for part in WEIGHT_PARTS if not _has_weights(info.path / part)]
    if missing:
        expected = ", ".join(f"{part}/{WEIGHT_FILES[part]}" for part in missing)
        return dataclasses.replace(info, note=f"incomplete folder (an unfinished download?): no weights in "
                                              f"{', '.join(missing)} (expected {expected})")
    return _whole(info)


def _whole(info: ModelInfo) -> ModelInfo:
    """``info`` with a note if a weights file it has is cut short (what `resolve_model` checks:
    a missing file is named by the loader, which knows which file it needs)."""
    if not info.usable or info.path is None or not info.path.is_dir():
        return info
    for part in WEIGHT_PARTS:
        folder = info.path / part
        for f in sorted(folder.iterdir()) if folder.is_dir() else ():
            problem = truncation(f) if f.suffix in WEIGHT_SUFFIXES and f.is_file() else ""
            if problem:
                return dataclasses.replace(info, note=f"incomplete folder (an unfinished download?): {part}/{f.name} {problem}")
    return info


def truncation(path: Path) -> str:
    """Why a weights file is cut short ("" when it is whole, as far as a cheap look can tell):
    a .safetensors file is shorter than its header's last tensor ends; a zip-format .bin (torch's
    own format) has lost its closing directory. Reads the header only, no tensor."""
    try:
        size = path.stat().st_size
        if path.suffix == ".safetensors":
            with open(path, "rb") as fh:
                (header_len,) = struct.unpack("<Q", fh.read(8))
            header = safetensors_header(path)
            ends = [e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"
                    and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2
                    and isinstance(e["data_offsets"][1], int)]
            expected = 8 + header_len + max(ends, default=0)
            return f"is truncated: {_mb(size)} of {_mb(expected)}" if size < expected else ""
        if path.suffix == ".bin":
            with open(path, "rb") as fh:
                zip_format = fh.read(2) == b"PK"
            return "is truncated: its zip directory is missing" if zip_format and not zipfile.is_zipfile(path) else ""
    except (OSError, struct.error) as exc:
        return f"cannot be read ({exc.strerror or exc})" if isinstance(exc, OSError) else "is truncated: no header"
    except ModelLoadError:
        return "is truncated or damaged: its header cannot be read"
    return ""


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file (tensor names, dtypes, shapes) without reading
    the tensors: fast even for a 4 GB checkpoint. Every entry is checked to be a tensor with a
    list of whole-number dimensions, so later inspection can index it without surprises."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                raise ValueError("header too large")
            header = boundedjson.loads(fh.read(size))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelLoadError(f"{path}: not a readable .safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path}: not a readable .safetensors file (the header is not a JSON object)")
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ModelLoadError(f"{path}: not a readable .safetensors file (tensor {name[:80]!r} has no valid shape)")
    return header


UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP = "cond_stage_model.transformer."


def _dim(entry: dict, axis: int, name: str) -> int:
    shape = entry["shape"]
    if len(shape) <= axis:
        raise ModelLoadError(f"tensor {name} has shape {shape}, not that of a Stable Diffusion 1.x checkpoint")
    return shape[axis]


def inspect_checkpoint(header: dict) -> tuple[str, bool, str]:
    """(family, inpainting, reason-if-unsupported) from an original-layout checkpoint's keys."""
    keys = [k for k in header if k != "__metadata__"]
    if any(k.startswith("conditioner.embedders.") for k in keys) or f"{UNET}label_emb.0.0.weight" in header:
        return "sdxl", False, "Stable Diffusion XL is not supported (this editor runs SD 1.x models)"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2", False, "Stable Diffusion 2.x (1024-dim OpenCLIP text encoder) is not supported; use an SD 1.x model"
    first = header.get(f"{UNET}input_blocks.0.0.weight")
    if first is None and any("lora" in k.lower() for k in keys):
        return "lora", False, LORA_NOTE
    if first is None:
        if any("joint_blocks" in k or "double_blocks" in k for k in keys):
            return "other", False, "this is not a Stable Diffusion 1.x checkpoint (SD3/Flux-style transformer)"
        return "other", False, "no Stable Diffusion UNet weights (model.diffusion_model.*) in this file"
    in_ch = _dim(first, 1, f"{UNET}input_blocks.0.0.weight")
    if not any(k.startswith(CLIP) for k in keys):
        return "other", in_ch == 9, "no CLIP text encoder weights (cond_stage_model.transformer.*) in this file"
    if not any(k.startswith(VAE) for k in keys):
        return "other", in_ch == 9, "no VAE weights (first_stage_model.*) in this file"
    for k in keys:
        if k.startswith(UNET) and k.endswith("attn2.to_k.weight"):
            if _dim(header[k], 1, k) == 1024:
                return "sd2", in_ch == 9, "Stable Diffusion 2.x (1024-dim text encoder) is not supported; use an SD 1.x model"
            break
    if in_ch == 8:
        return "pix2pix", False, PIX2PIX_NOTE
    if in_ch not in (4, 9):
        return "other", False, f"a UNet with {in_ch} input channels is not an SD 1.x base (4) or inpainting (9) model"
    return SD1, in_ch == 9, ""


def _info_for_folder(folder: Path, kind: str, ref: str, name: str) -> ModelInfo:
    try:
        family, inpainting, note = inspect_diffusers_folder(folder)
    except ModelLoadError as exc:
        return ModelInfo(name, ref, kind, folder, None, "unknown", str(exc))
    return ModelInfo(name, ref, kind, folder, inpainting, family, note)


def _info_for_file(path: Path) -> ModelInfo:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return ModelInfo(path.stem, str(path), "single_file", path, None, "unknown",
                         "pickle checkpoint: loading runs arbitrary code; convert it to .safetensors or allow pickle")
    try:
        family, inpainting, note = inspect_checkpoint(safetensors_header(path))
    except ModelLoadError as exc:
        return ModelInfo(path.stem, str(path), "single_file", path, None, "unknown", str(exc))
    problem = "" if note else truncation(path)
    if problem:
        note = f"truncated file (an unfinished download?): {path.name} {problem}"
    return ModelInfo(path.stem, str(path), "single_file", path, inpainting, family, note)


#: What a ``refs/<branch>`` file may hold: a commit hash (or a branch-like name), never a path.
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def hf_snapshot(repo_dir: Path) -> Path | None:
    """The snapshot ``refs/main`` names, else the newest one; a ref holding a path (``../..``)
    is not followed out of the cache."""
    ref = repo_dir / "refs" / "main"
    snapshots = repo_dir / "snapshots"
    if ref.is_file():
        name = ref.read_text(encoding="utf-8", errors="replace")[:200].strip()
        if not _REF.fullmatch(name) or name.strip(".") == "":
            raise ModelLoadError(f"{ref}: holds {name[:40]!r}, not a commit hash; the cache entry is damaged")
        snap = snapshots / name
        if snap.is_dir():
            return snap
    candidates = []
    if snapshots.is_dir():
        for entry in snapshots.iterdir():
            try:
                if entry.is_dir():
                    candidates.append((entry.stat().st_mtime, entry))
            except OSError:  # a link loop or a dangling link: not a snapshot
                continue
    return max(candidates)[1] if candidates else None


def _skipped(path: Path, kind: str, exc: BaseException) -> ModelInfo:
    """An entry that could not even be inspected: listed with its reason, never the end of the listing."""
    reason = str(exc) if isinstance(exc, ModelLoadError) else f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})"
    return ModelInfo(path.name, str(path), kind, path, None, "unknown", reason or type(exc).__name__)


#: What inspecting one entry of a models folder may raise on a hostile or broken file: caught per
#: entry so the rest is still listed (a link loop, a config nested 100,000 deep, ...).
ENTRY_ERRORS = (OSError, ValueError, RuntimeError, RecursionError, TypeError, KeyError, IndexError, AttributeError)


def hf_cache_models(cache: Path | None = None) -> list[ModelInfo]:
    """SD 1.x diffusers repos in the Hugging Face cache (offline scan of models--org--name);
    a damaged entry is listed as skipped with its reason."""
    cache = cache or hf_cache_dir()
    found = []
    if not cache.is_dir():
        return found
    for repo_dir in sorted(cache.glob("models--*")):
        repo_id = repo_dir.name[len("models--"):].replace("--", "/", 1)
        try:
            snap = hf_snapshot(repo_dir)
            if snap is None or not (snap / "model_index.json").is_file():
                continue
            info = _info_for_folder(snap, "hf_cache", repo_id, repo_id)
            if info.family == SD1:
                found.append(_complete(info))
        except ModelLoadError as exc:
            found.append(ModelInfo(repo_id, repo_id, "hf_cache", repo_dir, None, "unknown", str(exc)))
        except ENTRY_ERRORS as exc:
            found.append(dataclasses.replace(_skipped(repo_dir, "hf_cache", exc), name=repo_id, ref=repo_id))
    return found


def real_path(path: Path) -> Path:
    """``path.resolve()`` that does not raise on a symbolic link loop (Python 3.11's does)."""
    return Path(os.path.realpath(path))


def discover_models(extra_paths=()) -> list[ModelInfo]:
    """Everything the app can offer: classical methods first, then models in the models
    directories (diffusers folders, .safetensors, listed pickle files with a note), then SD 1.x
    repos in the Hugging Face cache. Unsupported models are listed with a ``note`` saying why,
    and so is an entry that cannot be read at all: one bad entry never hides the others.
    Models added in the window (`SharedSettings.user_models`) are listed too."""
    extra_paths = (*SharedSettings().user_models(), *extra_paths)
    found = [ModelInfo(m.label, r, "classical", None, True, "classical") for r, m in CLASSICAL_METHODS.items()]
    seen: set[Path] = set()
    for base in models_dirs(extra_paths):
        try:
            if base.is_file() or (base / "model_index.json").is_file():
                candidates = [base]
            elif base.is_dir():
                candidates = sorted(base.iterdir())
            else:
                continue
        except ENTRY_ERRORS as exc:
            found.append(_skipped(base, "diffusers", exc))
            continue
        for path in candidates:
            try:
                info = _entry_info(path, seen)
            except ENTRY_ERRORS as exc:
                info = _skipped(path, "diffusers" if not path.suffix else "single_file", exc)
            if info is not None:
                found.append(info)
    found += hf_cache_models()
    return found


def _entry_info(path: Path, seen: set[Path]) -> ModelInfo | None:
    """The `ModelInfo` of one entry of a models folder; None for what is not a model (or was
    listed already through another name)."""
    real = real_path(path)
    if real in seen:
        return None
    if path.is_dir() and (path / "model_index.json").is_file():
        seen.add(real)
        return _complete(_info_for_folder(path, "diffusers", str(path), path.name))
    if path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES):
        if path.is_file():
            seen.add(real)
            return _info_for_file(path)
        if path.is_symlink() and not path.exists():
            return ModelInfo(path.stem, str(path), "single_file", path, None, "unknown",
                             f"{path}: a symbolic link to nothing (or a link loop); fix or remove it")
    return None


# -- resolving a reference -----------------------------------------------------------------------
def resolve_model(ref: str) -> ModelInfo:
    """Turn a model reference (path or cached repo id) into a `ModelInfo`, or `ModelLoadError`."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(f"{path}: missing file model_index.json (not a diffusers model folder)")
        return _whole(_info_for_folder(path, "diffusers", str(path), path.name))
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES or suffix == ".safetensors":
            return _info_for_file(path)
        raise ModelLoadError(f"{path}: not a model file (expected a .safetensors checkpoint or a diffusers folder)")
    if ref.count("/") == 1 and not path.is_absolute():
        repo_dir = hf_cache_dir() / ("models--" + ref.replace("/", "--"))
        snap = hf_snapshot(repo_dir) if repo_dir.is_dir() else None
        if snap is not None:
            return _whole(_info_for_folder(snap, "hf_cache", ref, ref))
        raise ModelLoadError(f"{ref} is not in the Hugging Face cache ({hf_cache_dir()}) and nothing is downloaded: "
                             "download it once with huggingface-cli, or give a folder or .safetensors path")
    raise ModelLoadError(f"model not found: {ref} (no such file or folder; models folders: "
                         + ", ".join(str(d) for d in models_dirs()) + ")")
