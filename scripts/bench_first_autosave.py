"""Cost of the first autosave of a 24 MP document (6000 × 4000 RGB): GUI-thread time (the snapshot
the controller takes when its timer fires) and total time until the recovery file is on disk.

    QT_QPA_PLATFORM=offscreen python scripts/bench_first_autosave.py [--repeat 3]

The first save of an opened image encodes the original, the current image and the mask; later
saves during mask work reuse the cached PNGs of unchanged arrays (`PngCache`), so they cost less.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["INPAINT_STUDIO_DATA"] = tempfile.mkdtemp(prefix="bench-autosave-")
    from PySide6.QtCore import QCoreApplication

    from app.core.imageio import LoadedImage
    from app.editor.document import Document
    from app.editor.recovery_controller import RecoveryController

    QCoreApplication.instance() or QCoreApplication([])
    rng = np.random.default_rng(0)
    # a photo-like image: smooth gradients plus noise (pure noise would not compress at all)
    y, x = np.mgrid[0:4000, 0:6000]
    base = np.stack([(x / 24) % 256, (y / 16) % 256, ((x + y) / 40) % 256], axis=-1)
    pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    for run in range(args.repeat):
        doc = Document()
        doc.set_image(LoadedImage(pixels.copy()))
        ctl = RecoveryController(doc)
        doc.fill_rect((1000 + run, 1000, 400, 300))  # the first stroke
        t0 = time.perf_counter()
        ctl.autosave_now()  # what the 2.5 s timer calls: the snapshot, on the GUI thread
        gui = time.perf_counter() - t0
        ctl.autosaver.flush(timeout=300)
        total = time.perf_counter() - t0
        size = ctl.autosaver.path.stat().st_size
        doc.fill_rect((2000, 2000, 100, 100))  # a later stroke: mask only
        t1 = time.perf_counter()
        ctl.autosave_now()
        gui2 = time.perf_counter() - t1
        ctl.autosaver.flush(timeout=300)
        total2 = time.perf_counter() - t1
        print(f"run {run + 1}: first save GUI thread {gui * 1000:.0f} ms, total {total:.2f} s, file {size / 2**20:.0f} MiB; "
              f"next save GUI thread {gui2 * 1000:.0f} ms, total {total2:.2f} s", flush=True)
        ctl.shutdown(clean=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
