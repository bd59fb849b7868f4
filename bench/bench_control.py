"""Per-step cost of 0, 1 and 2 ControlNets (issue 26, "Measured"): the tiny random-weight test
model on the CPU, through the real `DiffusionBackend` (diffusers' ControlNet inpaint pipeline made
with ``from_pipe``), each configuration timed in the same run, interleaved in rounds.

    python bench/bench_control.py                    # tiny model, 256² work size, 6 steps, 3 rounds
    python bench/bench_control.py --work 512 --steps 10

A step is timed between the pipeline's step callbacks (prompt encoding, VAE encode and decode are
outside), so the figure is the denoising step alone: UNet (+ ControlNets) + scheduler. The
"expected" column is 1 + the ControlNets' share of the UNet's parameters, what a ControlNet adds
if it costs no more than its own work. GPU: not measured here (no GPU on this machine).
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
    ap.add_argument("--work", type=int, default=256, help="work size in pixels, multiple of 8 (default 256)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import torch

    from app.core.guides import ControlUnit
    from app.core.params import GenerationParams
    from app.inference.engine import BackendRequest
    from app.inference.registry import LoadOptions, load_backend
    from tinycontrolnet import save_single_file
    from tinymodels import build_tiny_sd

    tmp = Path(tempfile.mkdtemp(prefix="bench-control-"))
    model = build_tiny_sd(tmp / "tiny-sd", inpainting=True)
    nets = [save_single_file(tmp / f"control_{i}.safetensors", seed=3 + i) for i in range(2)]
    backend = load_backend(str(model), LoadOptions(device="cpu"))
    size = args.work
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    control = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)

    def request(n: int) -> BackendRequest:
        units = tuple(ControlUnit("none", str(nets[i]), 1.0) for i in range(n))
        params = GenerationParams(prompt="a wall", seed=1, steps=args.steps, guidance=7.0, scheduler="Euler a",
                                  controls=units)
        return BackendRequest(image, mask, params, (1,), (control,) * n)

    def per_step(n: int) -> float:
        marks: list[float] = []
        backend.generate(request(n), lambda step, total, preview: marks.append(time.perf_counter()), lambda: False)
        return (marks[-1] - marks[0]) / (len(marks) - 1)

    for n in (0, 1, 2):
        per_step(n)  # warm-up: loads the ControlNets, builds the pipelines
    times: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for _ in range(args.rounds):
        for n in times:
            times[n].append(per_step(n))
    unet = sum(p.numel() for p in backend.components["unet"].parameters())
    net = sum(p.numel() for p in next(iter(backend.controls._models.values())).parameters())
    print(f"tiny SD 1.x inpainting model, CPU ({torch.get_num_threads()} threads), work {size}², {args.steps} steps, "
          f"CFG on (batch 2 per UNet call), median of {args.rounds} interleaved rounds")
    print(f"ControlNet parameters / UNet parameters = {net / unet:.2f}")
    base = statistics.median(times[0])
    print(f"{'ControlNets':>11} | {'per step':>9} | {'× none':>6} | {'expected ×':>10}")
    for n, values in times.items():
        median = statistics.median(values)
        print(f"{n:>11} | {median * 1000:7.1f} ms | {median / base:6.2f} | {1 + n * net / unet:10.2f}")
    print("GPU: not measured (no GPU on this machine)")


if __name__ == "__main__":
    main()
