"""Cost of soft inpainting against a hard mask: the same engine run (tiny random SD model, CPU by
default, one 256² region) with and without `params.soft_inpainting`, median of a few runs; the
per-step blend and the difference-adaptive composite are the extra work.

    python bench/bench_soft.py [--steps 20] [--repeats 5] [--device cpu] [--inpainting]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--inpainting", action="store_true", help="a 9-channel UNet (default: 4-channel)")
    args = ap.parse_args()

    from tinymodels import build_tiny_sd
    from app.core.guides import SoftInpainting
    from app.core.params import GenerationParams
    from app.inference.engine import Engine, Job
    from app.inference.registry import LoadOptions, load_backend

    folder = build_tiny_sd(Path(tempfile.mkdtemp()) / "tiny", inpainting=args.inpainting)
    backend = load_backend(str(folder), LoadOptions(device=args.device))
    yy, xx = np.mgrid[0:256, 0:256]
    image = np.stack([yy, xx, (xx + yy) // 2], -1).astype(np.uint8)
    mask = np.zeros((256, 256), np.uint8)
    mask[32:224, 32:224] = np.linspace(0, 255, 192, dtype=np.uint8)[None, :]
    engine = Engine(backend)
    cases = {label: GenerationParams(prompt="a wall", model=str(folder), steps=args.steps, guidance=7.5, seed=1,
                                     scheduler="DPM++ 2M Karras", width=256, height=256, inpaint_area="whole",
                                     soft_inpainting=soft)
             for label, soft in (("hard mask", None), ("soft inpainting", SoftInpainting()))}
    wall: dict[str, list[float]] = {label: [] for label in cases}
    cpu: dict[str, list[float]] = {label: [] for label in cases}
    for params in cases.values():
        engine.run(Job(params, image, mask))  # warm-up
    for _ in range(args.repeats):  # interleaved, so a busy machine slows both alike
        for label, params in cases.items():
            t0, c0 = time.perf_counter(), time.process_time()
            engine.run(Job(params, image, mask))
            wall[label].append(time.perf_counter() - t0)
            cpu[label].append(time.process_time() - c0)
    kind = "9-channel" if args.inpainting else "4-channel"
    print(f"tiny {kind} SD, {args.device}, 256², {args.steps} steps, median of {args.repeats} (wall / process CPU)")
    base_wall, base_cpu = (statistics.median(wall["hard mask"]), statistics.median(cpu["hard mask"]))
    for label in cases:
        w, c = statistics.median(wall[label]), statistics.median(cpu[label])
        print(f"  {label:16s} {w * 1000:8.1f} ms ({w / base_wall:.2f}×)   CPU {c * 1000:8.1f} ms ({c / base_cpu:.2f}×)")


if __name__ == "__main__":
    main()
