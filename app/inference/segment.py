"""Select by click: Segment Anything through transformers' `SamModel` / `SamProcessor`.

SAM splits into a heavy image encoder and a light prompt/mask decoder. `ClickSegmenter` runs the
encoder once per image (`prepare`, meant for a worker thread) and keeps the embedding, so each
click (`segment`) only runs the decoder: milliseconds instead of seconds. Models are found like
the others: a folder under ``sam/`` in a models folder (`catalog.models_dirs`), read offline
(``local_files_only``); nothing is downloaded. torch and transformers are imported lazily, so
importing this module costs nothing and works without them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.inference.diffusers.catalog import models_dirs
from app.inference.errors import ModelLoadError

SAM_SUBDIR = "sam"


class SamNotInstalledError(ModelLoadError):
    """No SAM model in any models folder."""

    title = "No Segment Anything model"


def sam_dirs() -> list[Path]:
    return [d / SAM_SUBDIR for d in models_dirs()]


def _is_sam_folder(path: Path) -> bool:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "sam"


def find_sam_models() -> list[Path]:
    """Every SAM folder (config.json with model_type "sam") in ``sam/`` or directly below it."""
    found = []
    for base in sam_dirs():
        candidates = [base] + (sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else [])
        found += [p for p in candidates if _is_sam_folder(p)]
    return found


def default_sam_model() -> Path:
    """The first installed SAM model, or `SamNotInstalledError` saying where to put one."""
    models = find_sam_models()
    if not models:
        where = ", ".join(str(d) for d in sam_dirs())
        raise SamNotInstalledError(
            "Select by click needs a Segment Anything model, and none is installed. Put a transformers "
            f"SAM folder (e.g. facebook/sam-vit-base: config.json, model.safetensors, preprocessor_config.json) in {where}."
        )
    return models[0]


def image_key(image: np.ndarray) -> str:
    """Identity of an image's content (the embedding cache key)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((image.shape, image.dtype.str)).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


@dataclass
class _Embedding:
    key: str
    value: object  # torch tensor (1, C, h, w)
    size: tuple[int, int]  # (height, width) of the image
    work: tuple[int, int]  # (height, width) of the copy the encoder saw


class ClickSegmenter:
    """One SAM model, loaded on first use, with the embedding of the last image prepared.

    Thread use: `prepare` and `segment` may run on any one worker thread at a time (a lock keeps
    a click from racing an embedding); nothing here touches Qt.
    """

    def __init__(self, path: str | Path | None = None, device: str | None = None) -> None:
        self.path = Path(path) if path is not None else default_sam_model()
        self._device_override = device
        self._model = None
        self._processor = None
        self._device = "cpu"
        self._embedding: _Embedding | None = None
        self._lock = threading.Lock()
        self.embeddings_computed = 0  # how many times the encoder ran (tests, bench)

    # -- loading ----------------------------------------------------------------------------------
    def load(self) -> None:
        """Load model and processor from ``self.path`` (offline). Idempotent."""
        if self._model is not None:
            return
        try:
            import torch  # noqa: F401
            from transformers import SamModel, SamProcessor
        except ImportError as exc:
            raise ModelLoadError(f"Select by click needs torch and transformers ({exc}); install the 'diffusion' extra.") from None
        from app.inference.diffusers.device import choose_device

        try:
            processor = SamProcessor.from_pretrained(str(self.path), local_files_only=True)
            model = SamModel.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as exc:
            detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ModelLoadError(f"The SAM model in {self.path} cannot be loaded ({detail}); reinstall it.") from None
        self._device = choose_device(self._device_override, "fp32").device
        self._model = model.to(self._device).eval()
        self._processor = processor

    @property
    def _longest_edge(self) -> int:
        size = getattr(self._processor.image_processor, "size", None) or {}
        return int(size.get("longest_edge", 1024)) if isinstance(size, dict) else int(getattr(size, "longest_edge", 1024))

    # -- the image encoder (slow, once per image) -------------------------------------------------
    def prepare(self, image: np.ndarray, key: str | None = None) -> bool:
        """Compute the embedding of ``image`` (visible 8-bit RGB/RGBA/gray) unless it is the one
        held already. Returns True if the encoder ran. ``key`` skips hashing the pixels."""
        key = key or image_key(image)
        with self._lock:
            if self._embedding is not None and self._embedding.key == key:
                return False
            self.load()
            import torch

            rgb = _rgb(image)
            h, w = rgb.shape[:2]
            scale = self._longest_edge / max(h, w)
            work = (max(1, round(h * scale)), max(1, round(w * scale)))
            small = cv2.resize(rgb, work[::-1], interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            inputs = self._processor(images=small, return_tensors="pt")
            with torch.inference_mode():
                value = self._model.get_image_embeddings(inputs["pixel_values"].to(self._device))
            self._embedding = _Embedding(key, value, (h, w), work)
            self.embeddings_computed += 1
            return True

    # -- the decoder (fast, per click) ------------------------------------------------------------
    def segment(self, points: list[tuple[float, float, int]], image: np.ndarray | None = None, key: str | None = None) -> np.ndarray:
        """H×W bool mask for clicks ``(x, y, label)`` in image pixels (label 1 = object, 0 =
        background). ``image``/``key`` prepare first when the held embedding is not theirs; with a
        ``key`` that matches the held embedding the image is neither needed nor hashed."""
        held = self._embedding
        if image is not None and (key is None or held is None or held.key != key):
            self.prepare(image, key)
        elif key is not None and (held is None or held.key != key):
            raise RuntimeError("the image changed since it was prepared; pass the image again")
        if not points:
            raise ValueError("select by click needs at least one click on the image.")
        with self._lock:
            emb = self._embedding
            if emb is None:
                raise RuntimeError("segment() before prepare(): no image embedding")
            import torch

            (h, w), (wh, ww) = emb.size, emb.work
            xy = torch.tensor([[[[x * ww / w, y * wh / h] for x, y, _ in points]]], dtype=torch.float32)
            labels = torch.tensor([[[int(lbl) for _, _, lbl in points]]], dtype=torch.long)
            with torch.inference_mode():
                out = self._model(
                    image_embeddings=emb.value, input_points=xy.to(self._device), input_labels=labels.to(self._device), multimask_output=True
                )
            sizes = torch.tensor([[wh, ww]])
            logits = self._processor.image_processor.post_process_masks(out.pred_masks.cpu(), sizes, sizes, binarize=False)[0][0]
            best = int(out.iou_scores[0, 0].argmax())
            chosen = logits[best].float().numpy()
        return cv2.resize(chosen, (w, h), interpolation=cv2.INTER_LINEAR) > 0.0


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"select by click works on the visible 8-bit image, not {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[:, :, :3])
