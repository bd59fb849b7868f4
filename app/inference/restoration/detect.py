"""Finding faces for "restore faces" when the user selected none.

opencv-python-headless 5 ships no Haar cascade files, so the bundled detector is OpenCV's YuNet
(`cv2.FaceDetectorYN`, small, fast, Apache-2.0), which needs its ONNX file. We never download
it: a user puts ``face_detection_yunet_2023mar.onnx`` (from the OpenCV model zoo) in a models
folder's ``facedetection/`` sub-folder (ComfyUI-ReActor's and facexlib's name), or one of the
face-model folders A1111/ComfyUI users already have (GFPGAN, Codeformer, facerestore_models), or
torch hub's checkpoints folder (IOPaint's model cache).
Without one, `NoFaceDetector` says exactly that, and a selection still works.

A detector is any function RGB uint8 → face boxes (`FaceDetector`), so a front end or a test
can bring its own; `faces_mask` turns boxes into the mask `faces.restore_faces_in_mask` blends
with, so detected faces obey the same rule as painted ones: pixels outside each face's
feathered ellipse stay bit-identical.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from app.core import compositing
from app.core.errors import UserError
from app.core.geometry import Bounds
from app.inference.restoration import files

FaceDetector = Callable[[np.ndarray], list[Bounds]]

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
#: Sub-folders of a models folder (or an A1111 ``models/``) searched for a YuNet file (lower case).
FOLDERS = ("facedetection", "face_detection", "yunet", "gfpgan", "codeformer", "facerestore_models", "restoration")
#: YuNet finds faces from about 10 px up; larger inputs are shrunk to this long side first (a
#: 24 MP photo would take seconds at full size and its faces are still hundreds of pixels).
DETECT_SIDE = 1280
SCORE = 0.7  # the model zoo's default confidence
NMS = 0.3
#: Each detected box is grown by this share of its side before the ellipse is drawn: YuNet's box
#: runs from the brows to the chin, the restored face should reach the hairline and the jaw.
GROW = 0.15


class NoFaceDetector(UserError):
    """Not the request's fault: this machine lacks the detector's file."""

    title = "No face detector"
    bad_input = False

    def __init__(self, where: list[Path], why: str | None = None):
        if why is not None:
            super().__init__(why)
            return
        folders = ", ".join(str(root / "facedetection") for root in where) or "a models folder's facedetection/"
        super().__init__(
            f"no face detector: select the faces, or put {YUNET_FILE} (OpenCV's YuNet face detector, from the "
            f"OpenCV model zoo) in {folders}")

    @classmethod
    def unreadable(cls, path: Path, exc: Exception) -> NoFaceDetector:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        return cls([], f"{path.name} is not a face detector OpenCV can load ({detail}): use {YUNET_FILE} from the "
                       "OpenCV model zoo, or select the faces")


class NoFacesFound(UserError):
    title = "No faces found"

    def __init__(self) -> None:
        super().__init__("no faces were found in the image: select the faces to restore")


def find_yunet() -> Path | None:
    """The first YuNet ONNX file in the searched folders (`files.search_roots`' face folders,
    then torch hub's checkpoints folder, where IOPaint keeps the models it fetches), or None."""
    for folder in [*_face_folders(), torch_hub_checkpoints()]:
        try:
            found = sorted(p for p in folder.glob("*.onnx") if "yunet" in p.name.lower() and p.is_file())
        except OSError:
            continue
        if found:
            return found[0]
    return None


def _face_folders() -> list[Path]:
    folders = []
    for root in files.search_roots():
        try:
            here = [p for p in root.iterdir() if p.is_dir() and p.name.lower() in FOLDERS]
        except OSError:
            continue
        folders += sorted(here, key=lambda p: (FOLDERS.index(p.name.lower()), p.name))
    return folders


def torch_hub_checkpoints() -> Path:
    """torch.hub's download folder ($TORCH_HOME, else $XDG_CACHE_HOME/torch or ~/.cache/torch),
    without importing torch."""
    home = os.environ.get("TORCH_HOME")
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(home) / "hub" / "checkpoints"


def yunet(path: Path, score: float = SCORE) -> FaceDetector:
    """A detector from a YuNet ONNX file; `UserError` when OpenCV cannot load it."""
    try:
        net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score, NMS, 5000)
    except cv2.error as exc:
        raise NoFaceDetector.unreadable(path, exc) from None
    lock = threading.Lock()  # one OpenCV net is not safe to run from two threads at once

    def detect(rgb: np.ndarray) -> list[Bounds]:
        height, width = rgb.shape[:2]
        shrink = min(1.0, DETECT_SIDE / max(height, width))
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        small = rgb if shrink == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        with lock:
            net.setInputSize((small.shape[1], small.shape[0]))
            _, faces = net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        boxes = []
        for x, y, w, h in ([] if faces is None else faces[:, :4]):
            box = Bounds(int(round(x / shrink)), int(round(y / shrink)), int(round(w / shrink)), int(round(h / shrink)))
            box = box.clamp(width, height)
            if not box.is_empty:
                boxes.append(box)
        return boxes

    return detect


_cached: tuple[tuple[Path, int, int], FaceDetector] | None = None


def default_detector() -> FaceDetector:
    """YuNet from the first file found (kept while that file, unchanged, is the one found), else
    `NoFaceDetector`."""
    global _cached
    path = find_yunet()
    if path is None:
        raise NoFaceDetector(files.search_roots())
    st = path.stat()
    key = (path, st.st_size, st.st_mtime_ns)
    if _cached is None or _cached[0] != key:
        _cached = (key, yunet(path))
    return _cached[1]


def detection_input(pixels: np.ndarray) -> np.ndarray:
    """The document's pixels (gray/RGB/RGBA, 8/16 bit) as the RGB uint8 a detector takes."""
    compositing.check_pixels(pixels)
    rgb = pixels if pixels.dtype == np.uint8 else compositing.to_8bit(pixels)
    if rgb.ndim == 2 or rgb.shape[2] == 1:
        return cv2.cvtColor(rgb.reshape(rgb.shape[0], rgb.shape[1]), cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(rgb[:, :, :3])


def faces_mask(boxes: list[Bounds], height: int, width: int, grow: float = GROW) -> np.ndarray:
    """A selection (255 inside) with one filled ellipse per face box, grown by ``grow``."""
    mask = np.zeros((height, width), np.uint8)
    for box in boxes:
        centre = (int(round(box.x + box.width / 2)), int(round(box.y + box.height / 2)))
        axes = (max(1, int(round(box.width * (1 + grow) / 2))), max(1, int(round(box.height * (1 + grow) / 2))))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, thickness=-1)
    return mask


__all__ = ["FaceDetector", "NoFaceDetector", "NoFacesFound", "YUNET_FILE", "default_detector", "detection_input",
           "faces_mask", "find_yunet", "yunet"]
