"""Write a screenshot of the Restore menu, panel and dialog (for docs/screenshot-restore.png).

The astronaut photo is open and upscaled ×2 once (a step in the panel's edit history); a second
×2 waits for review in the Restore dialog (before/after split, fitted; Detail shows 1:1), the Restore panel is
docked beside History and the Restore menu is open. No model can be downloaded here, so the upscaler is a stand-in: Real-ESRGAN's compact
architecture with its learned residual set to zero, which makes it a nearest-neighbour ×2 (a real
model file, e.g. RealESRGAN_x2plus, shows real detail). Run under a virtual display:
    xvfb-run -a -s "-screen 0 1400x900x24" python scripts/screenshot_restore.py [out.png]
Settings, data and the model go to a temporary folder, never the user's.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]


def stand_in_upscaler(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    from app.inference.restoration.spandrel_import import spandrel

    spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=4, upscale=2)
    with torch.no_grad():
        last = model.body[-1]
        last.weight.zero_()
        last.bias.zero_()
    path = folder / "RealESRGAN" / "stand-in-compact-x2.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot-restore.png"
    models = Path(tempfile.mkdtemp(prefix="inpaint-restore-models-"))
    stand_in_upscaler(models)
    os.environ["INPAINT_STUDIO_MODELS"] = str(models)
    from screenshot import open_astronaut, wait

    from app.editor.restore_task import UPSCALE
    from app.widgets.restore_actions import open_restore_dialog

    app, window = open_astronaut("inpaint-restore-shot-")
    window.resize(1400, 900)
    window.move(0, 0)
    window.restore_dock.show()
    window.restore_dock.raise_()
    end = time.perf_counter() + 120

    def upscale():
        dialog = open_restore_dialog(window, UPSCALE, 2)
        while not dialog.run_button.isEnabled() and time.perf_counter() < end:
            wait(app, 0.05)
        assert dialog.run(), dialog.note.text()
        while dialog.outcome is None and time.perf_counter() < end:
            wait(app, 0.05)
        assert dialog.outcome is not None, dialog.note.text()
        return dialog

    assert upscale().apply()  # one applied run in the edit history; a second one under review
    window.canvas.zoom_fit()
    dialog = upscale()
    dialog.compare.set_split(0.5)
    dialog.resize(700, 620)
    dialog.move(560, 170)
    window.restore_menu.popup(window.menuBar().mapToGlobal(window.menuBar().actionGeometry(window.restore_menu.menuAction()).bottomLeft()))
    wait(app, 0.8)
    shot = app.primaryScreen().grabWindow(0)
    out.parent.mkdir(parents=True, exist_ok=True)
    shot.copy(0, 0, min(shot.width(), 1400), min(shot.height(), 900)).save(str(out))
    print(f"wrote {out} ({shot.width()}×{shot.height()} screen)")
    window.restore_menu.hide()
    dialog.reject()
    window.force_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
