"""Undo memory: 200 brush strokes on a 24 MP image, history bytes against full copies.

Each stroke is 12 segments of a random walk with a random brush (radius 10–80 px, hardness
0.3–1), a mix of paint and erase, like a user masking several objects. Prints the bytes the undo
history holds, what one full mask copy per stroke would hold (the naive baseline), the time to
commit a stroke, and the time to undo/redo the whole history, checking that undo is exact.

Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_undo_memory.py [--strokes 200]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from PySide6.QtCore import QCoreApplication  # noqa: E402

from app.editor.document import Document  # noqa: E402
from app.core.geometry import Bounds  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--strokes", type=int, default=200)
    ap.add_argument("--budget-mb", type=float, default=512)
    args = ap.parse_args()
    _app = QCoreApplication.instance() or QCoreApplication([])  # keeps Qt alive for the signals
    proc = psutil.Process()
    w, h = args.width, args.height
    print(f"# bench_undo_memory: {w}x{h} ({w * h / 1e6:.0f} MP), {args.strokes} strokes")
    print(f"# {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    doc = Document(history_budget=int(args.budget_mb * 1024 * 1024))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = np.random.default_rng(7).integers(0, 24, (h, w), dtype=np.uint8)  # sensor-like grain
    photo = np.stack([(x * 255 / w).astype(np.uint8) + noise, (y * 255 / h).astype(np.uint8) + noise,
                      ((np.sin(x / 97) * np.cos(y / 61) + 1) * 100).astype(np.uint8) + noise], axis=2)
    del x, y
    doc.set_image(photo)
    rss0 = proc.memory_info().rss
    rng = np.random.default_rng(42)
    commit_ms, segment_ms = [], []
    for i in range(args.strokes):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        radius, hardness = rng.uniform(10, 80), rng.uniform(0.3, 1.0)
        doc.begin_stroke("erase" if i % 5 == 4 else "paint")
        for _ in range(12):
            nx, ny = x + rng.normal(0, 60), y + rng.normal(0, 60)
            t0 = time.perf_counter()
            doc.stroke_segment((x, y), (nx, ny), radius, hardness)
            segment_ms.append((time.perf_counter() - t0) * 1000)
            x, y = nx, ny
        t0 = time.perf_counter()
        doc.end_stroke()
        commit_ms.append((time.perf_counter() - t0) * 1000)
    rss1 = proc.memory_info().rss
    history = doc.history.nbytes()
    commands = doc.undo_stack.count()
    full_mask = doc.mask.nbytes * commands  # naive: one full mask copy per undo step
    full_rgb = (doc.mask.nbytes + doc.pixels.nbytes) * commands
    print(f"commands on the stack: {commands} (strokes that changed nothing push none; evicted by the budget: {doc.history.evicted})")
    print(f"undo history:          {history / 1e6:9.2f} MB  ({history / max(1, commands) / 1e3:.1f} kB per stroke)")
    print(f"full mask copies:      {full_mask / 1e6:9.2f} MB  -> history is {full_mask / max(1, history):.0f}x smaller")
    print(f"full mask+image copies:{full_rgb / 1e6:9.2f} MB  -> history is {full_rgb / max(1, history):.0f}x smaller")
    print(f"process RSS growth:    {(rss1 - rss0) / 1e6:9.2f} MB while painting (includes the mask being painted)")
    print(f"segment (mask update): median {statistics.median(segment_ms):.2f} ms, p95 {sorted(segment_ms)[int(0.95 * (len(segment_ms) - 1))]:.2f} ms")
    print(f"stroke commit (diff + zlib of touched tiles): median {statistics.median(commit_ms):.2f} ms, max {max(commit_ms):.2f} ms")
    final = doc.mask.copy()
    t0 = time.perf_counter()
    doc.undo_stack.setIndex(0)
    undo_s = time.perf_counter() - t0
    exact = not doc.mask.any()
    t0 = time.perf_counter()
    doc.undo_stack.setIndex(doc.undo_stack.count())
    redo_s = time.perf_counter() - t0
    print(f"undo all: {undo_s * 1000:.0f} ms (mask back to empty: {exact}); redo all: {redo_s * 1000:.0f} ms "
          f"(identical: {np.array_equal(doc.mask, final)})")
    print(f"history after undo/redo of everything (\"after\" tiles captured by the undo): {doc.history.nbytes() / 1e6:.2f} MB")
    # a generated result on a 1024x1024 region: what an applied candidate costs in history
    before = doc.history.nbytes()
    result = doc.pixels.copy()
    region = Bounds(2000, 1500, 1024, 1024)
    result[region.slices] = 255 - result[region.slices]  # a changed region with photo-like content
    t0 = time.perf_counter()
    doc.apply_result(result, "Inpaint", region=region)
    print(f"apply_result 1024x1024 changed region: +{(doc.history.nbytes() - before) / 1e6:.2f} MB history, "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms (a full RGB copy would be {doc.pixels.nbytes / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
