"""Help ▸ Documentation: the user guide (README.md) shown in the app.

Handing a Markdown file to the desktop did nothing where no program opens Markdown (most Linux
desktops, Windows without an editor set up), so the guide is rendered here with Qt's own Markdown
support; links to the web open in the browser, and the file can still be opened elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget


class DocsDialog(QDialog):
    def __init__(self, readme: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Inpaint Studio — User Guide")
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setSearchPaths([str(readme.parent)])  # the guide's own images and relative links
        self.browser.setMarkdown(readme.read_text("utf-8", errors="replace"))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.open_elsewhere = buttons.addButton("Open in Another Program", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_elsewhere.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(readme))))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(860, 720)
