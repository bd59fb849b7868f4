"""Write a screenshot of the Control layers panel and overlay in the real window (docs/screenshot-control.png).

The astronaut photo with two control layers: soft edges made from the image (at full opacity) and a
scribble layer painted with the canvas brush (a helmet antenna and a star), the scribble active.
Run under a virtual display:
    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_control.py [out.png]
Settings go to a temporary INI file, never the user's.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from screenshot import open_astronaut, save_grab, wait  # noqa: E402  (the same helpers as the main screenshot)


def main(out: Path) -> int:
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest

    app, window = open_astronaut("inpaint-control-shot-")
    canvas, panel, doc = window.canvas, window.control_panel, window.document

    def at(x: float, y: float) -> QPoint:
        p = canvas.map_from_image(QPointF(x, y))
        return QPoint(round(p.x()), round(p.y()))

    def stroke(points) -> None:
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*points[0]))
        for pt in points[1:]:
            QTest.mouseMove(canvas, at(*pt))
            wait(app, 0.02)
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*points[-1]))

    panel.add_layer()
    panel.module_box.setCurrentText("softedge")
    assert panel.make_from_image()
    panel.model_box.setEditText("control_v11p_sd15_softedge.safetensors")
    panel.weight.setValue(0.6)
    panel.opacity.setValue(100)
    panel.add_layer()
    panel.module_box.setCurrentText("scribble")
    panel.model_box.setEditText("control_v11p_sd15_scribble.safetensors")
    panel.paint_check.setChecked(True)
    canvas.set_tool("brush")
    canvas.set_brush_size(7)
    stroke([(250, 90), (262, 50), (280, 20)])  # an antenna on the helmet
    stroke([(420, 60), (445, 120)])  # a star
    stroke([(400, 100), (465, 80)])
    stroke([(405, 75), (460, 105)])
    panel.opacity.setValue(100)
    window.menu_actions.show_mask.setChecked(False)
    canvas.zoom_fit()
    window.status.message.setText("Two control layers: soft edges from the image, and a scribble painted with the brush.")
    save_grab(app, window, out, f"{len(doc.controls)} control layers")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot-control.png"))
