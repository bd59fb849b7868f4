"""Benchmark: selection on a 24 MP image — a magic-wand click, GrabCut, and select-by-click (SAM):
the first click (model load + image embedding + decoder) and later clicks (decoder only).

    python bench/bench_select.py [--width 6000 --height 4000] [--repeat 5] [--sam PATH] [--device cpu]

Without --sam it builds the tiny random-weight SAM the tests use (64 px encoder), so the SAM
figures are the plumbing cost (resizing 24 MP to the encoder input, decoder, upscaling the mask to
24 MP), not a real ViT-B/H encoder; the printout says which model ran and on what device.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from app.core.geometry import Bounds  # noqa: E402
from app.core.selection import grabcut, magic_wand  # noqa: E402


def scene(width: int, height: int) -> np.ndarray:
    """A smooth gradient with noise and a flat ellipse in the middle (what a wand click picks)."""
    rng = np.random.default_rng(0)
    yy, xx = np.ogrid[:height, :width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (xx * 200 // width).astype(np.uint8)
    img[..., 1] = (yy * 200 // height).astype(np.uint8)
    img[..., 2] = 90
    img += rng.integers(0, 8, (height, width, 1), dtype=np.uint8)
    inside = ((xx - width / 2) / (width / 5)) ** 2 + ((yy - height / 2) / (height / 5)) ** 2 < 1
    img[inside] = (230, 40, 40)
    return img


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sam", help="a SAM folder (default: build the tiny test model)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, … (default cpu)")
    args = ap.parse_args()
    w, h = args.width, args.height
    img = scene(w, h)
    print(f"image {w}×{h} ({w * h / 1e6:.0f} MP) RGB8 · {platform.processor() or platform.machine()} · median of {args.repeat}")

    t, sel = timed(lambda: magic_wand(img, w // 2, h // 2, 24, contiguous=True), args.repeat)
    print(f"magic wand, contiguous click     {t * 1000:8.1f} ms  ({sel.mean() * 100:.1f} % selected)")
    t, _ = timed(lambda: magic_wand(img, w // 2, h // 2, 24, contiguous=False), args.repeat)
    print(f"magic wand, global click         {t * 1000:8.1f} ms")
    box = Bounds(w // 4, h // 4, w // 2, h // 2)
    t, _ = timed(lambda: grabcut(img, box), max(1, args.repeat // 2))
    print(f"GrabCut rectangle ({box.width}×{box.height})  {t * 1000:8.1f} ms")

    import torch

    from app.inference.segment import ClickSegmenter

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.sam:
        path, which = Path(args.sam), f"SAM from {args.sam}"
    else:
        from tinysam import build_tiny_sam

        path = build_tiny_sam(Path(tempfile.mkdtemp(prefix="bench-sam-")) / "tiny")
        which = "tiny random-weight SAM (64 px encoder, test model), NOT a real SAM"
    seg = ClickSegmenter(path, device=args.device)
    t0 = time.perf_counter()
    seg.load()
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    seg.segment([(w / 2, h / 2, 1)], img)
    first = time.perf_counter() - t0
    later, _ = timed(lambda: seg.segment([(w / 3, h / 2, 1)]), args.repeat)
    print(f"select by click: {which}, device {seg._device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"  model load                     {load * 1000:8.1f} ms")
    print(f"  first click (hash + embedding + decoder) {first * 1000:8.1f} ms")
    print(f"  later click (decoder + 24 MP mask)       {later * 1000:8.1f} ms")
    print(f"  embeddings computed: {seg.embeddings_computed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
