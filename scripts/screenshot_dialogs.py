"""Write a PNG of every dialog (and the docked panels) under /tmp/inpaint-dialogs, to look at.

For the screenshot pass of a release: nothing cut off, overlapping or stale. Run under Xvfb:
    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_dialogs.py [out_dir]
Settings and data go to a temporary folder, never the user's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot import open_astronaut, wait  # noqa: E402 - the same window set-up as docs/screenshot.png


def main(out: Path) -> int:
    from PySide6.QtWidgets import QMessageBox

    app, window = open_astronaut("inpaint-dialogs-")
    window.document.fill_rect((200, 200, 80, 60))
    out.mkdir(parents=True, exist_ok=True)
    shots: list[tuple[str, object]] = []

    def shot(name: str, widget) -> None:
        widget.show()
        wait(app, 0.3)
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        shots.append((name, path))

    shot("window", window)
    shot("params-panel", window.params_dock)
    shot("model-panel", window.model_dock)
    for name, make in (
        ("about", window.show_about),
        ("shortcuts", window.show_shortcuts),
        ("mask-grow", lambda: window.adjust_mask("grow")),
        ("download", window.model_picker.get_models),
    ):
        dialog = make()
        shot(name, dialog)
        dialog.close()
    try:
        from app.widgets.recovery_dialog import RecoveryDialog  # another part's dialog: shown with no entries

        dialog = RecoveryDialog([], window)
        shot("recovery-empty", dialog)
        dialog.close()
    except Exception as exc:  # noqa: BLE001 - report, keep going with the others
        print(f"recovery dialog not shown: {exc}")
    box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes", "The image has changes that are not saved. Quit anyway?",
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, window)
    shot("unsaved-changes", box)
    box.close()
    for name, path in shots:
        print(f"{name}: {path}")
    window.force_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/inpaint-dialogs")))
