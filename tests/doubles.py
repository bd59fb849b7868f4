"""Shared test doubles: a backend whose output names its seed, and a shown main window."""

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


class SeedBackend:
    """Paints each candidate's masked pixels with its own seed (`paint_seeds`)."""

    name = "test:seed"
    native_resolution = True

    def generate(self, request, progress, cancelled):
        progress(1, 1, None)
        return paint_seeds(request)


def shown_window(qtbot, settings_path, worker=None):
    """A real MainWindow (no model discovery; ``worker``: its generation worker), 1000×700, shown and exposed."""
    from app.editor.settings import Settings
    from app.widgets.main_window import MainWindow

    w = MainWindow(Settings(settings_path), worker=worker, discover=lambda: [])
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    qtbot.waitExposed(w)
    return w
