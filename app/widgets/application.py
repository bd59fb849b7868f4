"""GUI entry point: `run_gui(paths)` creates the application and the main window.

Order matters for start-up time: the window is built and shown before anything heavy; torch and
diffusers are imported only on the worker thread, when a diffusion model is first loaded (the
model picker preloads a chosen diffusion model shortly after the window is up).
"""

from __future__ import annotations

import os
import sys

from app.storage.paths import resources_dir

#: Set to a number of seconds to show the window, process events for that long and quit — for
#: start-up benchmarks and smoke tests of the real entry point.
ENV_QUIT_AFTER = "INPAINT_STUDIO_QUIT_AFTER"


def _dark_palette(app) -> None:
    """Fusion with a neutral dark palette: images are judged better on grey than on white."""
    from PySide6.QtGui import QColor, QPalette

    app.setStyle("Fusion")
    p = QPalette()
    base, window, text, mid = QColor(38, 38, 40), QColor(50, 50, 53), QColor(225, 225, 225), QColor(150, 150, 155)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor(44, 44, 47),
        QPalette.ColorRole.ToolTipBase: QColor(30, 30, 30),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: window,
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Highlight: QColor(58, 130, 200),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(127, 209, 255),
        QPalette.ColorRole.PlaceholderText: QColor(120, 120, 125),
        QPalette.ColorRole.Mid: mid,
    }
    for role, colour in roles.items():
        p.setColor(role, colour)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(110, 110, 115))
    app.setPalette(p)


def create_app(argv: list[str] | None = None):
    """The QApplication with name, organisation, icon and style (reused if one exists)."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from app.editor.settings import APP_NAME, ORG_NAME

    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("inpaint-studio")
    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "app.svg")))
    _dark_palette(app)
    return app


def run_gui(paths: list[str] | None = None) -> int:
    """Start the editor, open ``paths`` (the first image; others are ignored with a note) and run
    the event loop. Returns the exit code."""
    from app.widgets.xcb_check import xcb_problem

    problem = xcb_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from PySide6.QtCore import QTimer

    app = create_app()
    from app.widgets.main_window import MainWindow

    window = MainWindow()
    window.show()
    app.aboutToQuit.connect(window.shutdown)
    try:  # autosave, crash recovery and project files (app/widgets/recovery_dialog.py)
        from app.widgets.recovery_dialog import install

        install(window)
    except Exception as exc:  # noqa: BLE001 - the editor must still start; say what is missing
        window.show_message("warning", "Autosave is off", f"Crash recovery could not start ({type(exc).__name__}: {exc}).")
    paths = [p for p in (paths or []) if p]
    if paths:
        # After the first paint, so a big photo never delays the window itself.
        def open_first() -> None:
            window.files.open_path(paths[0])
            if len(paths) > 1:
                window.status.message.setText(f"Opened {os.path.basename(paths[0])}; one image at a time, {len(paths) - 1} more ignored.")

        QTimer.singleShot(0, open_first)
    quit_after = os.environ.get(ENV_QUIT_AFTER)
    if quit_after:
        QTimer.singleShot(int(float(quit_after) * 1000), window.force_close)
        QTimer.singleShot(int(float(quit_after) * 1000) + 50, app.quit)
    return app.exec()


if __name__ == "__main__":
    sys.exit(run_gui(sys.argv[1:]))
