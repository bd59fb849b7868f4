"""The Restore menu and panel, installed on the main window in one call: Upscale ×2/×4, Restore
Faces, Denoise, Colourise (once the service runs it) and Get Models…, each opening a
`RestoreDialog` for the whole image or the selection; the panel (a dock tabbed with History) has
the same actions and the edit history. The runs go through one `RestoreRunner` per window, which
keeps the last model loaded between runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, Qt

from app.editor.restore_task import COLORIZE, DENOISE, FACES, LABELS, UPSCALE, RestoreRunner, available
from app.widgets.restore_dialog import RestoreDialog
from app.widgets.restore_panel import RestorePanel
from app.widgets.window_layout import action, dock

if TYPE_CHECKING:
    from app.widgets.main_window import MainWindow

#: (operation, upscale factor, menu text, shortcut, tip)
ENTRIES = (
    (UPSCALE, 2, "&Upscale ×2…", "Ctrl+Alt+U", "Enlarge the image twice with an upscaling model (tiled, cancellable)"),
    (UPSCALE, 4, "Upscale &×4…", None, "Enlarge the image four times with an upscaling model"),
    (FACES, 1, "Restore &Faces…", None, "Restore the faces in the selection (each painted blob is a face)"),
    (DENOISE, 1, "&Denoise…", None, "Remove noise or JPEG artefacts in the image or the selection"),
    (COLORIZE, 1, "&Colourise…", None, "Colourise a black-and-white photo"),
)


def install(w: MainWindow) -> None:
    """Add the Restore menu (before Help) and its runner to a window built by `window_layout`."""
    w.restore_runner = RestoreRunner(w.document, lambda: w.session.worker.service.restoration, w)
    # The global thread pool is waited for at exit: a run must stop at its next tile, not finish first.
    QCoreApplication.instance().aboutToQuit.connect(w.restore_runner.cancel)
    w.restore_dialog = None
    w.restore_actions = {}
    menu = w.menuBar().addMenu("&Restore")
    w.menuBar().insertMenu(w.help_menu.menuAction(), menu)
    w.restore_menu = menu
    for operation, factor, text, shortcut, tip in ENTRIES:
        a = action(w, text, lambda op=operation, f=factor: open_restore_dialog(w, op, f), shortcut, tip)
        if not available(operation):
            a.setToolTip(f"{LABELS[operation]} needs a newer version of the restoration service")
            a.setStatusTip(a.toolTip())
        menu.addAction(a)
        w.restore_actions[(operation, factor)] = a
    menu.addSeparator()
    w.restore_get_models_action = action(w, "&Get Models…", w.model_picker.get_models,
                                         tip="Download a known-good upscaler, face restorer or other model")
    menu.addAction(w.restore_get_models_action)
    panel = RestorePanel(list(w.restore_actions.values()), w.restore_get_models_action, w.document.undo_stack)
    w.restore_panel = panel
    w.restore_dock = dock(w, "Restore", panel, Qt.DockWidgetArea.LeftDockWidgetArea)
    w.tabifyDockWidget(w.history_dock, w.restore_dock)
    w.history_dock.raise_()
    menu.addSeparator()
    w.restore_panel_action = w.restore_dock.toggleViewAction()
    w.restore_panel_action.setText("Restore &Panel")
    menu.addAction(w.restore_panel_action)
    w.document.reset.connect(lambda: update_actions(w))
    w.session.generation_started.connect(lambda _p: update_actions(w))
    for ended in (w.session.generation_finished, w.session.generation_failed, w.session.generation_cancelled):
        ended.connect(lambda *_: update_actions(w))
    update_actions(w)


def update_actions(w: MainWindow) -> None:
    ready = not w.document.is_empty and not w.session.generating
    for (operation, _factor), a in w.restore_actions.items():
        a.setEnabled(ready and available(operation))


def open_restore_dialog(w: MainWindow, operation: str, factor: int = 2, **kwargs) -> RestoreDialog | None:
    """Show the dialog for ``operation`` (one at a time; it does not block the window). Returns
    it (tests drive it), or None when there is no image or a generation runs."""
    if w.document.is_empty or w.session.generating:
        return None
    old = w.restore_dialog
    if old is not None and old.isVisible():
        if w.restore_runner.running:  # one run at a time: show the one that runs
            old.raise_()
            return old
        old.reject()
    dialog = RestoreDialog(w.restore_runner, operation, factor, w, **kwargs)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.applied.connect(lambda label: w.status.message.setText(f"{label} — Undo (Ctrl+Z) restores the previous image."))
    dialog.get_models_requested.connect(w.model_picker.get_models)
    dialog.destroyed.connect(lambda *_: setattr(w, "restore_dialog", None) if w.restore_dialog is dialog else None)
    w.restore_dialog = dialog
    dialog.show()
    return dialog
