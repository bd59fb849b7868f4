"""Shared test doubles: a backend output that names its seed, and a shown main window."""

from __future__ import annotations


def paint_seeds(request) -> list:
    """One candidate per seed whose masked pixels hold that seed (mod 256): candidates differ and
    the pixels say which seed made them."""
    outs = []
    for seed in request.seeds:
        out = request.image.copy()
        out[request.mask > 0] = seed % 256
        outs.append(out)
    return outs


def shown_window(qtbot, settings_path):
    """A real MainWindow (no model discovery), 1000×700, shown and exposed."""
    from app.editor.settings import Settings
    from app.widgets.main_window import MainWindow

    w = MainWindow(Settings(settings_path), discover=lambda: [])
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    qtbot.waitExposed(w)
    return w
