"""The main window's status bar as one object (``window.status``): the message on the left; the
run's progress, the seed it used, the image size, the cursor position, the zoom and the
autosave warning on the right."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from app.widgets.status_label import StatusLabel


class WindowStatus:
    def __init__(self, bar: QStatusBar) -> None:
        self.message = StatusLabel("Open an image (Ctrl+O), drop one here or paste it (Ctrl+V).")
        bar.addWidget(self.message, 1)
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.seed = QLabel()
        self.seed.setToolTip("Seed actually used by the last generation")
        self.size = QLabel()
        self.cursor = QLabel()
        self.cursor.setMinimumWidth(90)
        self.zoom = QLabel()
        self.zoom.setMinimumWidth(56)
        #: Shown while the last autosave failed (`recovery_dialog.install`): a crash now would restore older work.
        self.autosave = QLabel("⚠ Autosave failed")
        self.autosave.setStyleSheet("color: #b00020; font-weight: bold;")
        self.autosave.hide()
        for widget in (self.autosave, self.progress, self.seed, self.size, self.cursor, self.zoom):
            bar.addPermanentWidget(widget)
