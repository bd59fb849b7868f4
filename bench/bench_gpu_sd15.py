"""SD 1.5 inpainting speed on a GPU: our fast path against plain diffusers fp16, same run.

The pipeline has the real SD 1.5 shapes (the published configs shipped in resources/sd15, UNet
with 9 input channels) and random weights: speed does not depend on weight values, and no
download is needed. It is saved once as an fp16 diffusers folder so load time is measured
through the real loaders.

    python bench/bench_gpu_sd15.py                    # CUDA: 512², 25 steps, batch 1 and 4
    python bench/bench_gpu_sd15.py --compile          # also torch.compile (reports compile cost)
    python bench/bench_gpu_sd15.py --tiny             # CPU smoke test of this script (tiny model)

Prints per configuration: steps/s, wall time, peak VRAM (torch.cuda.max_memory_allocated), and
the max abs difference of our images against plain diffusers; plus load times and the peak
memory of the low-VRAM mode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def build_sd15_folder(path: Path, dtype) -> Path:
    """SD 1.5-shaped random-weight inpainting pipeline saved as a diffusers folder."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from app.inference.diffusers.checkpoint import load_clip_tokenizer, shipped_config_dir

    cfg = shipped_config_dir()
    read = lambda p: json.loads((cfg / p).read_text())  # noqa: E731
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config({**read("unet/config.json"), "in_channels": 9})
    vae = AutoencoderKL.from_config(read("vae/config.json"))
    text_cfg = {k: v for k, v in read("text_encoder/config.json").items() if k not in ("architectures", "torch_dtype")}
    text = CLIPTextModel(CLIPTextConfig(**text_cfg))
    pipe = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text, tokenizer=load_clip_tokenizer(), unet=unet,
        scheduler=PNDMScheduler.from_config(read("scheduler/scheduler_config.json")),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(dtype=dtype)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny model on the CPU: proves the script runs")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile of the UNet")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--exact-batches-off", action="store_true",
                    help="run a batch as one diffusers call (faster) instead of one call per seed")
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from app.inference.diffusers.backend import DiffusionBackend
    from app.inference.engine import BackendRequest
    from app.inference.registry import LoadOptions, load_backend
    from app.inference.diffusers.catalog import resolve_model
    from app.inference.diffusers.backend import make_scheduler
    from app.core.params import GenerationParams

    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    dtype = torch.float16 if cuda else torch.float32
    steps = args.steps or (2 if args.tiny else 25)
    size = args.size or (64 if args.tiny else 512)
    batches = [int(b) for b in args.batches.split(",")]
    name = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"device: {name}; torch {torch.__version__}; {size}² inpaint, {steps} steps, scheduler Euler")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def peak_reset():
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak() -> str:
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else "n/a (CPU)"

    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name) / "sd15"
    t0 = time.perf_counter()
    if args.tiny:
        from tinymodels import build_tiny_sd

        build_tiny_sd(folder, inpainting=True)
    else:
        build_sd15_folder(folder, dtype)
    print(f"built random-weight model in {time.perf_counter() - t0:.1f} s")

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    prompt = "a red brick wall with ivy, photograph"

    # -- plain diffusers fp16 (SDPA is its default attention on torch 2) ---------------------
    from diffusers import StableDiffusionInpaintPipeline

    sync()
    t0 = time.perf_counter()
    plain = StableDiffusionInpaintPipeline.from_pretrained(str(folder), torch_dtype=dtype, local_files_only=True,
                                                           safety_checker=None, requires_safety_checker=False)
    plain.to(device)
    sync()
    plain_load = time.perf_counter() - t0
    plain.set_progress_bar_config(disable=True)

    def plain_run(batch: int):
        plain.scheduler = make_scheduler("Euler", plain.scheduler.config)
        gens = [torch.Generator("cpu").manual_seed(1 + k) for k in range(batch)]
        return plain(prompt=prompt, image=Image.fromarray(image), mask_image=Image.fromarray(mask), height=size,
                     width=size, num_inference_steps=steps, num_images_per_prompt=batch, generator=gens,
                     output_type="np").images

    results = {}
    for batch in batches:
        plain_run(batch)  # warm-up
        peak_reset()
        times = []
        for _ in range(args.repeat):
            sync()
            t0 = time.perf_counter()
            out = plain_run(batch)
            sync()
            times.append(time.perf_counter() - t0)
        results[("plain", batch)] = (statistics.median(times), peak(), (out * 255).round().astype(np.uint8))
    plain = None  # free its memory before loading ours
    if cuda:
        torch.cuda.empty_cache()

    # -- ours: the app's loader + DiffusionBackend fast path ----------------------------------
    sync()
    t0 = time.perf_counter()
    ours = load_backend(str(folder), LoadOptions(device=device, fast=True))
    sync()
    ours_load = time.perf_counter() - t0
    compile_cost = None
    if args.compile:
        ours = DiffusionBackend(ours.pipeline_for("inpaint"), info=resolve_model(str(folder)), device=ours.device,
                                load_seconds=ours_load, fast=False, compile=True)

    def ours_run(batch: int):
        params = GenerationParams(prompt=prompt, steps=steps, seed=1, batch_size=batch, scheduler="Euler")
        req = BackendRequest(image, mask, params, tuple(1 + k for k in range(batch)))
        return ours.generate(req, lambda *a: None, lambda: False)

    ours.exact_batches = not args.exact_batches_off
    for batch in batches:
        sync()
        t0 = time.perf_counter()
        ours_run(batch)  # warm-up (and compilation, with --compile)
        sync()
        first = time.perf_counter() - t0
        peak_reset()
        times = []
        for _ in range(args.repeat):
            sync()
            t0 = time.perf_counter()
            out = ours_run(batch)
            sync()
            times.append(time.perf_counter() - t0)
        steady = statistics.median(times)
        if args.compile and compile_cost is None:
            compile_cost = first - steady
        results[("ours", batch)] = (steady, peak(), np.stack(out))

    print(f"load: plain from_pretrained {plain_load:.2f} s, ours load_backend {ours_load:.2f} s")
    if compile_cost is not None:
        print(f"compile cost (first run minus steady run): {compile_cost:.1f} s")
    print(f"{'config':<16}{'batch':>6}{'wall s':>9}{'steps/s':>9}{'img/s':>8}  {'peak VRAM':<14}{'max|Δ| item 0':>14}")
    for batch in batches:
        for who in ("plain", "ours"):
            wall, mem, imgs = results[(who, batch)]
            # item 0 only: in a batched diffusers call items 1.. draw their masked-image latents
            # from generator 0, so they are not the single runs with seeds s+k that ours are
            diff = int(np.abs(imgs[0].astype(int) - results[("plain", batch)][2][0].astype(int)).max())
            label = f"diffusers {'fp16' if cuda else 'fp32'}" if who == "plain" else ("ours fast" + ("+compile" if args.compile else ""))
            print(f"{label:<16}{batch:>6}{wall:>9.3f}{steps / wall:>9.2f}{batch / wall:>8.2f}  {mem:<14}{diff:>14}")
        ratio = results[("plain", batch)][0] / results[("ours", batch)][0]
        print(f"{'speed-up':<16}{batch:>6}{ratio:>9.2f}×")

    # -- low-VRAM mode ---------------------------------------------------------------------------
    ours = None
    if cuda:
        torch.cuda.empty_cache()
    ours_low = load_backend(str(folder), LoadOptions(device=device, low_memory=True, fast=False))
    peak_reset()
    params = GenerationParams(prompt=prompt, steps=steps, seed=1, scheduler="Euler")
    t0 = time.perf_counter()
    ours_low.generate(BackendRequest(image, mask, params, (1,)), lambda *a: None, lambda: False)
    sync()
    print(f"low-VRAM mode (attention slicing, VAE slicing+tiling, model CPU offload): batch 1 "
          f"{time.perf_counter() - t0:.2f} s, peak {peak()}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
