"""ControlNet model files: where they are, what each one is, how a unit's ``model`` resolves,
and loading one offline.

Looked for (torch-free, from JSON configs and safetensors headers only): ``ControlNet/`` under
every models folder, an A1111/Forge install's ``models/ControlNet`` (and the extension's old
``extensions/sd-webui-controlnet/models``), and ControlNet repos in the Hugging Face cache.
A model is a diffusers folder (``config.json`` of a ``ControlNetModel``) or one file in either
layout: the original one (``control_model.*`` / ``input_hint_block.*`` keys, as lllyasviel's
``control_v11p_sd15_canny.safetensors``) or diffusers' keys. A single file gets its diffusers
config from its own tensor shapes (`derive_config`), so nothing is fetched from the hub.
Pickle files (``.pth``/``.ckpt``/``.bin``) are listed but load only with ``allow_pickle``, and
then with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.inference.diffusers.catalog import (PICKLE_SUFFIXES, ENTRY_ERRORS, hf_snapshot, _read_json, a1111_root,
                                             hf_cache_dir, models_dirs, safetensors_header, truncation)
from app.inference.errors import ModelLoadError, PickleRefusedError, UnsupportedModelError

FOLDER = "ControlNet"
LDM_PREFIX = "control_model."
#: What a unit's control type (its preprocessor) looks for in a model's name when none is given.
NAME_HINTS = {"canny": ("canny",), "softedge": ("softedge", "hed", "pidi"), "scribble": ("scribble",),
              "lineart": ("lineart",), "tile": ("tile",), "blur": ("tile", "blur"), "inpaint": ("inpaint",),
              "depth": ("depth",), "openpose": ("openpose", "pose"), "mlsd": ("mlsd",), "normal": ("normal",),
              "seg": ("seg",), "shuffle": ("shuffle",)}
_HASH_SUFFIX = re.compile(r"^(.*?)\s*\[[0-9a-fA-F]{6,64}\]$")


@dataclass(frozen=True)
class ControlNetInfo:
    name: str  # what A1111 shows and infotext writes: the file stem or folder name
    path: Path
    kind: str  # "diffusers" | "single_file" | "hf_cache"
    note: str = ""  # why it cannot be used

    @property
    def usable(self) -> bool:
        return not self.note

    @property
    def ref(self) -> str:
        return str(self.path)


def controlnet_dirs() -> list[Path]:
    """``ControlNet/`` under every models folder, then the A1111 install's ControlNet folders."""
    dirs = [d / FOLDER for d in models_dirs()]
    if (root := a1111_root()) is not None:
        dirs += [root / "models" / FOLDER, root / "extensions" / "sd-webui-controlnet" / "models"]
    return list(dict.fromkeys(dirs))


# -- what a file or folder is (no torch) -----------------------------------------------------------
def _strip(header: dict) -> dict:
    """The ControlNet's own tensors, without the original layout's ``control_model.`` prefix."""
    keys = [k for k in header if k != "__metadata__"]
    if any(k.startswith(LDM_PREFIX) for k in keys):
        return {k[len(LDM_PREFIX):]: header[k] for k in keys if k.startswith(LDM_PREFIX)}
    return {k: header[k] for k in keys}


def inspect_header(header: dict) -> str:
    """Why this file is not an SD 1.x ControlNet ("" when it is one)."""
    state = _strip(header)
    keys = list(state)
    ldm = "input_hint_block.0.weight" in state
    if not ldm and "controlnet_cond_embedding.conv_in.weight" not in state:
        if any("lora" in k.lower() for k in keys):
            return "a LoRA, not a ControlNet"
        if any(k.startswith("model.diffusion_model.") for k in keys):
            return "a Stable Diffusion checkpoint, not a ControlNet: put it in the models folder"
        return "not a ControlNet (no input_hint_block / controlnet_cond_embedding tensors)"
    if "label_emb.0.0.weight" in state or any(k.startswith("add_embedding.") for k in keys):
        return "made for SDXL; this editor runs SD 1.x ControlNets"
    to_k = next((k for k in keys if k.endswith("attn2.to_k.weight")), None)
    if to_k is not None and state[to_k]["shape"][-1] in (1024, 1280, 2048):
        return f"made for a {state[to_k]['shape'][-1]}-wide text encoder (SD 2.x/SDXL); this editor runs SD 1.x ControlNets"
    return ""


def _info_for_file(path: Path) -> ControlNetInfo:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return ControlNetInfo(path.stem, path, "single_file")  # read only with allow_pickle (`preflight`)
    try:
        note = inspect_header(safetensors_header(path)) or truncation(path)
    except ModelLoadError as exc:
        note = str(exc)
    return ControlNetInfo(path.stem, path, "single_file", note)


def _is_controlnet_folder(folder: Path) -> bool:
    config = folder / "config.json"
    if not config.is_file():
        return False
    try:
        return _read_json(config).get("_class_name") == "ControlNetModel"
    except ModelLoadError:
        return False


def _info_for_folder(folder: Path, kind: str, name: str) -> ControlNetInfo:
    config = _read_json(folder / "config.json")
    cross = config.get("cross_attention_dim")
    note = ""
    if cross in (1024, 1280, 2048) or config.get("addition_embed_type"):
        note = "made for SD 2.x/SDXL; this editor runs SD 1.x ControlNets"
    elif not any(p.name.startswith("diffusion_pytorch_model.") for p in folder.iterdir()):
        note = "no weights (diffusion_pytorch_model.safetensors) in this folder: an unfinished download?"
    return ControlNetInfo(name, folder, kind, note)


def _entry(path: Path) -> ControlNetInfo | None:
    if path.is_dir():
        return _info_for_folder(path, "diffusers", path.name) if _is_controlnet_folder(path) else None
    if path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES) and path.is_file():
        return _info_for_file(path)
    return None


def discover_controlnets() -> list[ControlNetInfo]:
    """Every ControlNet in `controlnet_dirs` and the Hugging Face cache; one that cannot be used
    is listed with its reason, and one bad entry never hides the others."""
    found: list[ControlNetInfo] = []
    seen: set[Path] = set()
    for base in controlnet_dirs():
        try:
            entries = sorted(base.iterdir()) if base.is_dir() else []
        except OSError:
            continue
        for path in entries:
            try:
                real = path.resolve()
                if real in seen:
                    continue
                info = _entry(path)
            except ENTRY_ERRORS as exc:  # a link loop, an unreadable entry: listed with why
                real, info = path, ControlNetInfo(path.stem, path, "single_file", f"cannot be read ({exc})")
            if info is not None:
                seen.add(real)
                found.append(info)
    found += _hf_cache_controlnets()
    return found


def _hf_cache_controlnets() -> list[ControlNetInfo]:
    cache = hf_cache_dir()
    found = []
    for repo_dir in sorted(cache.glob("models--*")) if cache.is_dir() else ():
        try:
            snap = hf_snapshot(repo_dir)
            if snap is not None and _is_controlnet_folder(snap):
                repo_id = repo_dir.name[len("models--"):].replace("--", "/", 1)
                found.append(_info_for_folder(snap, "hf_cache", repo_id))
        except (ModelLoadError, *ENTRY_ERRORS):
            continue
    return found


# -- resolving a unit's model ----------------------------------------------------------------------
def plain_name(ref: str) -> str:
    """A1111 names a ControlNet ``name [hash]``: the name alone."""
    m = _HASH_SUFFIX.match(ref.strip())
    return m.group(1) if m else ref.strip()


def resolve(ref: str, *, allow_paths: bool = True) -> ControlNetInfo:
    """The ControlNet ``ref`` names: a path (when ``allow_paths``; a server's clients may only
    name what it lists), a name in the ControlNet folders (``name [hash]`` as A1111 writes it),
    or a Hugging Face id in the cache. `ModelLoadError` says where it looked."""
    name = plain_name(ref)
    path = Path(name).expanduser()
    if allow_paths and path.exists():
        info = _entry(path)
        if info is None:
            raise ModelLoadError(f"{path}: not a ControlNet (a diffusers folder with a ControlNetModel config.json, "
                                 "or a .safetensors file)")
        return info
    candidates = [i for i in discover_controlnets() if name in (i.name, i.path.name)]
    if candidates:
        return next((i for i in candidates if i.usable), candidates[0])
    raise ModelLoadError(f"ControlNet {ref!r} not found: put it (a .safetensors file or a diffusers folder) in one of "
                         + ", ".join(str(d) for d in controlnet_dirs()) + ", or download it into the Hugging Face cache")


def find_for_module(module: str) -> ControlNetInfo:
    """The first usable ControlNet whose name says it reads ``module``'s images
    (``control_v11p_sd15_canny`` for canny), or `ModelLoadError` saying none is installed."""
    hints = NAME_HINTS.get(module)
    if hints:
        for info in discover_controlnets():
            if info.usable and any(h in info.name.lower() for h in hints):
                return info
    raise ModelLoadError(f"no ControlNet model for {module!r} found: put one whose name holds "
                         f"{' or '.join(hints or (module,))!r} (e.g. control_v11p_sd15_{(hints or (module,))[0]}"
                         f".safetensors) in one of {', '.join(str(d) for d in controlnet_dirs())}, or name a model")


def preflight(ref: str, allow_pickle: bool, *, allow_paths: bool = True) -> ControlNetInfo:
    """Resolve and refuse what cannot load, torch-free (a pickle file without ``allow_pickle``)."""
    info = resolve(ref, allow_paths=allow_paths)
    if info.note:
        raise UnsupportedModelError(f"ControlNet {info.name}: {info.note}")
    if info.path.is_file() and info.path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise PickleRefusedError(f"ControlNet {info.path.name} is a pickle file: loading it could run arbitrary code. "
                                 "Use its .safetensors version, or allow pickle files only if you trust its source.")
    return info


def short_hash(info: ControlNetInfo) -> str:
    """A1111's 8-hex model hash (sha256 of 64 KB from offset 1 MB), which its ControlNet extension
    writes after the name; of the weights file for a folder."""
    path = info.path
    if path.is_dir():
        path = next((p for p in sorted(path.iterdir()) if p.name.startswith("diffusion_pytorch_model.")), path)
    try:
        with open(path, "rb") as fh:
            fh.seek(0x100000)
            return hashlib.sha256(fh.read(0x10000)).hexdigest()[:8]
    except OSError:
        return "NOFILE"


# -- loading (torch) -------------------------------------------------------------------------------
def derive_config(header: dict) -> dict:
    """A diffusers ``ControlNetModel`` config from a single file's tensor shapes (either layout):
    widths, depth, attention levels, text width, the hint encoder's channels. For a real SD 1.5
    ControlNet this is its published config."""
    state = _strip(header)
    shape = lambda key: state[key]["shape"]  # noqa: E731
    if "input_hint_block.0.weight" in state:
        inputs = {int(k.split(".")[1]) for k in state if k.startswith("input_blocks.")}
        downs = sorted(i for i in inputs if f"input_blocks.{i}.0.op.weight" in state)
        layers = (downs[0] - 1) if downs else max(inputs)
        widths, types = [], []
        for level in range(len(downs) + 1):
            first = level * (layers + 1) + 1
            widths.append(shape(f"input_blocks.{first}.0.out_layers.3.weight")[0])
            attn = any(k.startswith(f"input_blocks.{first}.1.") for k in state)
            types.append("CrossAttnDownBlock2D" if attn else "DownBlock2D")
        hint = sorted(int(k.split(".")[1]) for k in state if k.startswith("input_hint_block.") and k.endswith(".weight"))
        embed = [shape(f"input_hint_block.{hint[0]}.weight")[0]]
        embed += [shape(f"input_hint_block.{i}.weight")[0] for i in hint[1:-1][1::2]]
        in_channels = shape("input_blocks.0.0.weight")[1]
        cond_channels = shape("input_hint_block.0.weight")[1]
    else:
        levels = sorted({int(k.split(".")[1]) for k in state if k.startswith("down_blocks.")})
        layers = len({k.split(".")[3] for k in state if k.startswith("down_blocks.0.resnets.")})
        widths = [shape(f"down_blocks.{i}.resnets.0.conv2.weight")[0] for i in levels]
        types = ["CrossAttnDownBlock2D" if any(k.startswith(f"down_blocks.{i}.attentions.") for k in state)
                 else "DownBlock2D" for i in levels]
        blocks = sorted({int(k.split(".")[2]) for k in state if k.startswith("controlnet_cond_embedding.blocks.")})
        embed = [shape("controlnet_cond_embedding.conv_in.weight")[0]]
        embed += [shape(f"controlnet_cond_embedding.blocks.{i}.weight")[0] for i in blocks[1::2]]
        in_channels = shape("conv_in.weight")[1]
        cond_channels = shape("controlnet_cond_embedding.conv_in.weight")[1]
    to_k = next(k for k in state if k.endswith("attn2.to_k.weight"))
    return {"_class_name": "ControlNetModel", "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": widths,
            "conditioning_channels": cond_channels, "conditioning_embedding_out_channels": embed,
            "controlnet_conditioning_channel_order": "rgb", "cross_attention_dim": shape(to_k)[-1],
            "down_block_types": types, "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0,
            "in_channels": in_channels, "layers_per_block": layers, "mid_block_scale_factor": 1, "norm_eps": 1e-5,
            "norm_num_groups": 32}


def load_controlnet(info: ControlNetInfo, dtype, allow_pickle: bool = False):
    """The `diffusers.ControlNetModel` in ``info``, offline, in ``dtype`` (on the CPU)."""
    from diffusers import ControlNetModel

    try:
        if info.path.is_dir():
            variant = "fp16" if not (info.path / "diffusion_pytorch_model.safetensors").is_file() and \
                (info.path / "diffusion_pytorch_model.fp16.safetensors").is_file() else None
            return ControlNetModel.from_pretrained(str(info.path), local_files_only=True, torch_dtype=dtype,
                                                   use_safetensors=not allow_pickle, variant=variant)
        state = _read_state(info.path, allow_pickle)
        header = {k: {"shape": list(v.shape)} for k, v in state.items()}
        with tempfile.TemporaryDirectory(prefix="inpaint-studio-controlnet-") as tmp:
            (Path(tmp) / "config.json").write_text(json.dumps(derive_config(header)))
            return ControlNetModel.from_single_file(state, config=tmp, local_files_only=True, torch_dtype=dtype)
    except (ModelLoadError, PickleRefusedError):
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, StopIteration) as exc:
        raise ModelLoadError(f"ControlNet {info.name}: could not be loaded ({type(exc).__name__}: {exc})") from exc


def _read_state(path: Path, allow_pickle: bool) -> dict:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise PickleRefusedError(f"ControlNet {path.name} is a pickle file: loading it could run arbitrary code.")
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True)
        return state.get("state_dict", state)
    from safetensors.torch import load_file

    return load_file(str(path))


def listing() -> list[dict]:
    """Rows for ``inpaint-studio models``."""
    return [dataclasses.asdict(i) | {"path": str(i.path), "usable": i.usable} for i in discover_controlnets()]
