"""Benchmark: everything the engine does around the model on a 24 MP photo with a 2 % mask.

    python bench/bench_regions.py [--repeat 5] [--width 6000 --height 4000]

The "model" is a fake backend (identity or noise at model size), so the figures are the cost
of mask handling, cropping, resizing, feathering, colour matching and compositing. The same run
times the naive way (whole-image blur feather and whole-image float blend) for comparison, and
measures peak memory with tracemalloc (numpy allocations are traced) and process RSS (psutil).
Not part of the test suite; docs/PERFORMANCE.md records its output.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.inference.engine import Engine, Job  # noqa: E402
from app.core.params import GenerationParams  # noqa: E402


class IdentityBackend:
    name = "fake:identity"
    native_resolution = False

    def generate(self, request, progress, cancelled):
        return [request.image for _ in request.seeds]


class NoiseBackend:
    name = "fake:noise"
    native_resolution = False

    def generate(self, request, progress, cancelled):
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, request.image.shape, dtype=np.uint8) for _ in request.seeds]


def photo(width: int, height: int) -> np.ndarray:
    """A photo-like 24 MP image: a real photo (skimage astronaut + coffee side by side) resized,
    with fine grain so it is not unrealistically smooth."""
    from skimage import data

    base = np.hstack([data.astronaut(), cv2.resize(data.coffee(), (768, 512))])
    img = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = np.random.default_rng(1).integers(-6, 7, (height, width, 1), dtype=np.int16)
    return np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def blob_mask(width: int, height: int, fraction: float) -> np.ndarray:
    """One elliptical area covering ``fraction`` of the image (an object to remove)."""
    m = np.zeros((height, width), np.uint8)
    r = int((fraction * width * height / np.pi) ** 0.5)
    cv2.ellipse(m, (width // 3, height // 2), (r, r), 0, 0, 360, 255, -1)
    return m


def scratch_mask(width: int, height: int, fraction: float) -> np.ndarray:
    """Long thin scratches across the whole photo covering ``fraction`` of it (a damaged scan)."""
    m = np.zeros((height, width), np.uint8)
    rng = np.random.default_rng(2)
    target = fraction * width * height
    while np.count_nonzero(m) < target:
        p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(m, p0, p1, 255, 7)
    return m


def naive(img: np.ndarray, mask: np.ndarray, blur: int) -> tuple[np.ndarray, float]:
    """The whole-image way: binarize, Gaussian feather and float blend over all 24 MP."""
    t = time.perf_counter()
    hard = (mask >= 128).astype(np.float32)
    soft = cv2.GaussianBlur(hard, (2 * blur + 1, 2 * blur + 1), blur / 2.0)
    gen = img  # identity "model" output already placed at full size
    w = soft[:, :, None]
    out = np.clip(np.rint(img.astype(np.float32) * (1 - w) + gen.astype(np.float32) * w), 0, 255).astype(np.uint8)
    return out, time.perf_counter() - t


class ShiftBackend:
    """Returns its input colour-shifted everywhere: a drifting VAE round trip, exaggerated."""

    name = "fake:shift"
    native_resolution = False

    def generate(self, request, progress, cancelled):
        out = np.clip(request.image.astype(np.int16) + np.array([28, -18, 12]), 0, 255).astype(np.uint8)
        return [out for _ in request.seeds]


class DriftBackend:
    """Gain + offset + a slight blur, the way a VAE round trip drifts and softens."""

    name = "fake:drift"
    native_resolution = False

    def generate(self, request, progress, cancelled):
        soft = cv2.GaussianBlur(request.image, (0, 0), 1.0).astype(np.float32)
        out = np.clip(soft * np.array([1.06, 0.97, 0.92]) + np.array([6, 2, -5]), 0, 255).astype(np.uint8)
        return [out for _ in request.seeds]


def seam_report() -> None:
    """Seam score (app.core.seams) on four real photos, with and without colour matching."""
    from skimage import data

    from app.core import seams
    from app.inference.classical import ClassicalBackend

    print("## seam score: result ring gradient / original ring gradient (1.0 = no visible edge); "
          "seam step in grey levels (0 = none added)")
    print("| backend | mask blur | colour match | astronaut | chelsea | coffee | rocket | mean score | mean step |")
    print("|---|---|---|---|---|---|---|---|---|")
    photos = {n: getattr(data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket")}
    masks = {}
    for n, img in photos.items():
        h, w = img.shape[:2]
        m = np.zeros((h, w), np.uint8)
        cv2.ellipse(m, (w // 2, h // 2), (w // 7, h // 6), 20, 0, 360, 255, -1)
        cv2.line(m, (w // 10, h // 5), (w * 8 // 10, h * 4 // 5), 255, 5)
        masks[n] = m
    for backend, model in ((ShiftBackend(), "/models/fake"), (DriftBackend(), "/models/fake"), (ClassicalBackend(), "builtin:telea")):
        for blur in (4, 0):
            for match in (False, True):
                scores, steps = [], []
                for n, img in photos.items():
                    params = GenerationParams(model=model, seed=1, mask_blur=blur, color_match="on" if match else "off")
                    out = Engine(backend).run(Job(params, img, masks[n])).candidates[0].image
                    scores.append(seams.seam_score(img, out, masks[n], blur))
                    steps.append(seams.seam_step(img, out, masks[n]))
                cells = " | ".join(f"{v:.3f}" for v in scores)
                print(f"| {backend.name} | {blur} | {'on' if match else 'off'} | {cells} | {np.mean(scores):.3f} | {np.mean(steps):+.2f} |")


def run_once(engine: Engine, job: Job) -> tuple[float, dict[str, float]]:
    """Wall time, plus this process's CPU time (less sensitive to other load on the machine)."""
    t, c = time.perf_counter(), time.process_time()
    result = engine.run(job)
    cpu = time.process_time() - c
    return time.perf_counter() - t, result.timings | {"regions": float(len(result.regions)), "cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--fraction", type=float, default=0.02)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seams-only", action="store_true", help="only the seam-score table (fast)")
    args = ap.parse_args()
    if args.seams_only:
        seam_report()
        return

    try:
        import psutil

        proc = psutil.Process()
    except ImportError:  # psutil is a test extra; RSS is then not reported
        proc = None

    w, h = args.width, args.height
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# load average {load:.1f} at start")
    print(f"# bench_regions: {w}×{h} ({w * h / 1e6:.0f} MP), mask {args.fraction:.0%}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}, OpenCV {cv2.__version__}, repeat {args.repeat} (median)")
    img = photo(w, h)
    image_mb = img.nbytes / 2**20
    print(f"image RGB8 {image_mb:.0f} MB")
    masks = {"blob": blob_mask(w, h, args.fraction), "scratches": scratch_mask(w, h, args.fraction)}
    for name, m in masks.items():
        print(f"mask '{name}': {np.count_nonzero(m) / m.size:.2%} of pixels")

    cases = [
        ("identity, colour match off", IdentityBackend(), "off"),
        ("identity, colour match on", IdentityBackend(), "on"),
        ("noise, colour match on", NoiseBackend(), "on"),
    ]
    print()
    print("| mask | backend | total s | CPU s | model s | around the model s | plan | copy | crop | resize | feather | colour | composite | regions |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mname, mask in masks.items():
        for label, backend, match in cases:
            engine = Engine(backend)
            job = Job(GenerationParams(model="/models/fake", seed=1, color_match=match), img, mask)
            runs = [run_once(engine, job) for _ in range(args.repeat)]
            total = statistics.median(r[0] for r in runs)
            t = {k: statistics.median(r[1].get(k, 0.0) for r in runs) for k in runs[0][1]}
            around = total - t.get("model", 0.0)
            print(f"| {mname} | {label} | {total:.3f} | {t['cpu']:.3f} | {t.get('model', 0):.3f} | **{around:.3f}** | {t.get('plan', 0):.3f} | "
                  f"{t.get('copy', 0):.3f} | {t.get('crop', 0):.3f} | {t.get('resize', 0):.3f} | {t.get('feather', 0):.3f} | "
                  f"{t.get('colour_match', 0):.3f} | {t.get('composite', 0):.3f} | {int(t['regions'])} |")

    print()
    print("## naive whole-image feather + blend (no crop, no resize) for comparison with the table")
    for mname, mask in masks.items():
        c = time.process_time()
        naive_times = [naive(img, mask, 4)[1] for _ in range(args.repeat)]
        cpu = (time.process_time() - c) / args.repeat
        print(f"{mname}: naive whole-image {statistics.median(naive_times):.3f} s wall, {cpu:.3f} s CPU")
    print()
    print("## peak memory of one engine run (identity backend, colour match on)")
    for mname, mask in masks.items():
        engine = Engine(IdentityBackend())
        job = Job(GenerationParams(model="/models/fake", seed=1, color_match="on"), img, mask)
        rss0 = proc.memory_info().rss if proc else 0
        tracemalloc.start()
        result = engine.run(job)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1 = proc.memory_info().rss if proc else 0
        del result
        rss = f", RSS grew {(rss1 - rss0) / 2**20:.0f} MB" if proc else ""
        print(f"{mname}: traced peak {peak / 2**20:.0f} MB = {peak / img.nbytes:.2f}× the image "
              f"(the result itself is 1×){rss}")
        tracemalloc.start()
        naive(img, mask, 4)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"{mname}: naive whole-image traced peak {peak / 2**20:.0f} MB = {peak / img.nbytes:.2f}× the image")
    print()
    seam_report()


if __name__ == "__main__":
    main()
