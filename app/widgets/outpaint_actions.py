"""Expand Canvas and the selection tools' menu entries (``window.outpaint_actions``).

Kept out of `window_layout` so this feature's actions live in one place: Edit → Expand Canvas…,
the Tools menu's shortcut labels and selection options, and the select-by-click messages.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDialog, QInputDialog, QMainWindow, QMenu

from app.core.errors import UserError
from app.editor.session import EditorSession
from app.widgets import tools
from app.widgets.canvas import CanvasView
from app.widgets.expand_dialog import ExpandCanvasDialog
from app.widgets.messages import MessageBar
from app.widgets.window_layout import action
from app.widgets.window_status import WindowStatus

EXPAND_SHORTCUT = "Ctrl+Alt+E"
_SELECTION_TOOLS = (tools.WAND, tools.GRABCUT, tools.SAM)


class OutpaintActions(QObject):
    """Adds its entries to ``edit_menu`` and ``tools_menu``; ``tool_actions`` are the Tools
    menu's actions by tool name (their shortcuts are labelled here)."""

    def __init__(self, window: QMainWindow, session: EditorSession, canvas: CanvasView, *, edit_menu: QMenu,
                 tools_menu: QMenu, tool_actions: dict[str, QAction], status: WindowStatus, messages: MessageBar) -> None:
        super().__init__(window)
        self.window, self.session, self.canvas, self.status, self.messages = window, session, canvas, status, messages
        self.expand_canvas = action(window, "E&xpand Canvas…", self.open_expand_dialog, EXPAND_SHORTCUT,
                                    "Grow the canvas to outpaint: pixels per side or an aspect ratio", "expand")
        edit_menu.addSeparator()
        edit_menu.addAction(self.expand_canvas)
        self._label_tool_shortcuts(tool_actions)
        self._selection_options(tools_menu)
        canvas.tool_changed.connect(self._on_tool)

    def _label_tool_shortcuts(self, tool_actions: dict[str, QAction]) -> None:
        """Show each tool's key in the Tools menu. The canvas handles the keys itself, so the
        shortcut is widget-scoped (it never fires from the window and cannot clash with typing)."""
        for name, a in tool_actions.items():
            key = self.canvas.tools[name].key
            if key and a.shortcut().isEmpty():
                a.setShortcut(QKeySequence(key))
                a.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)

    def _selection_options(self, menu: QMenu) -> None:
        menu.addSeparator()
        mode_menu = menu.addMenu("Selection &Mode")
        self.selection_mode_group = QActionGroup(self.window)
        self.selection_mode: dict[str, QAction] = {}
        for mode in ("add", "subtract", "replace"):
            a = mode_menu.addAction(mode.capitalize())
            a.setCheckable(True)
            a.setChecked(mode == "add")
            a.triggered.connect(lambda _c=False, m=mode: self.set_selection_mode(m))
            self.selection_mode_group.addAction(a)
            self.selection_mode[mode] = a
        wand = self.canvas.tools[tools.WAND]
        self.wand_contiguous = menu.addAction("Magic Wand: &Contiguous")
        self.wand_contiguous.setCheckable(True)
        self.wand_contiguous.setChecked(wand.contiguous)
        self.wand_contiguous.toggled.connect(lambda on: setattr(wand, "contiguous", on))
        self.wand_tolerance = menu.addAction("Magic Wand &Tolerance…")
        self.wand_tolerance.triggered.connect(self._ask_tolerance)

    def set_selection_mode(self, mode: str) -> None:
        for name in _SELECTION_TOOLS:
            self.canvas.tools[name].mode = mode
        self.selection_mode[mode].setChecked(True)

    def _ask_tolerance(self) -> None:
        wand = self.canvas.tools[tools.WAND]
        value, ok = QInputDialog.getInt(self.window, "Magic wand", "Tolerance (0 = exact colour, 255 = everything)",
                                        wand.tolerance, 0, 255)
        if ok:
            wand.tolerance = value

    def _on_tool(self, name: str) -> None:
        """Background selection tools report through the window; choosing select-by-click starts
        the image embedding at once, so the first click is fast."""
        if name not in (tools.GRABCUT, tools.SAM):
            return
        tool = self.canvas.tools[name]
        if not getattr(tool, "window_connected", False):
            title = tool.label.split(" (")[0]
            tool.bridge.failed.connect(lambda text: self.messages.show_message("warning", title, text))
            tool.bridge.status.connect(self.status.message.setText)
            tool.window_connected = True
        if name == tools.SAM:
            tool.prepare(self.session.document)

    def open_expand_dialog(self) -> ExpandCanvasDialog | None:
        """Ask for the growth and apply it (one undo step). Returns the dialog (tests drive it)."""
        doc = self.session.document
        if doc.is_empty or self.session.generating:
            return None
        preview = doc.display_qimage().scaled(256, 256, Qt.AspectRatioMode.KeepAspectRatio)
        dialog = ExpandCanvasDialog(doc.width, doc.height, preview, self.window)
        dialog.finished.connect(lambda result: self._expand(dialog, result))
        dialog.open()
        return dialog

    def _expand(self, dialog: ExpandCanvasDialog, result: int) -> None:
        if result != QDialog.DialogCode.Accepted:
            return
        try:
            self.session.document.expand_canvas(dialog.expansion(), dialog.fill(), dialog.colour())
        except UserError as exc:
            self.messages.show_message("warning", exc.title, exc.message)
