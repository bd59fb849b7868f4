"""About: what this build runs on (for bug reports), read without importing torch or diffusers."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout, QWidget

import app
from app.core import versions

LICENCE = "Apache License 2.0"


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, device: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Inpaint Studio")
        self.setMinimumWidth(460)
        self.info = versions.versions()
        if device:
            self.info["Device"] = device
        rows = "".join(f"<tr><td style='padding-right:14px;color:#9aa'>{k}</td><td>{v}</td></tr>" for k, v in self.info.items())
        title = QLabel(f"<h2 style='margin:0'>Inpaint Studio {app.__version__}</h2>"
                       "<p>Mask-painting editor for Stable Diffusion 1.5 inpainting and img2img.<br>"
                       "Runs fully offline; pixels outside the mask are never touched.</p>")
        title.setWordWrap(True)
        table = QLabel(f"<table>{rows}</table>")
        table.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        licence = QLabel(f"Licence: {LICENCE}. Model weights carry their own licences (e.g. CreativeML OpenRAIL-M for SD 1.5).")
        licence.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = QPushButton("Copy details")
        copy.setToolTip("Copy the versions above, for a bug report")
        copy.clicked.connect(self.copy_details)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(table)
        layout.addWidget(licence)
        layout.addWidget(buttons)

    def text(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.info.items()) + f"\nLicence: {LICENCE}"

    def copy_details(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
