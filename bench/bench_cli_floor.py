"""The CLI's whole run on a 24 MP photo against the decode + encode floor, in one run.

For a PNG and a JPEG input (6000×4000, generated here from skimage's astronaut upscaled with
grain: no committed binaries) and one round masked area, each repeat measures, interleaved so
that machine load hits all alike:
- cli: ``python -m app inpaint -i IN -m MASK -o OUT.png --model builtin:telea`` as a user runs it
  (a subprocess, start-up included), with its peak RSS from ``/usr/bin/time -v`` when present;
- floor: OpenCV alone in this process: ``cv2.imdecode`` of the input bytes + ``cv2.imencode``
  PNG of the decoded pixels at the compression level the app writes (`PNG_LEVEL`), OpenCV's
  default (adaptive) row filter — the issue's definition;
- floor, our filter: the same with the row filter the app now writes (`PNG_FILTER`), so the
  ratio against it shows what is left once the encoder's own speed-up is taken out;
- iopaint: ``iopaint run --model cv2`` on the same files, only if ``iopaint`` is importable here.
Prints the median of the repeats and cli / floor.

    python bench/bench_cli_floor.py [--repeat 5] [--size 6000x4000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:  # the PNG writer's module since imageio was split; imageio on older checkouts
    from app.core import image_save as png_writer  # noqa: E402  (after the path set-up)
except ImportError:
    from app.core import imageio as png_writer  # noqa: E402

PNG_LEVEL = getattr(png_writer, "PNG_LEVEL", 3)  # 3 was hard-coded before it had a name
PNG_FILTER = getattr(png_writer, "PNG_FILTER", None)  # None: the app used the default filter

TIME = "/usr/bin/time"


def make_inputs(folder: Path, width: int, height: int) -> dict[str, Path]:
    """A 24 MP photo-like image as PNG and JPEG, plus a mask with one round area (≈ 0.8 %)."""
    from skimage import data

    rng = np.random.default_rng(21)
    img = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)
    noisy = np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    bgr = cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR)
    paths = {"png": folder / "photo.png", "jpeg": folder / "photo.jpg", "mask": folder / "mask.png"}
    cv2.imwrite(str(paths["png"]), bgr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    cv2.imwrite(str(paths["jpeg"]), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    mask = np.zeros((height, width), np.uint8)
    cv2.circle(mask, (width // 2, height // 2), min(width, height) // 16, 255, -1)
    cv2.imwrite(str(paths["mask"]), mask)
    return paths


def timed_subprocess(argv: list[str], cwd: Path) -> tuple[float, float | None]:
    """(wall seconds, peak RSS in MB or None) of one command; fails loudly if it fails."""
    wrapped = [TIME, "-v", *argv] if os.path.exists(TIME) else argv
    start = time.perf_counter()
    proc = subprocess.run(wrapped, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    rss = None
    for line in proc.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1]) / 1024
    return wall, rss


def floor_once(src: Path, out: Path, row_filter: int | None = None) -> float:
    """OpenCV alone: decode the input bytes, encode PNG at our level (and filter), write it."""
    data = src.read_bytes()
    start = time.perf_counter()
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    options = [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL]
    if row_filter is not None:
        options += [cv2.IMWRITE_PNG_FILTER, row_filter]
    ok, buf = cv2.imencode(".png", pixels, options)
    assert ok
    elapsed = time.perf_counter() - start
    out.write_bytes(buf.tobytes())
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", default="6000x4000", help="W x H of the generated photo")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    has_iopaint = importlib.util.find_spec("iopaint") is not None
    env_note = "" if has_iopaint else " (iopaint is not importable here: its column is skipped)"
    print(f"{width}×{height}, {args.repeat} repeats, PNG level {PNG_LEVEL}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}{env_note}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_inputs(folder, width, height)
        rows = []
        for kind in ("png", "jpeg"):
            src = paths[kind]
            cli, floor, ours, rss, peer, peer_rss = [], [], [], [], [], []
            for i in range(args.repeat):
                out = folder / f"out-{kind}-{i}.png"
                wall, mb = timed_subprocess([sys.executable, "-m", "app", "inpaint", "-i", str(src), "-m",
                                             str(paths["mask"]), "-o", str(out), "--model", "builtin:telea"], ROOT)
                cli.append(wall)
                rss.append(mb or 0.0)
                floor.append(floor_once(src, folder / f"floor-{kind}.png"))
                ours.append(floor_once(src, folder / f"floor-{kind}.png", PNG_FILTER) if PNG_FILTER is not None else floor[-1])
                if has_iopaint:
                    out_dir = folder / f"iopaint-{kind}"
                    shutil.rmtree(out_dir, ignore_errors=True)
                    wall, mb = timed_subprocess(["iopaint", "run", "--model=cv2", "--device=cpu", f"--image={src}",
                                                 f"--mask={paths['mask']}", f"--output={out_dir}"], folder)
                    peer.append(wall)
                    peer_rss.append(mb or 0.0)
                out.unlink()
            c, f, o = statistics.median(cli), statistics.median(floor), statistics.median(ours)
            rows.append((kind, c, f, c / f, o, c / o, max(rss), statistics.median(peer) if peer else None,
                         max(peer_rss) if peer_rss else None, [round(x, 2) for x in cli], [round(x / y, 2) for x, y in zip(cli, floor)]))
    print("| input | CLI s | floor s | CLI / floor | floor, our filter s | CLI / that | CLI peak RSS MB | IOPaint s | IOPaint peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, c, f, ratio, o, ratio_ours, mb, p, pmb, _, _ in rows:
        peer_cols = f"{p:.2f} | {pmb:.0f}" if p is not None else "— | —"
        print(f"| {kind} | {c:.2f} | {f:.2f} | **{ratio:.2f}×** | {o:.2f} | {ratio_ours:.2f}× | {mb:.0f} | {peer_cols} |")
    for kind, *_, runs, ratios in rows:
        print(f"{kind}: CLI runs {runs}; per-repeat ratios {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
