"""Cost of LoRA: a plain run against the first run with a LoRA (load + apply), later runs with
it, switching to another LoRA (first time: load; then: cached adapter), and back to no LoRA.

    python bench/bench_lora.py                 # tiny random-weight model and LoRAs, built here
    python bench/bench_lora.py --device cuda

The default model is the tests' tiny one: on a CPU its UNet is so small that the per-layer
overhead of peft's LoRA layers shows far more than it would on SD 1.5. Prints medians.
Nothing here is part of the pass/fail suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from tinymodels import build_tiny_sd, save_diffusers_lora

    tmp = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    os.environ["INPAINT_STUDIO_MODELS"] = str(tmp)
    model = build_tiny_sd(tmp / "tiny", inpainting=True)
    for name, seed in (("film", 3), ("grain", 4)):
        (tmp / "Lora" / name).mkdir(parents=True)
        save_diffusers_lora(tmp / "Lora" / name, seed)

    import numpy as np

    from app.core.params import GenerationParams
    from app.inference.diffusers.loader import load_backend
    from app.inference.engine import BackendRequest

    backend = load_backend(str(model), args.device)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255

    def timed(prompt: str) -> float:
        params = GenerationParams(prompt=prompt, steps=args.steps, seed=1, scheduler="DDIM")
        t0 = time.perf_counter()
        backend.generate(BackendRequest(image, mask, params, (1,)), lambda *a: None, lambda: False)
        return time.perf_counter() - t0

    timed("warm up")
    rows = [("plain run", statistics.median(timed("a wall") for _ in range(args.repeat)))]
    rows.append(("first run with <lora:film> (load + apply)", timed("a wall <lora:film:0.7>")))
    rows.append(("later runs with film", statistics.median(timed("a wall <lora:film:0.7>") for _ in range(args.repeat))))
    rows.append(("switch to grain, first time (load)", timed("a wall <lora:grain:0.7>")))
    rows.append(("switch back to film (cached adapter)", timed("a wall <lora:film:0.5>")))
    rows.append(("back to no LoRA (disabled, not unloaded)", statistics.median(timed("a wall") for _ in range(args.repeat))))
    plain = rows[0][1]
    print(f"tiny random-weight SD 1.x model, 64×64, {args.steps} steps, device {args.device}")
    for label, seconds in rows:
        print(f"{label:45s} {seconds * 1000:8.1f} ms   ×{seconds / plain:.2f}")


if __name__ == "__main__":
    main()
