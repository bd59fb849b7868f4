"""Reference images: an IP-Adapter on the loaded model, through diffusers' own loader, offline.

Where the files live (first match wins):
- the adapter (``params.reference.model``: a path, or a file name/stem) in ``ipadapter/``,
  ``ip-adapter/`` or ``ControlNet/`` under every models folder, and in an A1111 install's
  ``models/ControlNet`` and ``models/ipadapter`` (where the ControlNet extension's
  ``ip-adapter_sd15.*`` usually lies);
- its image encoder, a transformers ``CLIPVisionModelWithProjection`` folder (config.json plus
  weights; h94/IP-Adapter's ``models/image_encoder``): ``image_encoder/`` beside the adapter file,
  then every folder under ``clip_vision/`` of the models folders / the A1111 install whose
  projection width fits the adapter. A1111's single-file ``clip_h.pth`` has no config, so it is
  not read: put the encoder folder in ``clip_vision/``.

Weights are read as checkpoints are: ``.safetensors`` directly, ``.bin``/``.pt``/``.pth`` only with
``torch.load(weights_only=True)`` (a pickle holding code is refused). The state dict goes to
``pipe.load_ip_adapter`` as a dict, with the encoder registered on the pipelines first, so
diffusers never looks for a hub repository. Weight 0 is the same as no reference: the adapter
is taken off (tests prove a loaded adapter at scale 0 gives the same pixels bit for bit).
"""

from __future__ import annotations

from pathlib import Path

import torch

from app.inference.diffusers.catalog import a1111_root, models_dirs
from app.inference.errors import ModelLoadError

ADAPTER_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def adapter_dirs() -> list[Path]:
    dirs = [d / sub for d in models_dirs() for sub in ("ipadapter", "ip-adapter", "ControlNet")]
    if (root := a1111_root()) is not None:
        dirs += [root / "models" / "ControlNet", root / "models" / "ipadapter"]
    return dirs


def encoder_dirs() -> list[Path]:
    dirs = [d / "clip_vision" for d in models_dirs()]
    if (root := a1111_root()) is not None:
        dirs.append(root / "models" / "clip_vision")
    return dirs


def find_adapter(ref: str) -> Path:
    """The adapter file ``ref`` names: a path, or a file name or stem in `adapter_dirs`."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    for folder in adapter_dirs():
        for suffix in ("",) + ADAPTER_SUFFIXES:
            candidate = folder / (ref + suffix)
            if candidate.is_file() and candidate.suffix.lower() in ADAPTER_SUFFIXES:
                return candidate
    raise ModelLoadError(f"IP-Adapter '{ref}' not found: give a path, or put the file in one of "
                         + ", ".join(str(d) for d in adapter_dirs()))


def read_adapter(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``{"image_proj": {...}, "ip_adapter": {...}}`` from either layout: flat prefixed keys
    (.safetensors, as diffusers and A1111 save them) or the nested dict of the original .bin."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            flat = load_file(str(path))
            state: dict = {"image_proj": {}, "ip_adapter": {}}
            for key, value in flat.items():
                part, _, rest = key.partition(".")
                if part in state:
                    state[part][rest] = value
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file, or a pickle holding code: one clear line either way
        raise ModelLoadError(f"{path}: not a readable IP-Adapter ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from exc
    if not isinstance(state, dict) or not state.get("image_proj") or not state.get("ip_adapter"):
        raise ModelLoadError(f"{path}: not an IP-Adapter (expected image_proj and ip_adapter weights)")
    return state


def embedding_width(state: dict) -> int | None:
    """The image-embedding width the adapter's projection reads (the encoder's projection_dim)."""
    proj = state["image_proj"].get("proj.weight")
    return int(proj.shape[-1]) if proj is not None else None


def find_encoder(adapter: Path, width: int | None) -> Path:
    """The image-encoder folder for ``adapter`` (see the module notes)."""
    from app.inference.diffusers.catalog import _read_json

    candidates = [adapter.parent / "image_encoder"]
    for folder in encoder_dirs():
        if folder.is_dir():
            candidates += sorted(p for p in folder.iterdir() if p.is_dir())
    for folder in candidates:
        if not (folder / "config.json").is_file():
            continue
        config = _read_json(folder / "config.json")
        if width is None or config.get("projection_dim") == width:
            return folder
    raise ModelLoadError(f"no image encoder for IP-Adapter {adapter.name}: put a CLIPVisionModelWithProjection "
                         f"folder (config.json + weights{f', projection_dim {width}' if width else ''}) in "
                         + ", ".join(str(d) for d in encoder_dirs()))


class ReferenceAdapter:
    """The IP-Adapter state of one backend: which adapter is on the (shared) UNet, at what scale."""

    def __init__(self, pipes: dict, device, dtype):
        self.pipes, self.device, self.dtype = pipes, device, dtype
        self.loaded: str | None = None
        self.scale = 0.0
        self._processors = None

    @property
    def active(self) -> bool:
        return self.loaded is not None

    @property
    def state(self) -> tuple:
        """What the UNet's graph depends on (a compiled step is kept per state)."""
        return (self.loaded, self.scale)

    def apply(self, reference) -> None:
        """Make the pipelines match ``reference`` (a `Reference` or None): load, swap, rescale or
        take off the adapter. Weight 0 takes it off."""
        if reference is None or reference.weight == 0:
            self.unload()
            return
        path = str(find_adapter(reference.model).resolve())
        if path != self.loaded:
            self.unload()
            self._load(Path(path))
        self.scale = float(reference.weight)
        self.pipes["inpaint"].set_ip_adapter_scale(self.scale)

    def _load(self, path: Path) -> None:
        from transformers import CLIPVisionModelWithProjection

        state = read_adapter(path)
        folder = find_encoder(path, embedding_width(state))
        try:
            encoder = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True, dtype=self.dtype)
        except Exception as exc:
            raise ModelLoadError(f"{folder}: not a loadable image encoder ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from exc
        encoder.to(self.device)
        pipe = self.pipes["inpaint"]
        self._processors = dict(pipe.unet.attn_processors)  # fused/sliced ones come back on unload
        for each in self.pipes.values():
            each.register_modules(image_encoder=encoder)
        try:
            pipe.load_ip_adapter(state, subfolder=None, weight_name=None, image_encoder_folder=None)
        except Exception as exc:
            self._restore()
            raise ModelLoadError(f"{path}: does not fit this model ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from exc
        for each in self.pipes.values():  # from_pipe copies made earlier share the UNet, not the module list
            each.register_modules(image_encoder=encoder, feature_extractor=pipe.feature_extractor)
        self.loaded = str(path)

    def unload(self) -> None:
        if self.loaded is None:
            return
        self.pipes["inpaint"].unload_ip_adapter()
        self._restore()
        self.loaded, self.scale = None, 0.0

    def _restore(self) -> None:
        pipe = self.pipes["inpaint"]
        pipe.unet.encoder_hid_proj = None
        pipe.unet.config.encoder_hid_dim_type = None
        if self._processors is not None:
            pipe.unet.set_attn_processor(self._processors)
        for each in self.pipes.values():
            each.register_modules(image_encoder=None)
