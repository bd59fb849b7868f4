"""Live painting: updates per second and stroke-to-update latency (issue 31).

A headless editor session with Live on (the real `LivePainter`, worker thread and generation
service) paints strokes on a timer; every finished stroke asks for an update and supersedes the
run in flight. Measured on the GUI thread, as the window sees it:

* updates/s: live results shown per second of painting;
* stroke-to-update latency: from the end of a stroke to the first live result made from a
  document copy taken after it (a superseded stroke waits for the next result that includes it).

Rows: strokes every ``--interval`` ms (a brisk artist: most runs are superseded), and isolated
strokes (each after the previous update: the latency of one update). The CPU rows use the tiny
random SD model of the tests with the LCM scheduler at the smallest model size (256²); the GPU
row (``--gpu``: SD 1.5 shapes with random fp16 weights at 512², as bench_gpu_sd15) needs CUDA;
without it the row says "not measured".

Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_live.py [--strokes 20] [--interval 100] [--steps 4] [--gpu]``
Prints figures; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_gpu_sd15 for --gpu

import numpy as np  # noqa: E402
from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer  # noqa: E402

from app.core import imageio  # noqa: E402
from app.core.params import GenerationParams  # noqa: E402
from app.editor.session import EditorSession  # noqa: E402
from app.editor.worker import GenerationWorker  # noqa: E402
from app.inference.registry import LoadOptions  # noqa: E402
from app.service.generation import GenerationRequest  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class LiveRun:
    """Paints ``strokes`` strokes, one every ``interval_ms`` (0: each after the previous update)."""

    def __init__(self, session: EditorSession, params: GenerationParams, strokes: int, interval_ms: int,
                 options: LoadOptions) -> None:
        self.session, self.params, self.strokes, self.interval_ms = session, params, strokes, interval_ms
        self.options = options
        self.stroke_times: list[float] = []
        self.updates: list[tuple[float, int]] = []  # (time, index of the last stroke the result includes)
        self.loop = QEventLoop()
        session.live.updated.connect(self._on_update)

    def source(self):
        # The stroke count at the moment the run's parameters are read (its document copy follows).
        return self.params.replace(extra={"bench_stroke": len(self.stroke_times) - 1}), self.options

    def stroke(self) -> None:
        k = len(self.stroke_times)
        doc = self.session.document
        y = 40 + (k * 23) % (doc.height - 80)
        doc.begin_stroke()
        doc.stroke_segment((60.0, float(y)), (float(doc.width - 60), float(y + 10)), 12.0)
        self.stroke_times.append(time.perf_counter())
        doc.end_stroke()  # the undo step: the live painter asks for an update
        if self.interval_ms and len(self.stroke_times) < self.strokes:
            QTimer.singleShot(self.interval_ms, self.stroke)

    def _on_update(self, record) -> None:
        if record is None:
            return
        self.updates.append((time.perf_counter(), record.params.extra["bench_stroke"]))
        done = self.updates[-1][1] == self.strokes - 1
        if done:
            self.loop.quit()
        elif not self.interval_ms and len(self.stroke_times) < self.strokes:
            self.stroke()

    def run(self) -> dict:
        self.stroke()
        QTimer.singleShot(600_000, self.loop.quit)  # a bound, never reached in a working run
        self.loop.exec()
        elapsed = self.updates[-1][0] - self.stroke_times[0]
        latencies = []
        for k, t in enumerate(self.stroke_times):
            first = next((u for u, s in self.updates if s >= k and u >= t), None)
            if first is not None:
                latencies.append((first - t) * 1000)
        return {"updates": len(self.updates), "per_s": len(self.updates) / elapsed, "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95), "started": self.session.live.started,
                "cancelled": self.session.live.cancelled}


def measure(params: GenerationParams, options: LoadOptions, args) -> list[tuple[str, dict]]:
    rows = []
    for label, interval in ((f"stroke every {args.interval} ms", args.interval), ("isolated strokes", 0)):
        session = EditorSession(GenerationWorker())
        rng = np.random.default_rng(0)
        session.open_image(imageio.LoadedImage(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)), None, "bench")
        warm = GenerationRequest(params, session.document.pixels, np.full((args.size, args.size), 255, np.uint8),
                                 options=options)
        session.worker.service.run(warm)  # the model load and the first run's warm-up are not an update
        bench = LiveRun(session, params, args.strokes, interval, options)
        session.live.start(bench.source)
        rows.append((label, bench.run()))
        session.shutdown()
    return rows


def print_rows(title: str, rows: list[tuple[str, dict]]) -> None:
    print(title)
    print(f"{'row':28} {'updates/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'runs started':>12} {'cancelled':>9}")
    for label, r in rows:
        print(f"{label:28} {r['per_s']:9.1f} {r['p50']:8.0f} {r['p95']:8.0f} {r['started']:12d} {r['cancelled']:9d}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strokes", type=int, default=20)
    ap.add_argument("--interval", type=int, default=100, help="ms between strokes in the burst row")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=512, help="image side (the CPU rows send the masked region at 256²)")
    ap.add_argument("--gpu", action="store_true", help="also SD 1.5 shapes at 512² on CUDA (random fp16 weights)")
    args = ap.parse_args()

    import torch
    from tinymodels import build_tiny_sd

    app = QCoreApplication.instance() or QCoreApplication([])
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_sd(Path(tmp) / "tiny-sd-inpainting", inpainting=True)
        params = GenerationParams(prompt="moss on a stone wall", model=str(model), scheduler="LCM", steps=args.steps,
                                  guidance=1.5, width=256, height=256, seed=1)
        rows = measure(params, LoadOptions(device="cpu"), args)
        print_rows(f"Live painting, tiny SD model on the CPU, LCM {args.steps} steps at 256², image {args.size}², "
                   f"{args.strokes} strokes; {platform.processor() or platform.machine()}, torch threads "
                   f"{torch.get_num_threads()}", rows)
        if not args.gpu:
            print("GPU, SD 1.5 shapes at 512²: not measured (run with --gpu on a CUDA machine)")
        elif not torch.cuda.is_available():
            print("GPU, SD 1.5 shapes at 512²: not measured (no CUDA device here)")
        else:
            from bench_gpu_sd15 import build_sd15_folder

            sd15 = build_sd15_folder(Path(tmp) / "sd15", torch.float16)
            gpu_params = params.replace(model=str(sd15), width=512, height=512)
            rows = measure(gpu_params, LoadOptions(device="cuda"), args)
            print_rows(f"GPU {torch.cuda.get_device_name()}, SD 1.5 shapes, LCM {args.steps} steps at 512²", rows)
        del app


if __name__ == "__main__":
    main()
