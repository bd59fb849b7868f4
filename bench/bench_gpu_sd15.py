"""SD 1.5 inpainting at the GPU's pace (issue 34): plain diffusers fp16 against ours, eager and
compiled (cold process and warm cache), batch 1 and 4, in one run of a few minutes.

The pipeline has the real SD 1.5 shapes (the published configs shipped in resources/sd15, UNet
with 9 input channels) and random weights: speed does not depend on weight values, and no
download is needed. It is saved once as an fp16 diffusers folder; every measurement runs in its
own Python process (``--phase``), so "cold process" means what a user's second launch sees.

    python bench/bench_gpu_sd15.py                       # CUDA: 512², 25 steps, Euler; all phases
    python bench/bench_gpu_sd15.py --markdown rows.md    # also write the rows of docs/PERFORMANCE_GPU.md
    python bench/bench_gpu_sd15.py --cpu-smoke           # CPU, tiny model, 64², 2 steps: proves it runs

Phases (each prints one JSON line that the driver collects):
- plain: ``StableDiffusionInpaintPipeline`` fp16, batch 1 and 4 (one batched call);
- eager: ``load_backend`` (fast path), batch 1, batch 4 as one batched call and in the exact
  mode; max |Δ| of batched items against single runs of their seeds and of item 0 against plain;
- compile-cold / compile-warm: ``LoadOptions(compile=True)`` with an empty, then the filled,
  cache folder: time to the first image after load (eager while compiling), time until the
  compiled step is ready, steady s/image batch 1 and 4, compiles, dynamo graphs, max |Δ| against
  eager;
- cli: a 24 MP JPEG with one 900×600 masked area through the service (imports, load,
  generate, write), and the whole ``python -m app inpaint`` process.
Requires torch (2.11+ with CUDA for the figures), diffusers, transformers, platformdirs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
PROMPT = "a red brick wall with ivy, photograph"
PHASES = ("plain", "eager", "compile-cold", "compile-warm", "cli")


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


# -- inside one phase process -------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        import numpy as np
        import torch

        self.args, self.np, self.torch = args, np, torch
        self.cuda = torch.cuda.is_available() and not args.cpu_smoke
        self.device = "cuda" if self.cuda else "cpu"
        self.dtype = torch.float16 if self.cuda else torch.float32
        self.steps, self.size = args.steps, args.size
        rng = np.random.default_rng(0)
        self.image = rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8)
        self.mask = np.zeros((self.size, self.size), np.uint8)
        self.mask[self.size // 4: 3 * self.size // 4, self.size // 4: 3 * self.size // 4] = 255

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def timed(self, fn):
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t0, out

    def median(self, fn, repeat=None):
        times, out = [], None
        for _ in range(repeat or self.args.repeat):
            t, out = self.timed(fn)
            times.append(t)
        return statistics.median(times), out

    def peak_reset(self):
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak(self):
        return round(self.torch.cuda.max_memory_allocated() / 2**30, 2) if self.cuda else None

    def ours(self, backend, batch, seed=1):
        from app.core.params import GenerationParams
        from app.inference.engine import BackendRequest

        params = GenerationParams(prompt=PROMPT, steps=self.steps, seed=seed, batch_size=batch, scheduler="Euler")
        req = BackendRequest(self.image, self.mask, params, tuple(seed + k for k in range(batch)))
        return self.np.stack(backend.generate(req, lambda *a: None, lambda: False))

    def save(self, name, arr):
        self.np.save(Path(self.args.work) / f"{name}.npy", arr)

    def load(self, name):
        path = Path(self.args.work) / f"{name}.npy"
        return self.np.load(path) if path.is_file() else None

    def maxdiff(self, a, b):
        if a is None or b is None:
            return None
        return int(self.np.abs(a.astype(int) - b.astype(int)).max())


def phase_plain(b: Bench, folder: Path) -> dict:
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image

    from app.inference.diffusers.backend import make_scheduler

    load_s, pipe = b.timed(lambda: StableDiffusionInpaintPipeline.from_pretrained(
        str(folder), torch_dtype=b.dtype, local_files_only=True, safety_checker=None,
        requires_safety_checker=False).to(b.device))
    pipe.set_progress_bar_config(disable=True)

    def call(batch):
        pipe.scheduler = make_scheduler("Euler", pipe.scheduler.config)
        gens = [b.torch.Generator("cpu").manual_seed(1 + k) for k in range(batch)]
        out = pipe(prompt=PROMPT, image=Image.fromarray(b.image), mask_image=Image.fromarray(b.mask), height=b.size,
                   width=b.size, num_inference_steps=b.steps, num_images_per_prompt=batch, generator=gens,
                   output_type="np").images
        return (out * 255).round().astype(b.np.uint8)

    row = {"load_s": load_s}
    for batch in (1, 4):
        call(batch)  # warm-up
        b.peak_reset()
        row[f"b{batch}_s"], images = b.median(lambda: call(batch))
        row[f"b{batch}_peak_gib"] = b.peak()
        b.save(f"plain_b{batch}", images)
    return row


def phase_eager(b: Bench, folder: Path) -> dict:
    from app.inference.registry import LoadOptions, load_backend

    load_s, backend = b.timed(lambda: load_backend(str(folder), LoadOptions(device=b.device, exact_batches=False)))
    row = {"load_s": load_s, "first_image_s": b.timed(lambda: b.ours(backend, 1))[0]}
    b.peak_reset()
    row["b1_s"], single = b.median(lambda: b.ours(backend, 1))
    row["b1_peak_gib"] = b.peak()
    b.ours(backend, 4)
    b.peak_reset()
    row["b4_s"], batch = b.median(lambda: b.ours(backend, 4))
    row["b4_peak_gib"] = b.peak()
    backend.exact_batches = True
    row["b4_exact_s"], exact = b.median(lambda: b.ours(backend, 4), repeat=1)
    singles = b.np.concatenate([b.ours(backend, 1, seed=1 + k) for k in range(4)])
    row["b4_vs_single_maxdiff"] = b.maxdiff(batch, singles)
    row["exact_vs_single_maxdiff"] = b.maxdiff(exact, singles)
    plain = b.load("plain_b1")
    row["vs_plain_maxdiff"] = b.maxdiff(single[0], None if plain is None else plain[0])
    b.save("eager_b1", single)
    b.save("eager_b4", batch)
    row["timings"] = {k: round(v, 4) for k, v in backend.timings.items()}
    return row


def phase_compile(b: Bench, folder: Path, cache: Path) -> dict:
    import torch._dynamo.utils

    from app.inference.registry import LoadOptions, load_backend

    os.environ["INPAINT_STUDIO_COMPILE_CACHE"] = str(cache)
    if b.args.compile_backend:
        os.environ["INPAINT_STUDIO_COMPILE_BACKEND"] = b.args.compile_backend
    load_s, backend = b.timed(lambda: load_backend(str(folder), LoadOptions(device=b.device, compile=True,
                                                                          exact_batches=False)))
    compiled = backend.compiled
    t0 = time.perf_counter()
    row = {"load_s": load_s, "first_image_s": b.timed(lambda: b.ours(backend, 1))[0]}  # eager, compiling beside it
    compiled.wait()
    row["compile_ready_after_load_s"] = time.perf_counter() - t0
    b.ours(backend, 4)  # starts the batch-4 bucket
    compiled.wait()
    b.peak_reset()
    row["b1_s"], single = b.median(lambda: b.ours(backend, 1))
    row["b1_peak_gib"] = b.peak()
    b.peak_reset()
    row["b4_s"], batch = b.median(lambda: b.ours(backend, 4))
    row["b4_peak_gib"] = b.peak()
    row.update(compiles=compiled.compiles, compiled_calls=compiled.compiled_calls, failed=compiled.failed,
               notice=compiled.notice, dynamo_graphs=torch._dynamo.utils.counters["stats"]["unique_graphs"],
               vs_eager_maxdiff=b.maxdiff(single, b.load("eager_b1")),
               b4_vs_eager_maxdiff=b.maxdiff(batch, b.load("eager_b4")))
    return row


def phase_cli(b: Bench, folder: Path) -> dict:
    """A 24 MP JPEG, one 900×600 masked area: in-process breakdown, then the whole CLI process."""
    from PIL import Image

    work = Path(b.args.work)
    h, w = (4000, 6000) if not b.args.cpu_smoke else (400, 600)
    mh, mw = (600, 900) if not b.args.cpu_smoke else (60, 90)
    rng = b.np.random.default_rng(1)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=b.np.uint8)
    Image.fromarray(small).resize((w, h)).save(work / "big.jpg", quality=90)
    mask = b.np.zeros((h, w), b.np.uint8)
    mask[h // 3: h // 3 + mh, w // 3: w // 3 + mw] = 255
    Image.fromarray(mask).save(work / "mask.png")
    code = f"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from app.core.imageio import load_image
from app.core.params import GenerationParams
from app.service.generation import GenerationRequest, GenerationService
from app.inference.registry import LoadOptions
import torch, diffusers
t1 = time.perf_counter()
service = GenerationService()
service.preload({str(folder)!r}, LoadOptions(device={b.device!r}))
t2 = time.perf_counter()
image = np.asarray(__import__('PIL.Image', fromlist=['Image']).open({str(work / 'big.jpg')!r}).convert('RGB'))
mask = np.asarray(__import__('PIL.Image', fromlist=['Image']).open({str(work / 'mask.png')!r}))
params = GenerationParams(prompt='wall', model={str(folder)!r}, steps={b.steps}, seed=1, scheduler='Euler')
record = service.run(GenerationRequest(params, image, mask, options=LoadOptions(device={b.device!r})))
t3 = time.perf_counter()
__import__('PIL.Image', fromlist=['Image']).fromarray(record.candidates[0]).save({str(work / 'out_inproc.png')!r})
t4 = time.perf_counter()
print(json.dumps(dict(imports_s=t1 - t0, load_s=t2 - t1, generate_s=t3 - t2, write_s=t4 - t3)))
"""
    row = {}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode == 0:
        row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    else:
        row["inproc_error"] = proc.stderr.strip().splitlines()[-1:] or ["?"]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "app", "inpaint", "-i", str(work / "big.jpg"), "-m", str(work / "mask.png"),
                           "-o", str(work / "out_cli.png"), "--force", "--model", str(folder), "-p", "wall",
                           "--steps", str(b.steps), "--seed", "1", "--scheduler", "Euler", "--device", b.device],
                          cwd=ROOT, capture_output=True, text=True)
    row["cli_process_s"] = time.perf_counter() - t0
    row["cli_rc"] = proc.returncode
    if proc.returncode:
        row["cli_error"] = proc.stderr.strip().splitlines()[-1:]
    return row


def run_phase(args) -> None:
    b = Bench(args)
    folder = Path(args.work) / "sd15"
    fn = {"plain": lambda: phase_plain(b, folder), "eager": lambda: phase_eager(b, folder),
          "compile-cold": lambda: phase_compile(b, folder, Path(args.work) / "compile-cache"),
          "compile-warm": lambda: phase_compile(b, folder, Path(args.work) / "compile-cache"),
          "cli": lambda: phase_cli(b, folder)}[args.phase]
    row = fn()
    print("ROW " + json.dumps({"phase": args.phase, **row}, default=str), flush=True)


# -- the driver ----------------------------------------------------------------------------------
def markdown(rows: dict, device: str, args) -> str:
    def f(v, digits=3):
        return "—" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    p, e = rows.get("plain", {}), rows.get("eager", {})
    lines = [f"Measured on {device}, torch {args.torch}, {args.size}², {args.steps} steps, Euler, "
             f"{'fp32, tiny model' if args.cpu_smoke else 'fp16'} "
             f"(`python bench/bench_gpu_sd15.py`).", "",
             "| config | batch 1 s/image | batch 4 s (4 images) | images/s b4 | first image after load s | peak GiB b1/b4 | max abs Δ |",
             "|---|---|---|---|---|---|---|"]
    lines.append(f"| plain diffusers | {f(p.get('b1_s'))} | {f(p.get('b4_s'))} | "
                 f"{f(4 / p['b4_s'], 2) if p.get('b4_s') else '—'} | — | {f(p.get('b1_peak_gib'))}/{f(p.get('b4_peak_gib'))} | — |")
    lines.append(f"| ours eager, batched | {f(e.get('b1_s'))} | {f(e.get('b4_s'))} | "
                 f"{f(4 / e['b4_s'], 2) if e.get('b4_s') else '—'} | {f(e.get('first_image_s'))} | "
                 f"{f(e.get('b1_peak_gib'))}/{f(e.get('b4_peak_gib'))} | vs plain {f(e.get('vs_plain_maxdiff'))}; "
                 f"b4 vs single runs {f(e.get('b4_vs_single_maxdiff'))} |")
    lines.append(f"| ours eager, exact batches | — | {f(e.get('b4_exact_s'))} | "
                 f"{f(4 / e['b4_exact_s'], 2) if e.get('b4_exact_s') else '—'} | — | — | vs single runs {f(e.get('exact_vs_single_maxdiff'))} |")
    for name in ("compile-cold", "compile-warm"):
        c = rows.get(name, {})
        lines.append(f"| ours compiled ({name[8:]} cache) | {f(c.get('b1_s'))} | {f(c.get('b4_s'))} | "
                     f"{f(4 / c['b4_s'], 2) if c.get('b4_s') else '—'} | {f(c.get('first_image_s'))} (compiled ready after "
                     f"{f(c.get('compile_ready_after_load_s'), 1)} s) | {f(c.get('b1_peak_gib'))}/{f(c.get('b4_peak_gib'))} | "
                     f"vs eager {f(c.get('vs_eager_maxdiff'))}; compiles {f(c.get('compiles'))}, graphs {f(c.get('dynamo_graphs'))} |")
    c = rows.get("cli", {})
    lines += ["", f"24 MP CLI (one 900×600 masked area): imports {f(c.get('imports_s'), 2)} s, load {f(c.get('load_s'), 2)} s, "
              f"generate {f(c.get('generate_s'), 2)} s, write {f(c.get('write_s'), 2)} s; whole `python -m app inpaint` "
              f"process {f(c.get('cli_process_s'), 2)} s (rc {c.get('cli_rc')})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", "--tiny", dest="cpu_smoke", action="store_true",
                    help="tiny model on the CPU, 64², 2 steps, compile backend aot_eager: proves the script runs")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of " + ", ".join(PHASES))
    ap.add_argument("--compile-backend", default=None, help="torch.compile backend instead of Inductor (e.g. aot_eager)")
    ap.add_argument("--phase-timeout", type=int, default=300, help="seconds one phase may take (default 300)")
    ap.add_argument("--markdown", type=Path, default=None, help="write the rows for docs/PERFORMANCE_GPU.md here")
    ap.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.steps = args.steps or (2 if args.cpu_smoke else 25)
    args.size = args.size or (64 if args.cpu_smoke else 512)
    if args.cpu_smoke:
        args.repeat = min(args.repeat, 2)
        args.compile_backend = args.compile_backend or "aot_eager"
    if args.phase:
        return run_phase(args)

    import torch

    cuda = torch.cuda.is_available() and not args.cpu_smoke
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    args.torch = torch.__version__
    print(f"device: {device}; torch {torch.__version__}; {args.size}² inpaint, {args.steps} steps, Euler", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as work:
        t0 = time.perf_counter()
        if args.cpu_smoke:
            from tinymodels import build_tiny_sd

            build_tiny_sd(Path(work) / "sd15", inpainting=True)
        else:
            build_sd15_folder(Path(work) / "sd15", torch.float16)
        print(f"built random-weight model in {time.perf_counter() - t0:.1f} s", flush=True)
        rows = {}
        for phase in args.phases.split(","):
            cmd = [sys.executable, __file__, "--phase", phase, "--work", work, "--steps", str(args.steps),
                   "--size", str(args.size), "--repeat", str(args.repeat)]
            cmd += ["--cpu-smoke"] if args.cpu_smoke else []
            cmd += ["--compile-backend", args.compile_backend] if args.compile_backend else []
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.phase_timeout)
            except subprocess.TimeoutExpired:
                print(f"{phase}: TIMED OUT after {args.phase_timeout} s", flush=True)
                continue
            found = [line[4:] for line in proc.stdout.splitlines() if line.startswith("ROW ")]
            if proc.returncode or not found:
                print(f"{phase}: FAILED (rc {proc.returncode}): {proc.stderr.strip()[-600:]}", flush=True)
                continue
            rows[phase] = json.loads(found[-1])
            print(f"{phase} ({time.perf_counter() - t0:.0f} s): {found[-1]}", flush=True)
    table = markdown(rows, device, args)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)


if __name__ == "__main__":
    main()
