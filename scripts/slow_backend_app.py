"""The real editor (`app.widgets.application.run_gui`) with every model served by a slow fake
backend (400 steps × 50 ms), for scripts/xvfb_crash_recovery.py's quit-during-a-run check. Only
the backend loader is replaced; window, worker thread and event loop are the product's own.

    python scripts/slow_backend_app.py photo.png
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.inference import registry  # noqa: E402
from app.inference.engine import Cancelled  # noqa: E402


class SlowBackend:
    name = "test:slow"
    native_resolution = True

    def generate(self, request, progress, cancelled):
        for i in range(400):
            if cancelled():
                raise Cancelled()
            time.sleep(0.05)
            progress(i + 1, 400, None)
        return [request.image.copy() for _ in request.seeds]


registry.load_backend = lambda ref, options=None: SlowBackend()

if __name__ == "__main__":
    from app.widgets.application import run_gui

    sys.exit(run_gui(sys.argv[1:]))
