"""Engine overhead: our `Engine` (plan, crop, resize, backend, composite) against a direct
diffusers pipeline call doing the same diffusion on the same model, in the same process.

    python bench/bench_engine_overhead.py                 # tiny random-weight model (built here)
    python bench/bench_engine_overhead.py --model PATH    # any SD 1.x diffusers folder

Runs are interleaved (direct, engine, direct, engine, …) so machine noise hits both; prints the
medians and the ratio engine / direct. Nothing here is part of the pass/fail suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="SD 1.x diffusers folder (default: build the tiny test model)")
    ap.add_argument("--size", type=int, default=256, help="model size in pixels (multiple of 8, ≥ 256)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from app.inference.engine import Engine, Job
    from app.inference.registry import LoadOptions, load_backend
    from app.inference.diffusers.backend import make_scheduler
    from app.core.params import GenerationParams

    tmp = None
    model = args.model
    if model is None:
        from tinymodels import build_tiny_sd

        tmp = tempfile.TemporaryDirectory()
        model = str(build_tiny_sd(Path(tmp.name) / "tiny", inpainting=True))
    backend = load_backend(model, LoadOptions(device=args.device))
    engine = Engine(backend)
    pipe = backend.pipeline_for("inpaint")  # the same loaded weights for the direct call

    size = args.size
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    params = GenerationParams(prompt="a brick wall", model=model, steps=args.steps, seed=1, width=size, height=size,
                              inpaint_area="whole", scheduler="DPM++ 2M Karras")

    def direct() -> float:
        t0 = time.perf_counter()
        pipe.scheduler = make_scheduler(params.scheduler, backend._base_scheduler_config)
        pipe(prompt=params.prompt, image=Image.fromarray(image), mask_image=Image.fromarray(mask), height=size,
             width=size, num_inference_steps=args.steps, guidance_scale=params.guidance,
             generator=torch.Generator("cpu").manual_seed(1)).images[0]
        return time.perf_counter() - t0

    def ours() -> float:
        t0 = time.perf_counter()
        engine.run(Job(params, image, mask))
        return time.perf_counter() - t0

    direct(), ours()  # warm-up
    d, e = [], []
    for _ in range(args.repeat):
        d.append(direct())
        e.append(ours())
    md, me = statistics.median(d), statistics.median(e)
    print(f"model: {model} on {backend.device.description}; {size}² {args.steps} steps, {args.repeat} runs each")
    print(f"direct diffusers call : median {md * 1000:8.1f} ms  (min {min(d) * 1000:.1f})")
    print(f"Engine.run            : median {me * 1000:8.1f} ms  (min {min(e) * 1000:.1f})")
    print(f"ratio engine/direct   : {me / md:.3f}  (min/min {min(e) / min(d):.3f})")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
