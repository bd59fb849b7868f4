"""How the main window looks: docks, actions, menus, toolbar and status bar, built once.

Kept apart from `app.widgets.main_window` so the window class reads as wiring (session ↔ panels)
while this module holds the long but flat list of what is where. Each builder sets the widgets
and actions on the window as attributes (tests and other features use them by name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMenu, QProgressBar, QSizePolicy, QSlider, QSpinBox, QToolBar, QToolButton, QWidget

from app.storage.paths import resources_dir
from app.widgets import tools
from app.widgets.live_controls import LiveControls
from app.widgets.status_label import StatusLabel

if TYPE_CHECKING:
    from app.widgets.main_window import MainWindow


def icon(name: str) -> QIcon:
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def docs_url() -> QUrl | None:
    """The user guide (README.md next to the code, in a checkout), or None when not installed."""
    readme = resources_dir().parent / "README.md"
    return QUrl.fromLocalFile(str(readme)) if readme.is_file() else None


def dock(w: QMainWindow, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    d = QDockWidget(title, w)
    d.setObjectName(f"dock-{title.lower()}")
    d.setWidget(widget)
    d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
                  | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    w.addDockWidget(area, d)
    return d


def build_docks(w: MainWindow) -> None:
    """Side docks run the full height; the candidates strip sits under the canvas only."""
    w.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
    w.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
    w.params_dock = dock(w, "Parameters", w.params_panel, Qt.DockWidgetArea.RightDockWidgetArea)
    w.model_dock = dock(w, "Model", w.model_picker, Qt.DockWidgetArea.RightDockWidgetArea)
    w.splitDockWidget(w.model_dock, w.params_dock, Qt.Orientation.Vertical)
    w.history_dock = dock(w, "History", w.history_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
    w.candidates_dock = dock(w, "Candidates", w.candidates_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
    w.resizeDocks([w.model_dock, w.params_dock], [290, 600], Qt.Orientation.Vertical)
    w.resizeDocks([w.params_dock, w.history_dock], [360, 270], Qt.Orientation.Horizontal)
    w.resizeDocks([w.candidates_dock], [170], Qt.Orientation.Vertical)


def action(w: QMainWindow, text: str, slot: Callable | None = None, shortcut=None, tip: str = "", icon_name: str = "",
           checkable: bool = False) -> QAction:
    a = QAction(text, w)
    if icon_name:
        a.setIcon(icon(icon_name))
    if shortcut is not None:
        if isinstance(shortcut, (list, tuple)):
            a.setShortcuts([QKeySequence(s) for s in shortcut])
        else:
            a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setToolTip(tip)
        a.setStatusTip(tip)
    a.setCheckable(checkable)
    if slot is not None:
        a.triggered.connect(lambda *_a, s=slot: s())
    w.addAction(a)
    return a


def document_op(w: MainWindow, name: str) -> Callable[[], None]:
    def run() -> None:
        if not w.document.is_empty:
            getattr(w.document, name)()
    return run


def build_actions(w: MainWindow) -> None:
    SK = QKeySequence.StandardKey
    w.open_action = action(w, "&Open…", w.files.open_dialog, SK.Open, "Open an image", "open")
    w.save_action = action(w, "&Save", w.files.save, SK.Save, "Save the result (PNG keeps the parameters)", "save")
    w.save_as_action = action(w, "Save Result &As…", w.files.save_as_dialog, SK.SaveAs, "Save the result under a new name")
    w.export_mask_action = action(w, "&Export Mask…", w.files.export_mask_dialog, tip="Save the mask as a black and white PNG")
    w.import_mask_action = action(w, "&Import Mask…", w.files.import_mask_dialog, tip="Load a mask image (white = repaint)")
    w.copy_action = action(w, "&Copy Image", w.files.copy_image, SK.Copy, "Copy the current image to the clipboard")
    w.paste_action = action(w, "&Paste", w.files.paste, SK.Paste, "Open the image (or image file) on the clipboard")
    w.quit_action = action(w, "&Quit", w.close, SK.Quit)

    w.undo_action = w.document.undo_stack.createUndoAction(w, "&Undo")
    w.undo_action.setShortcut(QKeySequence(SK.Undo))
    w.undo_action.setIcon(icon("undo"))
    w.undo_action.setData("Undo")  # its text names the last step; the shortcuts page wants the plain name
    w.redo_action = w.document.undo_stack.createRedoAction(w, "&Redo")
    redo_keys = QKeySequence.keyBindings(SK.Redo)
    if QKeySequence("Ctrl+Y") not in redo_keys:
        redo_keys.append(QKeySequence("Ctrl+Y"))
    w.redo_action.setShortcuts(redo_keys)
    w.redo_action.setIcon(icon("redo"))
    w.redo_action.setData("Redo")
    w.invert_action = action(w, "&Invert Mask", document_op(w, "invert_mask"), "Ctrl+Shift+I", "Swap masked and unmasked areas", "invert")
    w.clear_action = action(w, "&Clear Mask", document_op(w, "clear_mask"), "Ctrl+D", "Remove the whole mask", "clear")
    w.fill_action = action(w, "&Fill Mask", document_op(w, "fill_mask"), tip="Mask the whole image")
    w.grow_action = action(w, "&Grow Mask…", lambda: w.open_mask_dialog("grow"), tip="Grow the mask with a live preview")
    w.shrink_action = action(w, "S&hrink Mask…", lambda: w.open_mask_dialog("shrink"), tip="Shrink the mask with a live preview")
    w.feather_action = action(w, "F&eather Mask…", lambda: w.open_mask_dialog("feather"), tip="Soften the mask edge with a live preview")

    w.zoom_in_action = action(w, "Zoom &In", w.canvas.zoom_in, [SK.ZoomIn, "Ctrl+="])
    w.zoom_out_action = action(w, "Zoom &Out", w.canvas.zoom_out, SK.ZoomOut)
    w.zoom_fit_action = action(w, "&Fit to Window", w.canvas.zoom_fit, "Ctrl+0", "Fit the image in the window", "fit")
    w.zoom_actual_action = action(w, "&Actual Size (100 %)", w.canvas.zoom_actual, "Ctrl+1")
    w.show_mask_action = action(w, "Show &Mask", None, "Ctrl+H", "Show or hide the mask overlay", checkable=True)
    w.show_mask_action.setChecked(True)
    w.show_mask_action.toggled.connect(w.canvas.mask_overlay.set_visible)
    w.mask_color_action = action(w, "Mask &Colour…", w.choose_mask_color)

    w.generate_action = action(w, "&Generate", w.generate, ["Ctrl+Return", "Ctrl+Enter"], "Generate (Ctrl+Enter)", "generate")
    w.cancel_action = action(w, "&Cancel", w.cancel_generation, "Esc", "Cancel the running generation (Esc)", "cancel")
    w.apply_action = action(w, "&Apply Candidate", w.apply_current_candidate, tip="Apply the selected candidate")
    w.discard_action = action(w, "&Discard Candidates", w.discard_candidates)
    w.live = LiveControls(w)
    w.allow_pickle_action = action(w, "Allow Pickle Checkpoints (.ckpt)", None, checkable=True,
                                   tip="Loading a pickle file can run code hidden in it: only for files you trust")
    w.safety_action = action(w, "NSFW &Safety Checker", None, checkable=True,
                             tip="Filter results with the Stable Diffusion safety checker (needs its weights installed)")
    w.compile_action = action(w, "&Compiled UNet Step", None, checkable=True,
                              tip="Compile the model's denoising step in the background (GPU: several times faster once "
                                  "ready; runs go on uncompiled meanwhile, and the result is cached on disk for the next start)")
    w.about_action = action(w, "&About Inpaint Studio", w.show_about)

    w.tool_group = QActionGroup(w)
    w.tool_actions: dict[str, QAction] = {}
    for name, tool in w.canvas.tools.items():
        a = QAction(icon(name), tool.label, w)
        a.setCheckable(True)
        a.setToolTip(tool.tooltip)
        a.setShortcut(QKeySequence(tool.key))  # shown in the Tools menu; text fields keep typed letters
        a.triggered.connect(lambda _c=False, n=name: w.canvas.set_tool(n))
        w.addAction(a)
        w.tool_group.addAction(a)
        w.tool_actions[name] = a
    w.tool_actions[w.canvas.tool].setChecked(True)
    w.swap_tool_action = action(w, "S&wap Brush and Eraser", w.canvas.swap_brush_eraser, "X",
                                "Switch between brush and eraser (X)")
    w.shortcuts_action = action(w, "&Keyboard Shortcuts", w.show_shortcuts, "F1", "Every shortcut in one list")
    w.docs_action = action(w, "&Documentation", w.open_docs, tip="Open the user guide (README)")


def build_menus(w: MainWindow) -> None:
    mb = w.menuBar()
    w.file_menu = mb.addMenu("&File")
    w.file_menu.addAction(w.open_action)
    w.recent_menu = w.file_menu.addMenu("Open &Recent")
    w.recent_menu.aboutToShow.connect(w.files.fill_recent_menu)
    w.files.recent_menu = w.recent_menu
    w.files.fill_recent_menu()
    fill_menu(w.file_menu, [None, w.save_action, w.save_as_action])
    #: Where `add_file_actions` puts other features' actions (project files, …).
    w._file_anchor = w.file_menu.addSeparator()
    fill_menu(w.file_menu, [w.import_mask_action, w.export_mask_action, None, w.copy_action, w.paste_action, None,
                            w.quit_action])
    w.edit_menu = fill_menu(mb.addMenu("&Edit"), [w.undo_action, w.redo_action, None, w.invert_action, w.clear_action,
                                                   w.fill_action, w.grow_action, w.shrink_action, w.feather_action])
    w.view_menu = fill_menu(mb.addMenu("&View"), [w.zoom_in_action, w.zoom_out_action, w.zoom_fit_action,
                                                   w.zoom_actual_action, None, w.show_mask_action, w.mask_color_action])
    opacity_menu = w.view_menu.addMenu("Mask &Opacity")
    w.opacity_group = QActionGroup(w)
    w.opacity_actions: dict[int, QAction] = {}
    for pct in (25, 40, 50, 65, 80, 100):
        a = opacity_menu.addAction(f"{pct} %")
        a.setCheckable(True)
        a.triggered.connect(lambda _c=False, p=pct: w.set_mask_opacity(p / 100))
        w.opacity_group.addAction(a)
        w.opacity_actions[pct] = a
    w.view_menu.addSeparator()
    panels = w.view_menu.addMenu("&Panels")
    for dock in (w.model_dock, w.params_dock, w.candidates_dock, w.history_dock):
        panels.addAction(dock.toggleViewAction())

    w.tools_menu = fill_menu(mb.addMenu("&Tools"), [*w.tool_group.actions(), None, w.swap_tool_action])
    w.generate_menu = fill_menu(mb.addMenu("&Generate"), [w.generate_action, w.cancel_action, None, w.apply_action,
                                                           w.discard_action, None, w.live.live_action,
                                                           w.live.apply_live_action, None, w.allow_pickle_action, w.safety_action,
                                                           w.compile_action])
    w.generate_menu.addAction("Generation &Server…", w.open_server_dialog)
    w.help_menu = fill_menu(mb.addMenu("&Help"), [w.shortcuts_action, w.docs_action, None, w.about_action])


def fill_menu(menu: QMenu, items: list[QAction | None]) -> QMenu:
    """Add ``items`` in order (None = a separator); returns the menu."""
    for item in items:
        if item is None:
            menu.addSeparator()
        else:
            menu.addAction(item)
    return menu


def build_toolbar(w: MainWindow) -> None:
    tb = QToolBar("Main")
    tb.setObjectName("toolbar-main")
    tb.setMovable(False)
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    for a in (w.open_action, w.save_action):
        tb.addAction(a)
    tb.addSeparator()
    tb.addAction(w.undo_action)
    tb.addAction(w.redo_action)
    tb.addSeparator()
    for a in w.tool_group.actions():
        tb.addAction(a)
    tb.addSeparator()
    tb.addWidget(QLabel(" Size "))
    w.brush_size = QSpinBox()
    w.brush_size.setRange(tools.MIN_BRUSH, tools.MAX_BRUSH)
    w.brush_size.setSuffix(" px")
    w.brush_size.setToolTip("Brush diameter in image pixels ([ and ] change it)")
    w.brush_size.setValue(w.canvas.brush_size)
    w.brush_size.valueChanged.connect(w.canvas.set_brush_size)
    tb.addWidget(w.brush_size)
    tb.addWidget(QLabel("  Hardness "))
    w.hardness = QSlider(Qt.Orientation.Horizontal)
    w.hardness.setRange(0, 100)
    w.hardness.setFixedWidth(90)
    w.hardness.setValue(round(w.canvas.hardness * 100))
    w.hardness.setToolTip("Brush edge: 100 = hard, lower = soft")
    w.hardness.valueChanged.connect(lambda v: w.canvas.set_hardness(v / 100))
    tb.addWidget(w.hardness)
    tb.addSeparator()
    tb.addAction(w.invert_action)
    tb.addAction(w.clear_action)
    tb.addAction(w.zoom_fit_action)
    spacer = QWidget()
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    tb.addWidget(spacer)
    for a in (w.live.live_action, w.live.apply_live_action):
        button = QToolButton()
        button.setDefaultAction(a)  # shows the action's icon text: "Live", "Apply Live"
        tb.addWidget(button)
    gen = QToolButton()
    gen.setDefaultAction(w.generate_action)
    gen.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    tb.addWidget(gen)
    cancel = QToolButton()
    cancel.setDefaultAction(w.cancel_action)
    cancel.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    tb.addWidget(cancel)
    w.addToolBar(tb)
    w.main_toolbar = tb


def build_status_bar(w: MainWindow) -> None:
    sb = w.statusBar()
    w.status_message = StatusLabel("Open an image (Ctrl+O), drop one here or paste it (Ctrl+V).")
    sb.addWidget(w.status_message, 1)
    w.progress = QProgressBar()
    w.progress.setFixedWidth(220)
    w.progress.setTextVisible(True)
    w.progress.hide()
    w.seed_label = QLabel()
    w.seed_label.setToolTip("Seed actually used by the last generation")
    w.size_label = QLabel()
    w.cursor_label = QLabel()
    w.cursor_label.setMinimumWidth(90)
    w.zoom_label = QLabel()
    w.zoom_label.setMinimumWidth(56)
    # Shown while the last autosave failed (`recovery_dialog.install`): a crash now would restore older work.
    w.autosave_label = QLabel("⚠ Autosave failed")
    w.autosave_label.setStyleSheet("color: #b00020; font-weight: bold;")
    w.autosave_label.hide()
    for w in (w.autosave_label, w.progress, w.seed_label, w.size_label, w.cursor_label, w.zoom_label):
        sb.addPermanentWidget(w)
