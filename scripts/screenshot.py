"""Write docs/screenshot.png from the real window: a photo, a painted mask, a classical result.

Run under a virtual display so the window is real (fonts, styles, docks):
    apt-get install -y xvfb
    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py [out.png]
Settings go to a temporary INI file, never the user's.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def open_astronaut(prefix: str = "inpaint-shot-"):
    """(app, window) at 1600×1000 with the astronaut photo open; settings in a temporary folder."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["INPAINT_STUDIO_SETTINGS"] = str(tmp / "settings.ini")
    os.environ.setdefault("INPAINT_STUDIO_DATA", str(tmp / "data"))
    import skimage.data

    from app.core import imageio
    from app.widgets.application import create_app
    from app.widgets.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    window.resize(1600, 1000)
    window.show()
    wait(app, 0.3)
    photo = tmp / "astronaut.png"
    imageio.save_image(photo, skimage.data.astronaut())
    assert window.files.open_path(str(photo))
    wait(app, 0.2)
    return app, window


def main(out: Path) -> int:
    import numpy as np
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest

    app, window = open_astronaut()
    canvas = window.canvas
    canvas.set_tool("brush")
    canvas.set_brush_size(26)
    canvas.set_hardness(0.9)

    def at(x: float, y: float) -> QPoint:
        p = canvas.map_from_image(QPointF(x, y))
        return QPoint(round(p.x()), round(p.y()))

    def stroke(points) -> None:
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*points[0]))
        for pt in points[1:]:
            QTest.mouseMove(canvas, at(*pt))
            wait(app, 0.02)
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*points[-1]))

    # 1. Remove the small flag on the sleeve (Navier–Stokes) and apply it.
    canvas.set_brush_size(30)
    stroke([(40, 328), (38, 350), (42, 372), (48, 388)])
    assert window.document.mask.any()
    window.model_picker.set_current_model("builtin:ns")
    run(app, window)
    window.generation.apply_candidate(0)
    # 2. Paint over the name tag and generate with Telea: the candidate is shown for review.
    window.document.clear_mask()
    canvas.set_tool("rect")
    stroke([(268, 334), (310, 360), (352, 386)])
    canvas.set_tool("brush")
    window.model_picker.set_current_model("builtin:telea")
    params = window.current_params().replace(prompt="clean orange space suit fabric", negative_prompt="text, logo, letters")
    window.params_panel.set_params(params)
    run(app, window)
    window.candidates_panel.select(0)
    canvas.zoom_fit()
    window.status.message.setText(window.status.message.text())
    save_grab(app, window, out, f"mask pixels {int(np.count_nonzero(window.document.mask))}")
    return 0


def save_grab(app, window, out: Path, note: str) -> None:
    """Let the window settle, write its picture to ``out``, say so, close it."""
    wait(app, 0.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    pixmap = window.grab()
    pixmap.save(str(out))
    print(f"wrote {out} ({pixmap.width()}×{pixmap.height()}), {note}")
    window.force_close()


def wait(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def run(app, window) -> None:
    done = []
    window.generation_finished.connect(done.append)
    window.generation_failed.connect(lambda t, m: done.append((t, m)))
    assert window.generation.generate(), window.message_bar.text
    end = time.perf_counter() + 60
    while not done and time.perf_counter() < end:
        wait(app, 0.05)
    if not done or isinstance(done[0], tuple):
        raise SystemExit(f"generation did not finish: {done}")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png"))
