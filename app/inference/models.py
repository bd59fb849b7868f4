"""Model discovery and loading, all offline.

Sources: the two built-in classical methods, diffusers folders and single `.safetensors`
checkpoints in the models directories, and SD 1.x repos already in the Hugging Face cache.
Everything loads with ``local_files_only=True``; single-file checkpoints use the configs and the
CLIP tokenizer shipped under ``resources/`` so no download is ever attempted. Pickle checkpoints
(.ckpt/.pt/.bin) are refused unless explicitly allowed: unpickling runs arbitrary code.

Discovery reads only JSON configs and safetensors headers, so listing models does not import
torch; loading imports torch and diffusers.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.inference.errors import ModelLoadError, PickleRefusedError, UnsupportedModelError
from app.params import CLASSICAL_MODELS
from app.paths import models_dir, resources_dir

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SD_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionInpaintPipeline", "StableDiffusionImg2ImgPipeline")
CLASSICAL_NAMES = {"builtin:telea": "Telea (classical, built in)", "builtin:ns": "Navier–Stokes (classical, built in)"}
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
def models_dirs(extra_paths=()) -> list[Path]:
    """The user models folder (`app.paths.models_dir`), then the folders in env
    INPAINT_STUDIO_MODELS (os.pathsep-separated), then ``extra_paths``."""
    dirs = [models_dir()]
    env = os.environ.get("INPAINT_STUDIO_MODELS", "")
    dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
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
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path.parent}: missing file {path.name}") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not readable JSON ({exc})") from None


def inspect_diffusers_folder(folder: Path) -> tuple[str, bool, str]:
    """(family, inpainting, reason-if-unsupported) from a diffusers folder's JSON configs."""
    index = _read_json(folder / "model_index.json")
    cls = index.get("_class_name", "")
    if "text_encoder_2" in index or "XL" in cls:
        return "sdxl", False, "Stable Diffusion XL is not supported (this editor runs SD 1.x models)"
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
    if unet.get("in_channels") not in (4, 9):
        return "other", inpainting, f"a UNet with {unet.get('in_channels')} input channels is not an SD 1.x base (4) or inpainting (9) model"
    return SD1, inpainting, ""


def safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file (tensor names, dtypes, shapes) without reading
    the tensors: fast even for a 4 GB checkpoint."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                raise ValueError("header too large")
            return json.loads(fh.read(size))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelLoadError(f"{path}: not a readable .safetensors file ({exc})") from None


UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP = "cond_stage_model.transformer."


def inspect_checkpoint(header: dict) -> tuple[str, bool, str]:
    """(family, inpainting, reason-if-unsupported) from an original-layout checkpoint's keys."""
    keys = [k for k in header if k != "__metadata__"]
    if any(k.startswith("conditioner.embedders.") for k in keys) or f"{UNET}label_emb.0.0.weight" in header:
        return "sdxl", False, "Stable Diffusion XL is not supported (this editor runs SD 1.x models)"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2", False, "Stable Diffusion 2.x (1024-dim OpenCLIP text encoder) is not supported; use an SD 1.x model"
    first = header.get(f"{UNET}input_blocks.0.0.weight")
    if first is None:
        if any("joint_blocks" in k or "double_blocks" in k for k in keys):
            return "other", False, "this is not a Stable Diffusion 1.x checkpoint (SD3/Flux-style transformer)"
        return "other", False, "no Stable Diffusion UNet weights (model.diffusion_model.*) in this file"
    in_ch = first["shape"][1]
    if not any(k.startswith(CLIP) for k in keys):
        return "other", in_ch == 9, "no CLIP text encoder weights (cond_stage_model.transformer.*) in this file"
    if not any(k.startswith(VAE) for k in keys):
        return "other", in_ch == 9, "no VAE weights (first_stage_model.*) in this file"
    for k in keys:
        if k.startswith(UNET) and k.endswith("attn2.to_k.weight"):
            if header[k]["shape"][1] == 1024:
                return "sd2", in_ch == 9, "Stable Diffusion 2.x (1024-dim text encoder) is not supported; use an SD 1.x model"
            break
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
    return ModelInfo(path.stem, str(path), "single_file", path, inpainting, family, note)


def _hf_snapshot(repo_dir: Path) -> Path | None:
    ref = repo_dir / "refs" / "main"
    snapshots = repo_dir / "snapshots"
    if ref.is_file():
        snap = snapshots / ref.read_text().strip()
        if snap.is_dir():
            return snap
    candidates = sorted(snapshots.glob("*"), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    return candidates[-1] if candidates else None


def hf_cache_models(cache: Path | None = None) -> list[ModelInfo]:
    """SD 1.x diffusers repos in the Hugging Face cache (offline scan of models--org--name)."""
    cache = cache or hf_cache_dir()
    found = []
    if not cache.is_dir():
        return found
    for repo_dir in sorted(cache.glob("models--*")):
        snap = _hf_snapshot(repo_dir)
        if snap is None or not (snap / "model_index.json").is_file():
            continue
        repo_id = repo_dir.name[len("models--"):].replace("--", "/", 1)
        info = _info_for_folder(snap, "hf_cache", repo_id, repo_id)
        if info.family == SD1:
            found.append(info)
    return found


def discover_models(extra_paths=()) -> list[ModelInfo]:
    """Everything the app can offer: classical methods first, then models in the models
    directories (diffusers folders, .safetensors, listed pickle files with a note), then SD 1.x
    repos in the Hugging Face cache. Unsupported models are listed with a ``note`` saying why."""
    found = [ModelInfo(CLASSICAL_NAMES[r], r, "classical", None, True, "classical") for r in CLASSICAL_MODELS]
    seen: set[Path] = set()
    for base in models_dirs(extra_paths):
        if base.is_file():
            candidates = [base]
        elif (base / "model_index.json").is_file():
            candidates = [base]
        elif base.is_dir():
            candidates = sorted(base.iterdir())
        else:
            continue
        for path in candidates:
            real = path.resolve()
            if real in seen:
                continue
            if path.is_dir() and (path / "model_index.json").is_file():
                seen.add(real)
                found.append(_info_for_folder(path, "diffusers", str(path), path.name))
            elif path.is_file() and path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES):
                seen.add(real)
                found.append(_info_for_file(path))
    found += hf_cache_models()
    return found


# -- resolving a reference -----------------------------------------------------------------------
def resolve_model(ref: str) -> ModelInfo:
    """Turn a model reference (path or cached repo id) into a `ModelInfo`, or `ModelLoadError`."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(f"{path}: missing file model_index.json (not a diffusers model folder)")
        return _info_for_folder(path, "diffusers", str(path), path.name)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES or suffix == ".safetensors":
            return _info_for_file(path)
        raise ModelLoadError(f"{path}: not a model file (expected a .safetensors checkpoint or a diffusers folder)")
    if ref.count("/") == 1 and not path.is_absolute():
        repo_dir = hf_cache_dir() / ("models--" + ref.replace("/", "--"))
        snap = _hf_snapshot(repo_dir) if repo_dir.is_dir() else None
        if snap is not None:
            return _info_for_folder(snap, "hf_cache", ref, ref)
        raise ModelLoadError(f"{ref} is not in the Hugging Face cache ({hf_cache_dir()}) and nothing is downloaded: "
                             "download it once with huggingface-cli, or give a folder or .safetensors path")
    raise ModelLoadError(f"model not found: {ref} (no such file or folder; models folders: "
                         + ", ".join(str(d) for d in models_dirs()) + ")")


# -- the shipped tokenizer and configs -----------------------------------------------------------
def shipped_config_dir() -> Path:
    return resources_dir() / "sd15"


def byte_symbols() -> list[str]:
    """GPT-2's reversible byte → printable-unicode table (the one CLIP's BPE uses), in CLIP's
    vocabulary order: the printable bytes first, then the others mapped above U+0100."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


@functools.lru_cache(maxsize=1)
def _clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's 49408-token vocabulary built from the shipped merges exactly as CLIP's
    SimpleTokenizer builds it (bytes, bytes+</w>, one token per merge, start/end)."""
    text = gzip.decompress((resources_dir() / "clip_tokenizer" / "merges.txt.gz").read_bytes()).decode("utf-8")
    merges = [tuple(line.split()) for line in text.split("\n")[1:] if line]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def load_clip_tokenizer():
    """The SD 1.x CLIP tokenizer from the shipped resources (no network)."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _shape(header: dict, key: str) -> list[int]:
    return header[key]["shape"]


def derive_single_file_config(header: dict, out_dir: Path) -> Path:
    """Write a diffusers config folder for an original-layout checkpoint: the shipped SD 1.5
    configs with the sizes the checkpoint's own tensors show (in_channels 9 for inpainting,
    widths, depths). For a real SD 1.5 file this reproduces the published configs exactly."""
    src = shipped_config_dir()
    shutil.copytree(src, out_dir, dirs_exist_ok=True)
    keys = [k for k in header if k != "__metadata__"]

    unet = json.loads((src / "unet" / "config.json").read_text())
    conv_in = _shape(header, f"{UNET}input_blocks.0.0.weight")
    unet["in_channels"] = conv_in[1]
    inputs = {int(k[len(UNET) + 13:].split(".")[0]) for k in keys if k.startswith(UNET + "input_blocks.")}
    downs = sorted(i for i in inputs if f"{UNET}input_blocks.{i}.0.op.weight" in header)
    levels = len(downs) + 1
    layers = (downs[0] - 1) if downs else max(inputs)
    widths, down_types = [], []
    for level in range(levels):
        first = level * (layers + 1) + 1
        widths.append(_shape(header, f"{UNET}input_blocks.{first}.0.out_layers.3.weight")[0])
        attn = any(k.startswith(f"{UNET}input_blocks.{first}.1.") for k in keys)
        down_types.append("CrossAttnDownBlock2D" if attn else "DownBlock2D")
    up_types = []
    for level in range(levels):
        first = level * (layers + 1)
        attn = any(k.startswith(f"{UNET}output_blocks.{first}.1.") and ".1.conv." not in k for k in keys)
        up_types.append("CrossAttnUpBlock2D" if attn else "UpBlock2D")
    to_k = next((k for k in keys if k.startswith(UNET) and k.endswith("attn2.to_k.weight")), None)
    unet.update(block_out_channels=widths, layers_per_block=layers, down_block_types=down_types, up_block_types=up_types)
    if to_k:
        unet["cross_attention_dim"] = _shape(header, to_k)[1]
    (out_dir / "unet" / "config.json").write_text(json.dumps(unet, indent=2))

    vae = json.loads((src / "vae" / "config.json").read_text())
    vlevels = sorted({int(k.split(".")[3]) for k in keys if k.startswith(VAE + "encoder.down.")})
    vblocks = {int(k.split(".")[5]) for k in keys if k.startswith(VAE + "encoder.down.0.block.")}
    vae["block_out_channels"] = [_shape(header, f"{VAE}encoder.down.{i}.block.0.conv1.weight")[0] for i in vlevels]
    vae["layers_per_block"] = len(vblocks)
    vae["down_block_types"] = ["DownEncoderBlock2D"] * len(vlevels)
    vae["up_block_types"] = ["UpDecoderBlock2D"] * len(vlevels)
    vae["latent_channels"] = _shape(header, f"{VAE}quant_conv.weight")[0] // 2
    (out_dir / "vae" / "config.json").write_text(json.dumps(vae, indent=2))

    text = json.loads((src / "text_encoder" / "config.json").read_text())
    vocab, hidden = _shape(header, f"{CLIP}text_model.embeddings.token_embedding.weight")
    text["vocab_size"], text["hidden_size"] = vocab, hidden
    text["max_position_embeddings"] = _shape(header, f"{CLIP}text_model.embeddings.position_embedding.weight")[0]
    text["intermediate_size"] = _shape(header, f"{CLIP}text_model.encoder.layers.0.mlp.fc1.weight")[0]
    text["num_hidden_layers"] = len({k.split(".")[5] for k in keys if k.startswith(CLIP + "text_model.encoder.layers.")})
    # Head count is not visible in the weights. Every real CLIP text encoder uses 64-wide heads
    # (768 → 12); toy test models (width 32) use 8-wide heads as diffusers' own tiny models do.
    text["num_attention_heads"] = hidden // 64 if hidden % 64 == 0 else max(1, hidden // 8)
    (out_dir / "text_encoder" / "config.json").write_text(json.dumps(text, indent=2))
    return out_dir


# -- loading -------------------------------------------------------------------------------------
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
    except (OSError, ValueError, KeyError, RuntimeError, EnvironmentError) as exc:
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


def load_backend(model_ref: str, device: str | None = None, *, low_memory: bool = False, allow_pickle: bool = False,
                 fast: bool | None = None, safety_checker: bool = False):
    """A ready backend for ``model_ref``: `ClassicalBackend` for builtin:*, else a
    `DiffusionBackend` with the model loaded on ``device`` (auto when None). Offline only.
    ``fast``: CUDA fast path (channels_last, fused QKV); None = on for CUDA."""
    if model_ref in CLASSICAL_MODELS:
        from app.inference.classical import ClassicalBackend

        return ClassicalBackend(model_ref)
    info = resolve_model(model_ref)
    is_pickle = info.path is not None and info.path.is_file() and info.path.suffix.lower() in PICKLE_SUFFIXES
    if is_pickle and not allow_pickle:
        raise PickleRefusedError(_pickle_refusal(info.path))
    if info.family in ("sdxl", "sd2", "other"):
        raise UnsupportedModelError(f"{info.ref}: {info.note}")
    if info.note and not is_pickle:
        raise ModelLoadError(f"{info.ref}: {info.note}")
    # torch and diffusers only now: refusing a model must be instant and run nothing.
    from app.inference.device import choose_device
    from app.inference.diffusion import DiffusionBackend

    choice = choose_device(device)
    t0 = time.perf_counter()
    pipe = load_pipeline(info, choice, allow_pickle=allow_pickle)
    if info.inpainting is None:  # a pickle file: known only now
        info = ModelInfo(info.name, info.ref, info.kind, info.path, pipe.unet.config.in_channels == 9, SD1)
    load_s = time.perf_counter() - t0
    log.info("loaded %s on %s in %.2f s", info.ref, choice.description, load_s)
    return DiffusionBackend(pipe, info=info, device=choice, load_seconds=load_s, low_memory=low_memory,
                            fast=fast, safety_checker=safety_checker)
