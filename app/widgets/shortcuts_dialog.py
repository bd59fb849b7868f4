"""Help ▸ Keyboard Shortcuts: a table read from the window's actions themselves, so it can never
disagree with what the keys do, plus the canvas keys that are not actions (held keys, brackets)."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

#: Keys the canvas handles itself (not actions): (keys, what they do).
CANVAS_KEYS = (
    ("Space (hold) + drag", "Pan the view"),
    ("[ / ]", "Smaller / larger brush"),
    ("Shift+[ / Shift+]", "Softer / harder brush"),
    ("Alt + drag", "Erase with a paint tool (paint with the eraser)"),
    ("Mouse wheel", "Zoom at the cursor"),
    ("\\ (hold)", "Show the image before the candidate"),
)


#: Qt's key codes from here on are media and launch keys ("Redo", "Copy"): not on ordinary keyboards.
FIRST_MEDIA_KEY = 0x01000061


def _on_keyboards(keys: QKeySequence) -> bool:
    return all(keys[i].key().value < FIRST_MEDIA_KEY for i in range(keys.count()))


def action_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """(keys, action name) for every action that has a shortcut, in the order given, once each."""
    rows, seen = [], set()
    for a in actions:
        texts = (k.toString(QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts() if not k.isEmpty() and _on_keyboards(k))
        keys = ", ".join(texts)
        name = a.data() if isinstance(a.data(), str) and a.data() else a.text()  # data: a stable name ("Undo")
        name = name.replace("&", "").rstrip("…").strip()
        if keys and (keys, name) not in seen:
            seen.add((keys, name))
            rows.append((keys, name))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, actions: Iterable[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        self.rows = action_rows(actions) + list(CANVAS_KEYS)
        self.table = QTableWidget(len(self.rows), 2)
        self.table.setHorizontalHeaderLabels(["Keys", "Does"])
        for r, (keys, name) in enumerate(self.rows):
            self.table.setItem(r, 0, QTableWidgetItem(keys))
            self.table.setItem(r, 1, QTableWidgetItem(name))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(520, 620)
