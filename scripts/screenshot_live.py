"""A picture of the window in Live mode: three strokes across the suit, the live result shown.

The classical Telea method stands in for a diffusion model (no weights on a bare machine); the
Live machinery is the same. Run under a virtual display:
    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_live.py /tmp/live.png
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from screenshot import ROOT, open_astronaut, save_grab, wait  # noqa: E402


def main(out: Path) -> int:
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest

    app, window = open_astronaut("inpaint-live-shot-")
    canvas = window.canvas
    window.model_picker.set_current_model("builtin:telea")
    canvas.set_tool("brush")
    canvas.set_brush_size(28)
    window.live.live_action.trigger()

    def at(x: float, y: float) -> QPoint:
        p = canvas.map_from_image(QPointF(x, y))
        return QPoint(round(p.x()), round(p.y()))

    live = window.session.live
    for y in (340, 362, 384):  # three strokes: each supersedes the update in flight
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(270, y))
        for x in range(280, 360, 10):
            QTest.mouseMove(canvas, at(x, y))
            wait(app, 0.01)
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(350, y))
    end = time.perf_counter() + 60
    while (live.record is None or live.busy) and time.perf_counter() < end:
        wait(app, 0.05)
    assert canvas.live_layer_shown, "no live result"
    save_grab(app, window, out, f"live runs started {live.started}, cancelled {live.cancelled}, "
                                f"history steps {window.document.undo_stack.count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot_live.png"))
