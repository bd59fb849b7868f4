"""Expand Canvas and the selection tools' menu entries, installed on the main window in one call.

Kept out of `window_layout` so this feature's actions live in one place: Edit → Expand Canvas…,
the Tools menu's shortcut labels and selection options, and the select-by-click messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QActionGroup, QKeySequence
from PySide6.QtWidgets import QDialog, QInputDialog

from app.core.errors import UserError
from app.widgets import tools
from app.widgets.expand_dialog import ExpandCanvasDialog
from app.widgets.window_layout import action

if TYPE_CHECKING:
    from app.widgets.main_window import MainWindow

EXPAND_SHORTCUT = "Ctrl+Alt+E"
_SELECTION_TOOLS = (tools.WAND, tools.GRABCUT, tools.SAM)


def install(w: MainWindow) -> None:
    """Add the actions and menu entries to a window built by `window_layout`."""
    w.expand_canvas_action = action(w, "E&xpand Canvas…", lambda: open_expand_dialog(w), EXPAND_SHORTCUT,
                                    "Grow the canvas to outpaint: pixels per side or an aspect ratio", "expand")
    w.edit_menu.addSeparator()
    w.edit_menu.addAction(w.expand_canvas_action)
    _label_tool_shortcuts(w)
    _selection_options(w)
    w.canvas.tool_changed.connect(lambda name: _on_tool(w, name))


def _label_tool_shortcuts(w: MainWindow) -> None:
    """Show each tool's key in the Tools menu. The canvas handles the keys itself, so the
    shortcut is widget-scoped (it never fires from the window and cannot clash with typing)."""
    for name, a in w.tool_actions.items():
        key = w.canvas.tools[name].key
        if key and a.shortcut().isEmpty():
            a.setShortcut(QKeySequence(key))
            a.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)


def _selection_options(w: MainWindow) -> None:
    menu = w.tools_menu
    menu.addSeparator()
    mode_menu = menu.addMenu("Selection &Mode")
    w.selection_mode_group = QActionGroup(w)
    w.selection_mode_actions = {}
    for mode in ("add", "subtract", "replace"):
        a = mode_menu.addAction(mode.capitalize())
        a.setCheckable(True)
        a.setChecked(mode == "add")
        a.triggered.connect(lambda _c=False, m=mode: set_selection_mode(w, m))
        w.selection_mode_group.addAction(a)
        w.selection_mode_actions[mode] = a
    wand = w.canvas.tools[tools.WAND]
    w.wand_contiguous_action = menu.addAction("Magic Wand: &Contiguous")
    w.wand_contiguous_action.setCheckable(True)
    w.wand_contiguous_action.setChecked(wand.contiguous)
    w.wand_contiguous_action.toggled.connect(lambda on: setattr(wand, "contiguous", on))
    w.wand_tolerance_action = menu.addAction("Magic Wand &Tolerance…")
    w.wand_tolerance_action.triggered.connect(lambda: _ask_tolerance(w))


def set_selection_mode(w: MainWindow, mode: str) -> None:
    for name in _SELECTION_TOOLS:
        w.canvas.tools[name].mode = mode
    w.selection_mode_actions[mode].setChecked(True)


def _ask_tolerance(w: MainWindow) -> None:
    wand = w.canvas.tools[tools.WAND]
    value, ok = QInputDialog.getInt(w, "Magic wand", "Tolerance (0 = exact colour, 255 = everything)", wand.tolerance, 0, 255)
    if ok:
        wand.tolerance = value


def _on_tool(w: MainWindow, name: str) -> None:
    """Background selection tools report through the window; choosing select-by-click starts
    the image embedding at once, so the first click is fast."""
    if name not in (tools.GRABCUT, tools.SAM):
        return
    tool = w.canvas.tools[name]
    if not getattr(tool, "window_connected", False):
        title = tool.label.split(" (")[0]
        tool.bridge.failed.connect(lambda text: w.show_message("warning", title, text))
        tool.bridge.status.connect(w.status_message.setText)
        tool.window_connected = True
    if name == tools.SAM:
        tool.prepare(w.document)


def open_expand_dialog(w: MainWindow) -> ExpandCanvasDialog | None:
    """Ask for the growth and apply it (one undo step). Returns the dialog (tests drive it)."""
    doc = w.document
    if doc.is_empty or w.generating:
        return None
    dialog = ExpandCanvasDialog(doc.width, doc.height, doc.display_qimage().scaled(256, 256, Qt.AspectRatioMode.KeepAspectRatio), w)
    dialog.finished.connect(lambda result: _expand(w, dialog, result))
    dialog.open()
    return dialog


def _expand(w: MainWindow, dialog: ExpandCanvasDialog, result: int) -> None:
    if result != QDialog.DialogCode.Accepted:
        return
    try:
        w.document.expand_canvas(dialog.expansion(), dialog.fill(), dialog.colour())
    except UserError as exc:
        w.show_message("warning", exc.title, exc.message)
