"""Responsiveness: the longest event-loop stall of the real window while a generation runs.

A 5 ms QTimer ticks on the GUI thread and records the gaps between ticks; the longest gap is the
longest time the window could not repaint or react. Measured with the tiny random-weight SD
model (tests/tinymodels.py) through the real loader, engine and worker:
- cold: the first generation, which imports torch and loads the model on the worker thread (the
  tiny model is built in a subprocess, so this process has not imported torch before);
- warm: a second generation with the model cached;
- baseline: the same warm generation run on the GUI thread (what a naive app would do): the
  stall is then the whole generation.

    QT_QPA_PLATFORM=offscreen python bench/bench_responsiveness.py [--steps 8] [--size 256]

``--io`` measures the file cases instead, on a 6000×4000 photo (skimage astronaut upscaled with
grain): the longest stall while the window's public ``open_path`` opens a 24 MP JPEG and a
16-bit TIFF (until the document holds the image, plus 0.3 s for its first paint), while the
autosave of a document with 200 strokes of history is copied and written (``recovery.autosave_now``
— the timer's path — until the file is on disk), again after a result changed the pixels, and
while Save writes the result PNG and the project (until ``saver.saved``), and from Generate (the
classical default) to its candidate on screen. The baseline row is the
same PNG written on the GUI thread, as saves were before. Last, the saved project is opened in a
new window.

    QT_QPA_PLATFORM=offscreen python bench/bench_responsiveness.py --io [--repeat 3]
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


class StallMeter:
    def __init__(self, interval_ms: int = 5) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def start(self) -> None:
        self.gaps.clear()
        self.last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        self.gaps.append(time.perf_counter() - self.last)  # a call that blocked until now counts too
        g = sorted(self.gaps) or [0.0]
        return {"max_ms": g[-1] * 1000, "p99_ms": g[int(len(g) * 0.99) - 1 if len(g) > 1 else 0] * 1000,
                "median_ms": statistics.median(g) * 1000, "ticks": len(g)}


def _wait(app, done, timeout_s: float = 120.0, settle_s: float = 0.3) -> None:
    """Run the event loop until ``done()`` (bounded), then ``settle_s`` more so the first paint
    of the new image is measured too."""
    end = time.perf_counter() + timeout_s
    while not done():
        if time.perf_counter() > end:
            raise SystemExit("timed out waiting for the window")
        app.processEvents()
        time.sleep(0.002)
    settle = time.perf_counter() + settle_s
    while time.perf_counter() < settle:
        app.processEvents()
        time.sleep(0.002)


def _open(app, meter, window, path: Path) -> tuple[float, float]:
    """Show ``window``, open ``path`` through its public ``open_path``: longest stall and wall time
    until the document holds the 6000×4000 image and its first paint ran."""
    window.resize(1400, 900)
    window.show()
    app.processEvents()
    meter.start()
    t0 = time.perf_counter()
    assert window.files.open_path(str(path)) is not False, window.message_bar.text
    _wait(app, lambda: window.document.pixels.shape[:2] == (4000, 6000))
    return meter.stop()["max_ms"], time.perf_counter() - t0


def _autosave(app, meter, recovery) -> tuple[float, float]:
    """Longest stall and wall time of one autosave, from the timer's call until the file is on disk."""
    saved: list = []
    recovery.autosaver.on_saved = saved.append
    meter.start()
    t0 = time.perf_counter()
    recovery.autosave_now()
    _wait(app, lambda: bool(saved))
    return meter.stop()["max_ms"], time.perf_counter() - t0


def io_cases(tmp: Path, repeat: int) -> int:
    """Open a 24 MP JPEG and 16-bit TIFF through the window, then autosave 200 strokes."""
    import cv2
    import numpy as np
    import skimage.data

    from app.core import imageio
    from app.storage.autosave import Autosaver
    from app.widgets.application import create_app
    from app.widgets.main_window import MainWindow

    rng = np.random.default_rng(21)
    photo = cv2.resize(skimage.data.astronaut(), (6000, 4000), interpolation=cv2.INTER_CUBIC)
    photo = np.clip(photo.astype(np.int16) + rng.integers(-8, 9, photo.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    files = {"24 MP JPEG": tmp / "photo.jpg", "24 MP 16-bit TIFF": tmp / "photo16.tif"}
    imageio.save_image(files["24 MP JPEG"], photo, quality=92)
    imageio.save_image(files["24 MP 16-bit TIFF"], photo.astype(np.uint16) * 257)
    del photo

    app = create_app()
    meter = StallMeter()
    rows: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeat):
        for label, path in files.items():
            window = MainWindow(discover=lambda: [])
            rows.setdefault(f"open {label}", []).append(_open(app, meter, window, path))
            if label == "24 MP JPEG":
                window.document.fill_rect((2900, 1900, 200, 200))
                finished: list = []
                window.generation_finished.connect(finished.append)
                meter.start()
                t0 = time.perf_counter()
                assert window.generation.generate(window.current_params()), window.message_bar.text  # Telea, the default
                _wait(app, lambda: bool(finished))
                rows.setdefault("Generate (Telea) until its candidate shows", []).append((meter.stop()["max_ms"], time.perf_counter() - t0))
                window.generation.apply_candidate(0)
                window.session.install_recovery(window.current_params, autosaver=Autosaver(tmp / "recovery"))
                recovery = window.recovery
                for i in range(200):  # 200 strokes, each one undo step
                    window.document.begin_stroke("paint")
                    y = 100 + (i * 19) % 3800
                    window.document.stroke_segment((100, y), (5900, y + 50), 12.0)
                    window.document.end_stroke()
                rows.setdefault("autosave, 200 strokes of history", []).append(_autosave(app, meter, recovery))
                result = window.document.pixels.copy()
                result[1000:3000, 2000:4000] //= 2  # a result applied: the pixels must be copied now
                window.document.apply_result(result, region=(2000, 1000, 2000, 2000))
                rows.setdefault("autosave after a result (pixels copied too)", []).append(_autosave(app, meter, recovery))
                for case, start in (("save result, 24 MP PNG", lambda: window.files.save_result(tmp / "result.png")),
                                     ("save project, 24 MP + 201 steps", lambda: window.files.save_project_to(tmp / "work.inpaint"))):
                    done: list = []
                    window.session.saver.saved.connect(done.append)
                    meter.start()
                    t0 = time.perf_counter()
                    assert start(), window.status.message.text()
                    _wait(app, lambda: bool(done))
                    wall = time.perf_counter() - t0
                    rows.setdefault(case, []).append((meter.stop()["max_ms"], wall))
                    window.session.saver.saved.disconnect(done.append)
                # Baseline: the same PNG written on the GUI thread, as saves were before.
                meter.start()
                t0 = time.perf_counter()
                imageio.save_image(tmp / "result-gui.png", window.document.pixels, params=window.session.applied_params())
                app.processEvents()
                rows.setdefault("baseline: save result on the GUI thread", []).append(
                    (max(meter.stop()["max_ms"], (time.perf_counter() - t0) * 1000), time.perf_counter() - t0))
            window.force_close()
            app.processEvents()
            if label == "24 MP JPEG":  # the project just saved, opened in a fresh window
                window = MainWindow(discover=lambda: [])
                rows.setdefault("open the 24 MP project", []).append(_open(app, meter, window, tmp / "work.inpaint"))
                window.force_close()
                app.processEvents()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}, {repeat} repeats, median shown")
    print("| case | longest stall ms (median) | all runs ms | wall s (median) |")
    print("|---|---|---|---|")
    for case, runs in rows.items():
        stalls = [r[0] for r in runs]
        print(f"| {case} | **{statistics.median(stalls):.0f}** | {', '.join(f'{x:.0f}' for x in stalls)} | "
              f"{statistics.median(r[1] for r in runs):.2f} |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--io", action="store_true", help="open/autosave cases instead of generation")
    ap.add_argument("--repeat", type=int, default=3, help="repeats of the --io cases")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-resp-"))
    os.environ["INPAINT_STUDIO_SETTINGS"] = str(tmp / "settings.ini")
    if args.io:
        return io_cases(tmp, args.repeat)

    import subprocess

    t = time.perf_counter()
    model = tmp / "tiny-sd-inpainting"
    subprocess.run([sys.executable, "-c", f"from tinymodels import build_tiny_sd; build_tiny_sd({str(model)!r}, inpainting=True)"],
                   cwd=ROOT / "tests", check=True, capture_output=True)
    print(f"built tiny model in {time.perf_counter() - t:.1f} s (subprocess); torch loaded here: {'torch' in sys.modules}")

    import skimage.data

    from PySide6.QtCore import QEventLoop

    from app.core import imageio
    from app.widgets.application import create_app
    from app.inference.engine import Engine, Job
    from app.widgets.main_window import MainWindow

    app = create_app()
    window = MainWindow(discover=lambda: [])
    window.resize(1400, 900)
    window.show()
    photo = tmp / "astronaut.png"
    imageio.save_image(photo, skimage.data.astronaut())
    window.files.open_path(str(photo))
    window.document.fill_rect((200, 180, 120, 90))
    window.model_picker.add_model_path(str(model))
    window._preload_timer.stop()  # measure the cold load inside the first generation
    params = window.current_params().replace(prompt="a red balloon", steps=args.steps, width=args.size, height=args.size, seed=1)

    meter = StallMeter()
    results = {}
    for label in ("cold", "warm"):
        done: list = []
        loop = QEventLoop()
        window.generation_finished.connect(lambda r: (done.append(r), loop.quit()))
        window.generation_failed.connect(lambda t, m: (done.append((t, m)), loop.quit()))
        meter.start()
        t0 = time.perf_counter()
        assert window.generation.generate(params), window.message_bar.text
        loop.exec()  # a real event loop, as in the app (no busy polling)
        wall = time.perf_counter() - t0
        stats = meter.stop()
        window.generation_finished.disconnect()
        window.generation_failed.disconnect()
        if isinstance(done[0], tuple):
            raise SystemExit(f"generation failed: {done[0]}")
        window.generation.discard_candidates()
        results[label] = (stats, wall)

    # Baseline: the same generation on the GUI thread.
    from app.inference.registry import load_backend

    backend = load_backend(str(model))
    job = Job(params, window.document.pixels.copy(), window.document.mask.copy())
    meter.start()
    t0 = time.perf_counter()
    Engine(backend).run(job)
    app.processEvents()
    base_wall = time.perf_counter() - t0
    base = meter.stop()
    base_stall = max(base["max_ms"], base_wall * 1000)

    print(f"tiny model, {args.size}² px, {args.steps} steps, cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    for label, (stats, wall) in results.items():
        print(f"worker thread, {label:4}: generation {wall:6.2f} s   longest stall {stats['max_ms']:7.1f} ms   "
              f"p99 {stats['p99_ms']:6.1f} ms   median gap {stats['median_ms']:5.1f} ms   ({stats['ticks']} ticks)")
    print(f"GUI thread (baseline): generation {base_wall:6.2f} s   longest stall {base_stall:7.1f} ms")
    print(f"baseline stall / worker warm stall = {base_stall / max(results['warm'][0]['max_ms'], 1e-3):.0f}x")
    window.force_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
