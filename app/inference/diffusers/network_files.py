"""LoRA and textual-inversion embedding files: where they live, what each one is (read from
safetensors headers, no torch) and A1111's short hashes of them, apart from the checkpoint
catalog because a run finds its networks by the names its prompt uses, not by a model ref.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from app.core.prompt_syntax import extract_loras
from app.inference.diffusers.catalog import SD1, ENTRY_ERRORS, real_path, a1111_root, models_dirs, safetensors_header
from app.inference.errors import ModelLoadError


def lora_dirs() -> list[Path]:
    """``Lora/`` under every models folder, and an A1111 install's models/Lora."""
    dirs = [d / "Lora" for d in models_dirs()]
    if (root := a1111_root()) is not None:
        dirs.append(root / "models" / "Lora")
    return dirs


def embedding_dirs() -> list[Path]:
    """``embeddings/`` under every models folder, and an A1111 install's embeddings/."""
    dirs = [d / "embeddings" for d in models_dirs()]
    if (root := a1111_root()) is not None:
        dirs.append(root / "embeddings")
    return dirs


# -- LoRAs and textual-inversion embeddings ------------------------------------------------------
#: Cross-attention (text) width of each family: a LoRA's attn2.to_k input or an embedding's vector.
CONTEXT_DIMS = {768: SD1, 1024: "sd2", 1280: "sdxl", 2048: "sdxl"}
FAMILY_NAMES = {SD1: "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}
LORA_SUFFIXES = (".safetensors",)
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")


@dataclass(frozen=True)
class NetworkInfo:
    """A LoRA or an embedding file. ``name`` is what a prompt uses (file stem); ``context_dim``
    the text width it was made for, when the header tells (else None)."""

    name: str
    path: Path
    kind: str  # "lora" | "embedding"
    context_dim: int | None = None
    note: str = ""  # why it cannot be used

    @property
    def usable(self) -> bool:
        return not self.note


def inspect_lora(header: dict) -> tuple[int | None, str]:
    """(context dim, reason-if-unusable) of a LoRA from its safetensors header: kohya names
    (lora_unet_…attn2_to_k.lora_down.weight), diffusers/peft names (…attn2.to_k.lora_A.weight)."""
    keys = [k for k in header if k != "__metadata__"]
    if any(k.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for k in keys):
        return 2048, "made for SDXL (two text encoders); this editor runs SD 1.x models"
    if not any("lora" in k.lower() for k in keys):
        return None, "not a LoRA (no lora_* tensors in the file)"
    for key in keys:
        if re.search(r"attn2[._]to_k\.(lora_down|lora_A|lora\.down)\.weight$", key):
            dim = header[key]["shape"][-1]
            family = CONTEXT_DIMS.get(dim)
            if family not in (None, SD1):
                return dim, f"made for {FAMILY_NAMES[family]} ({dim}-wide text); this editor runs SD 1.x models"
            return dim, ""
    return None, ""


def inspect_embedding(header: dict) -> tuple[int | None, str]:
    """(vector width, reason-if-unusable) of a .safetensors textual-inversion embedding."""
    if "clip_g" in header or "clip_l" in header:
        return 1280, "made for SDXL (clip_l/clip_g vectors); this editor runs SD 1.x models"
    shapes = [v["shape"] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if len(shapes) != 1:
        return None, f"not a textual-inversion embedding ({len(shapes)} tensors, expected one)"
    dim = shapes[0][-1]
    family = CONTEXT_DIMS.get(dim)
    if family not in (None, SD1):
        return dim, f"made for {FAMILY_NAMES[family]} ({dim}-wide vectors); this editor runs SD 1.x models"
    return dim, ""


#: Files looked at under the LoRA / embedding folders, at most (a link loop or a huge tree must
#: not make every run walk forever).
MAX_NETWORK_FILES = 20_000


def _network_files(dirs: list[Path], suffixes: tuple[str, ...]) -> list[Path]:
    """Files with ``suffixes`` under ``dirs`` and their subfolders (A1111 looks there too),
    linked folders followed once each (a link loop ends), sorted per folder."""
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[Path] = set()
    files: list[Path] = []
    stack = [base for base in reversed(dirs)]
    looked = 0
    while stack and looked < MAX_NETWORK_FILES:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen_dirs:
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            entries = sorted(folder.iterdir())
        except OSError:  # missing, unreadable or a link loop: nothing to list there
            continue
        subfolders = []
        for path in entries:
            looked += 1
            try:
                if path.is_dir():
                    subfolders.append(path)
                elif path.suffix.lower() in suffixes and path.is_file():
                    real = real_path(path)
                    if real not in seen_files:
                        seen_files.add(real)
                        files.append(path)
            except OSError:
                continue
        stack.extend(reversed(subfolders))
    return files


def _network_name(path: Path) -> str:
    """What a prompt calls the network in ``path``: its file stem, or its folder's name for the
    diffusers layout (``NAME/pytorch_lora_weights.safetensors``)."""
    return path.parent.name if path.name == "pytorch_lora_weights.safetensors" else path.stem


def _network_info(path: Path, kind: str) -> NetworkInfo:
    name = _network_name(path)
    if path.suffix.lower() != ".safetensors":
        return NetworkInfo(name, path, kind)  # a pickle, read later with torch.load(weights_only=True)
    try:
        header = safetensors_header(path)
        dim, note = (inspect_lora if kind == "lora" else inspect_embedding)(header)
    except ModelLoadError as exc:
        return NetworkInfo(name, path, kind, None, str(exc))
    except ENTRY_ERRORS as exc:  # a header of the wrong shape: this file is unusable, the others are fine
        return NetworkInfo(name, path, kind, None, f"{path}: not a readable {kind} ({type(exc).__name__}: {exc})")
    return NetworkInfo(name, path, kind, dim, note)


def discover_loras() -> list[NetworkInfo]:
    """LoRA files (.safetensors, kohya/A1111 or diffusers format) in `lora_dirs`."""
    return [_network_info(p, "lora") for p in _network_files(lora_dirs(), LORA_SUFFIXES)]


def discover_embeddings() -> list[NetworkInfo]:
    """Textual-inversion embeddings (.safetensors, .pt, .bin) in `embedding_dirs`."""
    return [_network_info(p, "embedding") for p in _network_files(embedding_dirs(), EMBEDDING_SUFFIXES)]


def find_lora(name: str) -> NetworkInfo:
    """The LoRA a ``<lora:name:…>`` tag means (first found), or `ModelLoadError` saying where we looked."""
    for info in discover_loras():
        if info.name == name:
            return info
    raise ModelLoadError(f"LoRA '{name}' not found: put {name}.safetensors in one of "
                         + ", ".join(str(d) for d in lora_dirs()))


def embeddings_in(*texts: str) -> list[NetworkInfo]:
    """The embeddings whose name appears as a word in any of ``texts`` (as A1111 matches them).
    Only those files are inspected: a broken file the prompt does not name costs a run nothing."""
    return [_network_info(path, "embedding") for path in _network_files(embedding_dirs(), EMBEDDING_SUFFIXES)
            if any(re.search(rf"(?<!\w){re.escape(_network_name(path))}(?!\w)", t) for t in texts)]


def network_hashes(prompt: str, negative_prompt: str) -> dict[str, str]:
    """A1111's infotext fields for the networks a run used: ``Lora hashes`` ("name: hash, …")
    for the prompt's LoRA tags and ``TI hashes`` for embeddings named in either prompt.
    Names A1111 could not write (with ":" or ",") lose those characters, as there."""
    def field(items) -> str:
        return ", ".join(f"{info.name.replace(':', '').replace(',', '')}: {_cached_hash(info)}" for info in items)

    loras = {}
    for tag in extract_loras(prompt)[1]:
        try:
            loras[tag.name] = find_lora(tag.name)
        except ModelLoadError:
            continue  # the run itself reports a missing LoRA
    # Both keys always, "" when unused: they replace a recalled run's values.
    return {"Lora hashes": field(loras.values()), "TI hashes": field(embeddings_in(prompt, negative_prompt))}


def missing_networks(prompt: str, embedding_names=()) -> list[str]:
    """One line per LoRA tagged in ``prompt`` and per embedding name (e.g. from a recalled
    "TI hashes" field) that has no usable file here: what recall tells the user."""
    lines = []
    loras = {info.name: info for info in discover_loras()}
    for tag in extract_loras(prompt)[1]:
        info = loras.get(tag.name)
        if info is None or info.note:
            lines.append(f"LoRA '{tag.name}' is " + (info.note if info else "not installed here (no Lora/" + tag.name + ".safetensors)"))
    embeddings = {info.name: info for info in discover_embeddings()}
    for name in embedding_names:
        info = embeddings.get(name)
        if info is None or info.note:
            lines.append(f"embedding '{name}' is " + (info.note if info else f"not installed here (no embeddings/{name}.pt or .safetensors)"))
    return lines


_HASHES: dict[tuple[str, float, int], str] = {}


def _cached_hash(info: NetworkInfo) -> str:
    stat = info.path.stat()
    key = (str(info.path), stat.st_mtime, stat.st_size)
    if key not in _HASHES:
        _HASHES[key] = short_hash(info.path, skip_safetensors_header=info.kind == "lora")
    return _HASHES[key]


def short_hash(path: Path, *, skip_safetensors_header: bool) -> str:
    """A1111's 12-hex short hash: sha256 of the file, or for a LoRA .safetensors of the tensor
    data after the header (the "addnet" hash A1111 uses for networks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if skip_safetensors_header and path.suffix.lower() == ".safetensors":
            (size,) = struct.unpack("<Q", fh.read(8))
            fh.seek(8 + size)
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
