"""Per-step cost of 0, 1 and 2 ControlNets (issue 26, "Measured"): the tiny random-weight test
model on the CPU, through the real `DiffusionBackend` (diffusers' ControlNet inpaint pipeline made
with ``from_pipe``), each configuration timed in the same run, interleaved in rounds.

    python bench/bench_control.py                    # tiny model, 256² work size, 4 steps, 3 rounds
    python bench/bench_control.py --work 512 --steps 10

Times are this process's CPU seconds (work, all threads), steadier than wall-clock time on a
shared machine. A step is timed between the pipeline's step callbacks (prompt encoding, VAE encode and decode are
outside), so the figure is the denoising step alone: UNet (+ ControlNets) + scheduler. "ControlNet
work" is the time inside the ControlNet forwards (forward hooks), "left over" what a step costs
beyond the plain step plus that work: ≈ 0 when a ControlNet adds no copies or syncs of its own. GPU: not measured here (no GPU on this machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: CPU seconds of this process (all its threads): the work done, which other processes sharing
#: the machine do not inflate as they do wall-clock time.
CLOCK = time.process_time
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=int, default=256, help="work size in pixels, multiple of 8 (default 256)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: waiting OpenMP threads spin, which CPU time would count as work)")
    ap.add_argument("--per-step-hint", action="store_true",
                    help="run the hint encoder every step, as diffusers does (to see what `memo_hint` saves)")
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
    torch.set_num_threads(args.threads)
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

    inside = [0.0]  # seconds spent inside ControlNet forwards (the ControlNets' own work)

    def timed(net) -> None:
        net.register_forward_pre_hook(lambda *a: inside.__setitem__(0, inside[0] - CLOCK()))
        net.register_forward_hook(lambda *a: inside.__setitem__(0, inside[0] + CLOCK()))

    def per_step(n: int) -> tuple[float, float]:
        marks: list[tuple[float, float]] = []  # (clock, ControlNet time so far) at each step's end
        inside[0] = 0.0
        backend.generate(request(n), lambda step, total, preview: marks.append((CLOCK(), inside[0])),
                         lambda: False)
        (t0, c0), (t1, c1) = marks[0], marks[-1]  # from the end of step 1: the hint encoder's one run is outside
        return (t1 - t0) / (len(marks) - 1), (c1 - c0) / (len(marks) - 1)

    for n in (0, 1, 2):
        per_step(n)  # warm-up: loads the ControlNets, builds the pipelines
    for net in backend.controls._models.values():
        timed(net)
        if args.per_step_hint:
            embed = net.controlnet_cond_embedding
            embed.forward = type(embed).forward.__get__(embed)
    times: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}
    for _ in range(args.rounds):
        for n in times:
            times[n].append(per_step(n))
    print(f"tiny SD 1.x inpainting model, CPU ({torch.get_num_threads()} threads), work {size}², {args.steps} steps, "
          f"CFG on (batch 2 per call), median of {args.rounds} interleaved rounds, hint encoder "
          + ("every step (diffusers)" if args.per_step_hint else "once per run (memo_hint)"))
    base = statistics.median(t for t, _ in times[0])
    print(f"{'ControlNets':>11} | {'per step':>9} | {'× none':>6} | {'ControlNet work':>15} | {'left over':>9}")
    for n, values in times.items():
        step = statistics.median(t for t, _ in values)
        own = statistics.median(c for _, c in values)
        print(f"{n:>11} | {step * 1000:6.1f} ms | {step / base:6.2f} | {own * 1000:12.1f} ms | {(step - base - own) * 1000:6.1f} ms")
    print("ControlNet work: time inside the ControlNet forwards per step; left over: per step − none − that "
          "(what a ControlNet costs beyond its own work; ≈ 0 = no extra copies or syncs).")
    print("GPU: not measured (no GPU on this machine)")


if __name__ == "__main__":
    main()
