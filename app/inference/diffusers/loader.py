"""Loading a model, offline: refusals (pickle without opt-in, SDXL/SD 2, missing files) happen
before torch is imported, so refusing is instant and runs nothing. Everything loads with
``local_files_only=True``; a single checkpoint gets its configs and tokenizer from
`app.inference.diffusers.checkpoint`."""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

from app.inference.diffusers.catalog import (PICKLE_SUFFIXES, SD1, ModelInfo, _read_json, hf_cache_dir, hf_snapshot, inspect_checkpoint,
                                             resolve_model, safetensors_header)
from app.inference.diffusers.checkpoint import derive_single_file_config, load_clip_tokenizer
from app.inference.errors import MissingDependencyError, ModelLoadError, PickleRefusedError, UnsupportedModelError
from app.inference.registry import LoadOptions

log = logging.getLogger(__name__)

def _check_folder_files(folder: Path, allow_pickle: bool) -> str | None:
    """Raise `ModelLoadError` naming the first missing file; return the weights variant to use
    ("fp16" when only fp16 files exist) or None. Refuse pickle-only weights unless allowed."""
    variant = None
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if not (folder / part).is_dir():
            raise ModelLoadError(f"{folder}: missing folder {part}/ (an incomplete download?)")
    _read_json(folder / "scheduler" / "scheduler_config.json")
    tok = folder / "tokenizer"
    if not (tok / "tokenizer.json").is_file() and not ((tok / "vocab.json").is_file() and (tok / "merges.txt").is_file()):
        raise ModelLoadError(f"{folder}: missing file tokenizer/tokenizer.json (or tokenizer/vocab.json + merges.txt)")
    for part, stem in (("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model")):
        _read_json(folder / part / "config.json")
        files = {p.name for p in (folder / part).iterdir()}
        for index in (f"{stem}.safetensors.index.json", f"{stem}.safetensors.index.fp16.json"):
            if index in files:
                _check_index(folder / part / index, allow_pickle)
        if f"{stem}.safetensors" in files or f"{stem}.safetensors.index.json" in files:
            continue
        if f"{stem}.fp16.safetensors" in files or f"{stem}.safetensors.index.fp16.json" in files:
            variant = "fp16"
            continue
        if any(f.endswith(".bin") for f in files):
            if not allow_pickle:
                raise PickleRefusedError(
                    f"{folder / part}: only pickle weights ({stem}.bin); loading a pickle runs arbitrary code. "
                    "Convert the model to .safetensors, or allow pickle files if you trust the source.")
            continue
        raise ModelLoadError(f"{folder}: missing file {part}/{stem}.safetensors")
    return variant


def _check_index(index: Path, allow_pickle: bool) -> None:
    """A sharded checkpoint's index names the files diffusers will load: each must be in the
    folder (no path tricks) and, unless pickles are allowed, a .safetensors file. (An index whose
    name says safetensors but which points at a .bin would otherwise be unpickled.)"""
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelLoadError(f"{index}: no weight_map in this index file; the model folder is damaged.")
    for shard in sorted({str(v) for v in weight_map.values()}):
        if Path(shard).name != shard or not (index.parent / shard).is_file():
            raise ModelLoadError(f"{index}: names {shard!r}, which is not a file in {index.parent.name}/.")
        if not shard.endswith(".safetensors") and not allow_pickle:
            raise PickleRefusedError(
                f"{index.parent}: the index names {shard}, a pickle file; loading a pickle runs arbitrary code. "
                "Convert the model to .safetensors, or allow pickle files if you trust the source.")


def load_pipeline(info: ModelInfo, device, *, allow_pickle: bool = False):
    """Load the SD 1.x model as a `StableDiffusionInpaintPipeline` (it also serves 4-channel base
    models, by latent blending) on ``device`` (a `DeviceChoice`), offline. Returns the pipeline."""
    from diffusers import StableDiffusionInpaintPipeline

    common = dict(dtype=device.dtype, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        if info.kind in ("diffusers", "hf_cache"):
            variant = _check_folder_files(info.path, allow_pickle)
            pipe = StableDiffusionInpaintPipeline.from_pretrained(
                str(info.path), local_files_only=True, use_safetensors=not allow_pickle, variant=variant, **common)
        else:
            pipe = _load_single_file(info.path, allow_pickle, common)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"{info.ref}: could not be loaded ({type(exc).__name__}: {exc})") from exc
    pipe.to(device.device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _pickle_refusal(path: Path) -> str:
    return (f"{path.name} is a pickle checkpoint: loading it would run any code it contains (arbitrary code). "
            "Use a .safetensors version of the model, or allow pickle files only if you trust its source.")


def _load_single_file(path: Path, allow_pickle: bool, common: dict):
    from diffusers import StableDiffusionInpaintPipeline

    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise PickleRefusedError(_pickle_refusal(path))
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=False)
        header = {k: {"shape": list(v.shape)} for k, v in state.get("state_dict", state).items() if hasattr(v, "shape")}
    else:
        header = safetensors_header(path)
    family, _inpainting, note = inspect_checkpoint(header)
    if note:
        raise UnsupportedModelError(f"{path.name}: {note}")
    with tempfile.TemporaryDirectory(prefix="inpaint-studio-config-") as tmp:
        config = derive_single_file_config(header, Path(tmp) / "config")
        return StableDiffusionInpaintPipeline.from_single_file(
            str(path), config=str(config), tokenizer=load_clip_tokenizer(), local_files_only=True, **common)


def preflight(model_ref: str, allow_pickle: bool = True) -> ModelInfo:
    """Resolve a diffusion model reference and refuse what cannot load (missing files, SDXL/SD 2,
    a pickle file without ``allow_pickle``), all without torch, so refusing is instant."""
    info = resolve_model(model_ref)
    is_pickle = info.path is not None and info.path.is_file() and info.path.suffix.lower() in PICKLE_SUFFIXES
    if is_pickle and not allow_pickle:
        raise PickleRefusedError(_pickle_refusal(info.path))
    if info.family in ("sdxl", "sd2", "other"):
        raise UnsupportedModelError(f"{info.ref}: {info.note}")
    if info.note and not is_pickle:
        raise ModelLoadError(f"{info.ref}: {info.note}")
    if info.kind in ("diffusers", "hf_cache") and info.path is not None and not allow_pickle:
        try:  # pickle weights refused here, before torch is imported; missing files are told at load, as before
            _check_folder_files(info.path, allow_pickle)
        except PickleRefusedError:
            raise
        except ModelLoadError:
            pass
    return info


def load_safety_checker(info: ModelInfo, device):
    """The safety checker and its feature extractor, offline: from the model folder
    (safety_checker/, feature_extractor/) or the Hugging Face cache
    (CompVis/stable-diffusion-safety-checker); `ModelLoadError` saying where to put them if neither."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    candidates = []
    if info.path is not None and info.path.is_dir():
        candidates.append((info.path / "safety_checker", info.path / "feature_extractor"))
    repo = hf_cache_dir() / "models--CompVis--stable-diffusion-safety-checker"
    snap = hf_snapshot(repo) if repo.is_dir() else None
    if snap is not None:
        candidates.append((snap, snap))
    for checker_dir, fe_dir in candidates:
        if (checker_dir / "config.json").is_file() and (fe_dir / "preprocessor_config.json").is_file():
            checker = StableDiffusionSafetyChecker.from_pretrained(str(checker_dir), local_files_only=True,
                                                                   torch_dtype=device.dtype)
            return checker, CLIPImageProcessor.from_pretrained(str(fe_dir), local_files_only=True)
    raise ModelLoadError(
        "The safety checker is turned on but its weights are not installed: put safety_checker/ and "
        "feature_extractor/ in the model folder, or have CompVis/stable-diffusion-safety-checker in the "
        "Hugging Face cache.")


def quiet_libraries() -> None:
    """Keep diffusers/transformers from printing advisory warnings and loading bars on stderr
    (the CLI's stderr is for progress lines and one-line errors). Set before they are imported;
    explicit user settings of these variables win."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # torchvision's own warnings (missing image extension, deprecations) say nothing a user can act on
    warnings.filterwarnings("ignore", module=r"torchvision(\.|$)")
    warnings.filterwarnings("ignore", message=r".*torchvision.*")
    try:  # already imported (in-process callers): apply the same settings directly
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    for env, lib in (("TRANSFORMERS_VERBOSITY", transformers_logging), ("DIFFUSERS_VERBOSITY", diffusers_logging)):
        if os.environ[env] == "error":
            lib.set_verbosity_error()


def load_diffusion_backend(model_ref: str, options: LoadOptions):
    """A `DiffusionBackend` with ``model_ref`` loaded as ``options`` say, offline only."""
    info = preflight(model_ref, options.allow_pickle)
    # torch and diffusers only now: refusing a model must be instant and run nothing.
    try:
        quiet_libraries()
        from app.inference.diffusers.device import choose_device
        from app.inference.diffusers.backend import DiffusionBackend
    except ImportError as exc:
        raise MissingDependencyError(str(exc)) from None

    choice = choose_device(options.device, options.dtype)
    t0 = time.perf_counter()
    pipe = load_pipeline(info, choice, allow_pickle=options.allow_pickle)
    if info.inpainting is None:  # a pickle file: known only now
        info = ModelInfo(info.name, info.ref, info.kind, info.path, pipe.unet.config.in_channels == 9, SD1)
    load_s = time.perf_counter() - t0
    log.info("loaded %s on %s in %.2f s", info.ref, choice.description, load_s)
    backend = DiffusionBackend(pipe, info=info, device=choice, load_seconds=load_s, low_memory=options.low_memory,
                               fast=options.fast, safety_checker=options.safety_checker, compile=options.compile,
                               exact_batches=options.exact_batches)
    backend.controls.allow_pickle = options.allow_pickle  # the same opt-in covers ControlNet files
    return backend


def check_stack() -> str:
    """Import everything the first generation imports and pick the device, as loading would:
    what a packaged build most often breaks. Returns one line for the self-test."""
    quiet_libraries()
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline  # noqa: F401
    from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

    import app.inference.diffusers.backend  # noqa: F401
    from app.inference.diffusers.device import choose_device

    return f"diffusion stack importable (torch {torch.__version__}, device {choose_device(None).description})"
