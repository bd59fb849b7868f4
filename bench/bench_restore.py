"""Benchmark: LaMa's cost follows the mask, not the photo; a tiled ×4 upscale stays in its budget.

    python bench/bench_restore.py [--mask-side 1000] [--upscale-mp 2] [--device cuda]

1. LaMa at its full size (big-lama's architecture, random weights: timing does not depend on
   weight values) through the real engine on a 2 MP and a 24 MP photo with the same square mask
   (``--mask-side``² pixels): time and peak memory of each run.
2. A ×4 upscale (Real-ESRGAN's SRVGGNetCompact at realesr-general-x4v3's size, random weights)
   of a ``--upscale-mp`` MP photo, tiled: the tile chosen from ``--budget-mib``, time, peak.

Each case runs in a fresh interpreter, so its peak is its own: RSS high-water mark (whole
process: torch + model + images) and, on CUDA, torch's peak allocated memory.
docs/PERFORMANCE.md records the output. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _photo(width: int, height: int):
    import cv2
    import numpy as np
    from skimage import data

    return cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC).astype(np.uint8)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peaks(device: str) -> dict:
    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        import torch

        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def case_lama(width: int, height: int, mask_side: int, device: str) -> dict:
    import numpy as np
    import torch

    from app.core.params import GenerationParams
    from app.inference.engine import Engine, Job
    from app.inference.restoration.lama import LamaBackend
    from app.inference.restoration.spandrel_import import spandrel

    module = spandrel()
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(0)
    descriptor = module.ModelLoader(device).load_from_state_dict(LaMa(in_nc=4, out_nc=3).state_dict()).eval()
    image = _photo(width, height)
    mask = np.zeros((height, width), np.uint8)
    y, x = (height - mask_side) // 2, (width - mask_side) // 2
    mask[y:y + mask_side, x:x + mask_side] = 255
    engine = Engine(LamaBackend("lama", descriptor, device))
    warm = np.zeros((256, 256), np.uint8)
    warm[96:160, 96:160] = 255
    engine.run(Job(GenerationParams(model="lama"), _photo(256, 256), warm))  # first-call costs (allocator, FFT plans)
    before = _peaks(device)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    result = engine.run(Job(GenerationParams(model="lama"), image, mask))
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return {"case": f"LaMa {width}x{height} ({width * height / 1e6:.1f} MP), mask {mask_side}² px",
            "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 1),
            "model_seconds": round(result.timings.get("model", 0.0), 2),
            "rss_before_mib": round(before["peak_rss_mib"]), **{k: round(v) for k, v in _peaks(device).items()}}


def case_upscale(megapixels: float, budget_mib: int, device: str) -> dict:
    import torch

    from app.inference.restoration import process, tiling
    from app.inference.restoration.spandrel_import import spandrel

    module = spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4)
    descriptor = module.ModelLoader(device).load_from_state_dict(model.state_dict()).eval()
    width = int((megapixels * 1e6 * 1.5) ** 0.5)
    height = int(width / 1.5)
    image = _photo(width, height)
    budget = budget_mib << 20
    tile = tiling.tile_for_budget(budget, 4)
    process.apply_image_model(descriptor, _photo(64, 64), device=device, budget=budget)  # first-call costs
    steps = []
    t0, c0 = time.perf_counter(), _cpu_seconds()
    out = process.apply_image_model(descriptor, image, device=device, budget=budget, progress=lambda i, n: steps.append(n))
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return {"case": f"×4 Compact-64x32 on {width}x{height} ({width * height / 1e6:.1f} MP) → {out.shape[1]}x{out.shape[0]}",
            "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 1), "tile": tile, "tiles": steps[-1],
            "budget_mib": budget_mib, "estimate_mib": round(tiling.estimate_bytes(tile, 4) / 2**20),
            **{k: round(v) for k, v in _peaks(device).items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mask-side", type=int, default=1000)
    parser.add_argument("--upscale-mp", type=float, default=2.0)
    parser.add_argument("--budget-mib", type=int, default=1024)
    parser.add_argument("--device", default=None)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.device is None:
        import torch

        ns.device = "cuda" if torch.cuda.is_available() else "cpu"
    if ns.case:
        kind, *args = ns.case.split(":")
        result = case_lama(*map(int, args), ns.device) if kind == "lama" else case_upscale(float(args[0]), int(args[1]), ns.device)
        print(json.dumps(result))
        return
    import torch

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"device {ns.device}{' (' + torch.cuda.get_device_name() + ')' if ns.device.startswith('cuda') else ''}")
    cases = [f"lama:1732:1155:{ns.mask_side}", f"lama:6000:4000:{ns.mask_side}", f"upscale:{ns.upscale_mp}:{ns.budget_mib}"]
    results: dict[str, dict] = {}
    for case in cases:
        proc = subprocess.run([sys.executable, __file__, "--case", case, "--device", ns.device],
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            print(f"{case}: failed\n{proc.stderr[-2000:]}")
            continue
        results[case] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(results[case], ensure_ascii=False))
    if cases[0] in results and cases[1] in results:
        small, big = results[cases[0]], results[cases[1]]
        print(f"# 24 MP / 2 MP LaMa: wall {big['seconds'] / small['seconds']:.2f}×, CPU "
              f"{big['cpu_seconds'] / small['cpu_seconds']:.2f}× (goal ≤ 1.3×); peak RSS {small['peak_rss_mib']} and "
              f"{big['peak_rss_mib']} MiB (goal ≤ 1.5 GB = {1.5e9 / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
