"""The main window's dialogs that only show something or edit a setting: Generation Server,
About, Keyboard Shortcuts and the user guide. Each opens non-modal, deletes itself on close and
is returned (tests and scripts drive it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtWidgets import QDialog, QMainWindow, QWidget

from app.editor.settings import Settings
from app.storage.paths import resources_dir
from app.widgets.messages import MessageBar


def docs_url() -> QUrl | None:
    """The user guide (README.md next to the code, in a checkout), or None when not installed."""
    readme = resources_dir().parent / "README.md"
    return QUrl.fromLocalFile(str(readme)) if readme.is_file() else None


def _opened(dialog: QDialog) -> QDialog:
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


def open_server_dialog(parent: QWidget, settings: Settings, on_saved: Callable[[], None]) -> QDialog:
    """Generate → Generation Server…; ``on_saved`` after OK (the picker lists the server's models)."""
    from app.widgets.server_dialog import ServerDialog

    dialog = ServerDialog(settings, parent)
    dialog.accepted.connect(on_saved)
    return _opened(dialog)


def show_about(parent: QWidget) -> QDialog:
    from app.widgets.about_dialog import AboutDialog  # importlib.metadata: not on the start path

    return _opened(AboutDialog(parent))


def show_shortcuts(window: QMainWindow) -> QDialog:
    """Every action of the window's menus and the window itself, with its shortcuts."""
    from app.widgets.shortcuts_dialog import ShortcutsDialog

    menus = [a.menu() for a in window.menuBar().actions() if a.menu() is not None]
    return _opened(ShortcutsDialog([a for m in menus for a in m.actions()] + window.actions(), window))


def open_docs(parent: QWidget, messages: MessageBar) -> QDialog | None:
    """Show the user guide in the app (no program may be set to open Markdown); None if not installed."""
    from app.widgets.docs_dialog import DocsDialog

    url = docs_url()
    if url is None:
        messages.show_message("info", "No documentation installed", "The user guide is README.md in the source of Inpaint Studio.")
        return None
    return _opened(DocsDialog(Path(url.toLocalFile()), parent))
