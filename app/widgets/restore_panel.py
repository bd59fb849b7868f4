"""The Restore panel (dockable): the operations of the Restore menu as buttons, and the image's
edit history, where each applied restoration is one step named with its parameters (model,
scale, strength, selection). Clicking a step goes back to it, like Undo/Redo."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QUndoStack
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QToolButton, QUndoView, QVBoxLayout, QWidget


class RestorePanel(QWidget):
    def __init__(self, actions: list[QAction], get_models: QAction, stack: QUndoStack,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout()
        grid.setSpacing(4)
        self.buttons = []
        for i, a in enumerate([*actions, get_models]):
            b = QToolButton()
            b.setDefaultAction(a)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            grid.addWidget(b, i // 2, i % 2)
            self.buttons.append(b)
        heading = QLabel("Edit history")
        heading.setStyleSheet("font-weight: bold;")
        self.steps = QUndoView(stack)
        self.steps.setEmptyLabel("Opened image")
        self.steps.setWordWrap(True)  # a restoration's step names its model and parameters: show them whole
        self.steps.setToolTip("Every edit, restorations with their parameters; click a step to go back to it")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(grid)
        layout.addWidget(heading)
        layout.addWidget(self.steps, 1)
