"""Benchmark: the built-in ControlNet preprocessors on a 24 MP photo-like image.

    python bench/bench_control_preprocess.py [--repeat 5] [--width 6000 --height 4000] [--modules canny,softedge]

The image is scikit-image's astronaut scaled up (real edges and texture, not noise, which would
make Canny's hysteresis do unrepresentative work). Prints the median and best wall time of each
module over ``--repeat`` runs; the goal (issue 26) is canny and softedge under 0.5 s on the
2-core development machine. Not part of the test suite; docs/PERFORMANCE.md records its output.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.control_preprocess import BUILT_IN, preprocess  # noqa: E402


def photo(width: int, height: int) -> np.ndarray:
    try:
        from skimage import data

        base = data.astronaut()
    except ImportError:  # a smooth synthetic scene with edges
        y, x = np.mgrid[0:512, 0:512]
        base = np.dstack([(x ^ y) & 255, (x * 2) & 255, ((x - 256) ** 2 + (y - 256) ** 2 < 150**2) * 200]).astype(np.uint8)
    return cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--modules", default="canny,softedge,scribble,lineart,mlsd,tile,blur,shuffle,inpaint,none")
    args = ap.parse_args()
    image = photo(args.width, args.height)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[args.height // 3: args.height // 2, args.width // 3: args.width // 2] = 255
    print(f"{args.width}×{args.height} ({args.width * args.height / 1e6:.0f} MP), {args.repeat} runs, "
          f"{os.cpu_count()} CPUs, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), {platform.processor() or platform.machine()}")
    for module in args.modules.split(","):
        if module not in BUILT_IN:
            raise SystemExit(f"unknown module {module}")
        preprocess(module, image, mask)  # warm-up (allocator, OpenCV's thread pool)
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = preprocess(module, image, mask)
            times.append(time.perf_counter() - t)
        assert out.shape == image.shape and out.dtype == np.uint8
        print(f"  {module:9s} median {statistics.median(times):6.3f} s   best {min(times):6.3f} s")


if __name__ == "__main__":
    main()
