"""Start-up: process start → first painted main window, lazy (as shipped) vs eager torch/diffusers.

Each sample is a fresh interpreter. The parent notes the wall clock just before starting it; the
child prints the wall clock at the window's first Paint event. "eager" imports torch and the
diffusers inpainting pipeline before building the window — what start-up would cost if the GUI
imported the model stack up front. Variants alternate so machine load hits both alike; medians
and the ratio are printed.

    python bench/bench_startup.py [--runs 5] [--platform offscreen|xcb]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import os, sys, time
if os.environ.get("BENCH_EAGER") == "1":
    import torch  # noqa: F401
    from diffusers import StableDiffusionInpaintPipeline  # noqa: F401  (diffusers imports lazily)
from PySide6.QtCore import QEvent, QObject, QTimer
from app.widgets.application import create_app
app = create_app()
from app.widgets.main_window import MainWindow

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and not hasattr(self, "t"):
            self.t = time.time()
            QTimer.singleShot(0, app.quit)
        return False

window = MainWindow()
probe = FirstPaint()
window.installEventFilter(probe)
window.show()
app.exec()
print(f"PAINTED {probe.t:.6f} torch={'torch' in sys.modules}")
window.force_close()
"""


def sample(eager: bool, platform: str, settings: Path) -> tuple[float, bool]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), INPAINT_STUDIO_SETTINGS=str(settings), BENCH_EAGER="1" if eager else "0")
    env.setdefault("QT_QPA_PLATFORM", platform)
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PAINTED")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"child failed ({out.returncode}):\n{out.stderr[-2000:]}")
    _, stamp, torch_flag = line.split()
    return float(stamp) - t0, torch_flag == "torch=True"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--platform", default="xcb" if os.environ.get("DISPLAY") else "offscreen")
    args = ap.parse_args()
    settings = Path(tempfile.mkdtemp(prefix="bench-startup-")) / "settings.ini"
    lazy, eager = [], []
    sample(False, args.platform, settings)  # warm the OS file cache for both variants alike
    sample(True, args.platform, settings)
    for _ in range(args.runs):
        t, torch_loaded = sample(False, args.platform, settings)
        assert not torch_loaded, "the lazy start-up imported torch"
        lazy.append(t)
        t, _ = sample(True, args.platform, settings)
        eager.append(t)
    ml, me = statistics.median(lazy), statistics.median(eager)
    print(f"platform={args.platform} runs={args.runs} cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    print(f"lazy  (shipped) : median {ml:.2f} s   min {min(lazy):.2f} s   all {[round(x, 2) for x in lazy]}")
    print(f"eager (torch+diffusers first): median {me:.2f} s   min {min(eager):.2f} s   all {[round(x, 2) for x in eager]}")
    print(f"eager / lazy = {me / ml:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
