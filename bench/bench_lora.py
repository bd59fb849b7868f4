"""Cost of LoRA: applying one (first use: load the file), switching between cached adapters,
turning LoRA off, and a run with a LoRA against a plain run (medians, interleaved).

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
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    args = ap.parse_args()

    from tinymodels import build_tiny_sd, save_diffusers_lora

    tmp = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    os.environ["INPAINT_STUDIO_MODELS"] = str(tmp)
    model = build_tiny_sd(tmp / "tiny", inpainting=True)
    for name, seed in (("film", 3), ("grain", 4)):
        (tmp / "Lora" / name).mkdir(parents=True)
        save_diffusers_lora(tmp / "Lora" / name, seed)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)

    from app.core.params import GenerationParams
    from app.inference.registry import LoadOptions, load_backend
    from app.inference.engine import BackendRequest

    backend = load_backend(str(model), LoadOptions(device=args.device))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255

    def run_s(prompt: str) -> float:
        params = GenerationParams(prompt=prompt, steps=args.steps, seed=1, scheduler="DDIM")
        t0 = time.perf_counter()
        backend.generate(BackendRequest(image, mask, params, (1,)), lambda *a: None, lambda: False)
        return time.perf_counter() - t0

    def apply_s(prompt: str) -> float:
        t0 = time.perf_counter()
        backend.networks.apply_loras(prompt)
        return time.perf_counter() - t0

    run_s("warm up")
    switches = [
        ("load + apply film (first use)", apply_s("<lora:film:0.7>")),
        ("load + switch to grain (first use)", apply_s("<lora:grain:0.7>")),
        ("switch back to film (cached adapter)", apply_s("<lora:film:0.5>")),
        ("film + grain together (cached)", apply_s("<lora:film:0.5> <lora:grain:0.5>")),
        ("no LoRA (disable, nothing unloaded)", apply_s("")),
    ]
    plain, with_lora = [], []
    for _ in range(args.repeat):  # interleaved, so machine noise hits both
        plain.append(run_s("a wall"))
        with_lora.append(run_s("a wall <lora:film:0.7>"))
    plain_s = statistics.median(plain)
    print(f"tiny random-weight SD 1.x model (tests/tinymodels.py), 64×64, {args.steps} steps, "
          f"device {args.device}, {torch.get_num_threads()} torch thread(s)")
    print(f"{'plain run (median)':45s} {plain_s * 1000:8.1f} ms")
    print(f"{'run with film at 0.7 (median)':45s} {statistics.median(with_lora) * 1000:8.1f} ms   "
          f"×{statistics.median(with_lora) / plain_s:.2f}")
    for label, seconds in switches:
        print(f"{label:45s} {seconds * 1000:8.1f} ms")

if __name__ == "__main__":
    main()
