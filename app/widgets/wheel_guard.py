"""Spin boxes and combo boxes take the mouse wheel only when they have keyboard focus.

Scrolling a panel with the wheel otherwise changes whichever field passes under the pointer
(Mask blur 4 → 0 px, silently). With the guard, an unfocused field lets the wheel through to the
scroll area around it; a click (or Tab) focuses it and then the wheel adjusts it, as in Krita.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QWidget


class _WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            event.ignore()  # the parent (the scroll area) scrolls instead
            return True
        return False


def guard_wheel(root: QWidget) -> None:
    """Install the guard on every spin box and combo box under ``root`` (call once built)."""
    guard = root.findChild(_WheelGuard) or _WheelGuard(root)
    for field in root.findChildren(QAbstractSpinBox) + root.findChildren(QComboBox):
        field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # not WheelFocus: the wheel must not grab focus
        field.installEventFilter(guard)
