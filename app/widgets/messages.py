"""Messages shown inside the window: an info/error bar above the canvas, plus a dialog helper.

Why a bar rather than modal message boxes: errors during a generation arrive while the user is
painting; a bar does not steal focus or block the event loop, it can carry action buttons
("Recall parameters", "Use low-memory mode"), and tests can read and click it without a nested
event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton, QStyle, QToolButton, QWidget

LEVEL_STYLES = {
    "info": ("#1f3a5a", "#8cc4ff"),
    "warning": ("#4a3a12", "#ffd166"),
    "error": ("#5a1f1f", "#ff8c8c"),
}


class MessageBar(QFrame):
    """One message with optional action buttons and a close button; hidden when empty."""

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(10, 6, 6, 6)
        self.icon = QLabel()
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._layout.addWidget(self.icon)
        self._layout.addWidget(self.label, 1)
        self._buttons: list[QPushButton] = []
        self.close_button = QToolButton()
        self.close_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismiss)
        self._layout.addWidget(self.close_button)
        self.level = ""
        self.title = ""
        self.hide()

    def show_message(
        self, level: str, title: str, text: str, actions: list[tuple[str, Callable[[], None]]] | None = None
    ) -> None:
        """Show ``title: text``; each action is (button text, callback) and dismisses the bar."""
        self._clear_buttons()
        self.level, self.title = level, title
        bg, fg = LEVEL_STYLES.get(level, LEVEL_STYLES["info"])
        self.setStyleSheet(f"#messageBar {{ background: {bg}; border-radius: 4px; }} #messageBar QLabel {{ color: {fg}; }}")
        sp = QStyle.StandardPixmap
        kind = {"error": sp.SP_MessageBoxCritical, "warning": sp.SP_MessageBoxWarning}.get(level, sp.SP_MessageBoxInformation)
        self.icon.setPixmap(self.style().standardIcon(kind).pixmap(18, 18))
        self.label.setText(f"<b>{_esc(title)}</b> — {_esc(text)}" if title else _esc(text))
        for caption, callback in actions or []:
            button = QPushButton(caption)
            button.clicked.connect(lambda _=False, cb=callback: (self.dismiss(), cb()))
            self._layout.insertWidget(self._layout.count() - 1, button)
            self._buttons.append(button)
        self.show()

    @property
    def text(self) -> str:
        return self.label.text()

    def buttons(self) -> list[QPushButton]:
        return list(self._buttons)

    def button(self, caption: str) -> QPushButton | None:
        return next((b for b in self._buttons if b.text() == caption), None)

    def _clear_buttons(self) -> None:
        for b in self._buttons:
            self._layout.removeWidget(b)
            b.hide()  # deleteLater runs later: without hiding, the old button overlaps the new text
            b.deleteLater()
        self._buttons = []

    def dismiss(self) -> None:
        """Hide the bar; its actions go with it, so a stale offer can never be clicked later."""
        self.hide()
        self.level = ""
        self._clear_buttons()
        self.closed.emit()


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def error_dialog(parent: QWidget | None, title: str, message: str) -> QMessageBox:
    """A window-modal (not application-blocking) error box, opened with ``open()`` so the caller's
    event loop keeps running; for errors outside the main window (e.g. start-up)."""
    box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
