"""The window's share of an upscale: what the GUI thread pays to apply, undo and redo a ×2 upscale
of a 24 MP photo (the model's work runs on a pool thread and is not counted), and what the pool
thread pays to store the undo states — raw (`PackedArray.raw`, what Restore uses) against zlib
(`PackedArray.of`, what Expand canvas uses), the baseline, in the same run.

The "result" is a bicubic ×2 of the photo (what the model returns does not change these costs).
Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_restore_editor.py [--mp 24]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PySide6.QtCore import QCoreApplication  # noqa: E402

from app.editor.canvas_delta import PackedArray  # noqa: E402
from app.editor.document import Document  # noqa: E402
from app.editor.restore_preview import compare_pair  # noqa: E402
from app.editor.restore_task import UPSCALE, RestoreChoice, RestoreOutcome, RestoreRunner  # noqa: E402


def photo(mp: float) -> np.ndarray:
    w = int(round((mp * 1e6 * 1.5) ** 0.5))
    h = int(round(w / 1.5))
    rng = np.random.default_rng(0)
    small = cv2.GaussianBlur(rng.integers(0, 255, (h // 10, w // 10, 3), np.uint8), (0, 0), 1.5)
    return np.ascontiguousarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
                                + rng.integers(0, 12, (h, w, 3), np.uint8))  # a photo's grain


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def case(image: np.ndarray, big: np.ndarray, pack) -> dict:
    doc = Document()
    doc.set_image(image)
    doc.fill_rect((100, 100, 800, 600))
    runner = RestoreRunner(doc, lambda: None)  # apply() runs no model
    packed, pack_s = timed(lambda: (pack(image), pack(big)))
    preview, preview_s = timed(lambda: compare_pair(image, big))
    outcome = RestoreOutcome(RestoreChoice(UPSCALE, None, 2), "Upscale ×2", image, big, None, None, preview, packed,
                             doc.image_version, 0.0)
    problem, apply_s = timed(lambda: runner.apply(outcome))
    assert problem == "", problem
    _, undo_s = timed(doc.undo_stack.undo)
    assert np.array_equal(doc.pixels, image)
    _, redo_s = timed(doc.undo_stack.redo)
    assert np.array_equal(doc.pixels, big)
    stored = sum(len(p.data) for p in packed)
    return {"pack (pool)": pack_s, "preview (pool)": preview_s, "apply (GUI)": apply_s, "undo (GUI)": undo_s,
            "redo (GUI)": redo_s, "stored MB": stored / 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mp", type=float, default=24.0, help="photo size in megapixels (default 24)")
    args = ap.parse_args()
    QCoreApplication.instance() or QCoreApplication([])
    image = photo(args.mp)
    big = cv2.resize(image, (image.shape[1] * 2, image.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    print(f"{image.shape[1]}×{image.shape[0]} RGB8 → ×2 {big.shape[1]}×{big.shape[0]}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rows = {"raw (Restore)": case(image, big, PackedArray.raw), "zlib (baseline)": case(image, big, PackedArray.of)}
    keys = list(next(iter(rows.values())))
    print(f"{'':18}" + "".join(f"{k:>16}" for k in keys))
    for name, row in rows.items():
        print(f"{name:18}" + "".join(f"{row[k]:>16.2f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
