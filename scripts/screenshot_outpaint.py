"""Write a screenshot of an outpainted image in the real window (for docs/screenshot.png).

The astronaut photo is expanded to 16:9 (Edit → Expand Canvas, blurred-border pre-fill), the new
area generated with the built-in classical method, and the candidate shown for review, with the
Tools menu's selection tools in the toolbar. Run under a virtual display:
    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_outpaint.py [out.png]
Settings go to a temporary INI file, never the user's. A diffusion model paints a far better
new area; pass --model PATH to use one installed locally.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from screenshot import open_astronaut, run, save_grab  # noqa: E402  (the same helpers as the main screenshot)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--model", default="builtin:telea", help="model for the new area (default: builtin:telea)")
    args = ap.parse_args()
    out = Path(args.out)
    from app.core.outpaint import expansion_for_aspect

    app, window = open_astronaut()
    doc = window.document
    doc.expand_canvas(expansion_for_aspect(doc.width, doc.height, (16, 9)), "blur")
    window.model_picker.set_current_model(args.model)
    params = window.current_params().replace(prompt="space station interior, continuing the photo", negative_prompt="frame, border")
    window.params_panel.set_params(params)
    run(app, window)
    window.candidates_panel.select(0)
    window.canvas.set_tool("wand")
    window.canvas.zoom_fit()
    window.status.message.setText(f"Expanded to {doc.width}×{doc.height} (16:9) — one undo step; the new area was the mask.")
    save_grab(app, window, out, f"canvas {doc.width}×{doc.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
