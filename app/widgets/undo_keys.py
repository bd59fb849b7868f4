"""Undo and redo keys that work wherever focus is in the window.

Spin boxes, sliders' neighbours and combo boxes with an editor claim Ctrl+Z for their own tiny
undo (a ``ShortcutOverride``), so after Apply — when focus lands in the brush size box — Ctrl+Z
did nothing. This application event filter refuses that claim for every widget except a real
text field (prompt boxes, line edits), where the user expects Ctrl+Z to undo typing.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit, QPlainTextEdit, QTextEdit, QWidget

_KEYS = (QKeySequence.StandardKey.Undo, QKeySequence.StandardKey.Redo)


def is_text_field(widget: QWidget | None) -> bool:
    """A field the user types text into (a spin box's inner line edit does not count)."""
    if isinstance(widget, (QPlainTextEdit, QTextEdit)):
        return not widget.isReadOnly()
    if isinstance(widget, QLineEdit):
        return not widget.isReadOnly() and not isinstance(widget.parent(), QAbstractSpinBox)
    return False


def _is_undo_key(event: QKeyEvent) -> bool:
    if any(event.matches(k) for k in _KEYS):
        return True
    combo = QKeySequence(event.keyCombination())
    return combo == QKeySequence("Ctrl+Y") or combo == QKeySequence("Ctrl+Shift+Z")


class UndoKeysFilter(QObject):
    """Installed on the application by ``window``; lets the window's Undo/Redo shortcuts fire
    whenever the focus widget in that window is not a text field."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        QApplication.instance().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if event.type() != QEvent.Type.ShortcutOverride or not isinstance(obj, QWidget):
            return False
        if obj.window() is not self._window or is_text_field(obj) or not _is_undo_key(event):
            return False
        event.ignore()  # not claimed: the window's shortcut runs
        return True
