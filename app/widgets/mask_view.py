"""The mask overlay's look as the user sets it (``window.mask_view``): the colour dialog and the
View → Mask Opacity choices, applied to the canvas and remembered in the settings."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QColor
from PySide6.QtWidgets import QColorDialog, QMenu, QWidget

from app.editor.settings import Settings
from app.widgets.mask_overlay import MaskOverlay

OPACITY_CHOICES = (25, 40, 50, 65, 80, 100)


class MaskViewOptions(QObject):
    """``parent``: the window, parent of the colour dialog and of the opacity actions."""

    def __init__(self, overlay: MaskOverlay, settings: Settings, parent: QWidget) -> None:
        super().__init__(parent)
        self.overlay, self.settings, self._parent = overlay, settings, parent
        self.opacity_group = QActionGroup(parent)
        self.opacity_actions: dict[int, QAction] = {}
        for pct in OPACITY_CHOICES:
            a = QAction(f"{pct} %", parent)
            a.setCheckable(True)
            a.triggered.connect(lambda _c=False, p=pct: self.set_opacity(p / 100))
            self.opacity_group.addAction(a)
            self.opacity_actions[pct] = a

    def add_opacity_menu(self, menu: QMenu) -> None:
        opacity_menu = menu.addMenu("Mask &Opacity")
        for a in self.opacity_actions.values():
            opacity_menu.addAction(a)

    def choose_color(self) -> None:
        dialog = QColorDialog(self.overlay.color, self._parent)
        dialog.setWindowTitle("Mask overlay colour")
        dialog.colorSelected.connect(self.set_color)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def set_color(self, color: QColor | str) -> None:
        color = QColor(color)
        self.overlay.set_color(color)
        self.settings.set_mask_color(color.name())

    def set_opacity(self, opacity: float) -> None:
        self.overlay.set_opacity(opacity)
        self.settings.set_mask_opacity(opacity)
        for value, a in self.opacity_actions.items():
            a.setChecked(value == round(opacity * 100))
