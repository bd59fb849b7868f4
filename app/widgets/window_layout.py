"""Where things are in the main window: docks, menus and toolbar, built once from the window's
objects (its actions are `window_actions.WindowActions`, its status bar `window_status.WindowStatus`).

Kept apart from `app.widgets.main_window` so the window class reads as wiring (session ↔ panels)
while this module holds the long but flat list of what is where; the docks, menus and toolbar
fields stay window attributes (``file_menu`` is a hook other features add to).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QLabel, QMainWindow, QMenu, QSizePolicy, QSlider, QSpinBox, QStyle, QToolBar,
                               QToolButton, QVBoxLayout, QWidget)

from app.storage.paths import resources_dir
from app.widgets import tools

if TYPE_CHECKING:
    from app.widgets.main_window import MainWindow


def icon(name: str) -> QIcon:
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def dock(w: QMainWindow, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    d = QDockWidget(title, w)
    d.setObjectName(f"dock-{title.lower()}")
    d.setWidget(widget)
    d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
                  | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    w.addDockWidget(area, d)
    return d


def build_centre(w: QMainWindow, message_bar: QWidget, canvas: QWidget) -> None:
    """The message bar above the canvas, the two filling the space between the docks."""
    central = QWidget()
    column = QVBoxLayout(central)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(0)
    column.addWidget(message_bar)
    column.addWidget(canvas, 1)
    w.setCentralWidget(central)


def first_geometry(w: QMainWindow) -> None:
    """1440×900 on a screen that holds it; else the screen's free area, so a 1366×768 laptop
    sees every panel on the first start."""
    screen = w.screen() or QGuiApplication.primaryScreen()
    free = screen.availableGeometry() if screen is not None else None
    if free is None or free.isEmpty():
        w.resize(1440, 900)
        return
    size = QSize(min(1440, free.width()), min(900, free.height()))
    w.setGeometry(QStyle.alignedRect(Qt.LayoutDirection.LeftToRight, Qt.AlignmentFlag.AlignCenter, size, free))


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


def build_menus(w: MainWindow) -> None:
    mb, a = w.menuBar(), w.menu_actions
    w.file_menu = mb.addMenu("&File")
    w.file_menu.addAction(a.open)
    w.recent_menu = w.file_menu.addMenu("Open &Recent")
    w.recent_menu.aboutToShow.connect(w.files.fill_recent_menu)
    w.files.recent_menu = w.recent_menu
    w.files.fill_recent_menu()
    fill_menu(w.file_menu, [None, a.save, a.save_as])
    #: Where `add_file_actions` puts other features' actions (project files, …).
    w._file_anchor = w.file_menu.addSeparator()
    fill_menu(w.file_menu, [a.import_mask, a.export_mask, None, a.copy, a.paste, None, a.quit])
    w.edit_menu = fill_menu(mb.addMenu("&Edit"), [a.undo, a.redo, None, a.invert_mask, a.clear_mask, a.fill_mask,
                                                   a.grow_mask, a.shrink_mask, a.feather_mask])
    w.view_menu = fill_menu(mb.addMenu("&View"), [a.zoom_in, a.zoom_out, a.zoom_fit, a.zoom_actual, None, a.show_mask,
                                                   a.mask_color])
    w.mask_view.add_opacity_menu(w.view_menu)
    w.view_menu.addSeparator()
    panels = w.view_menu.addMenu("&Panels")
    for dock in (w.model_dock, w.params_dock, w.candidates_dock, w.history_dock):
        panels.addAction(dock.toggleViewAction())

    w.tools_menu = fill_menu(mb.addMenu("&Tools"), [*a.tool_group.actions(), None, a.swap_tool])
    w.generate_menu = fill_menu(mb.addMenu("&Generate"), [a.generate, a.cancel, None, a.apply, a.discard, None,
                                                           w.live.live_action, w.live.apply_live_action, None,
                                                           a.allow_pickle, a.safety_checker, a.compile])
    w.generate_menu.addAction("Generation &Server…", w.open_server_dialog)
    w.help_menu = fill_menu(mb.addMenu("&Help"), [a.shortcuts, a.docs, None, a.about])


def fill_menu(menu: QMenu, items: list[QAction | None]) -> QMenu:
    """Add ``items`` in order (None = a separator); returns the menu."""
    for item in items:
        if item is None:
            menu.addSeparator()
        else:
            menu.addAction(item)
    return menu


def build_toolbar(w: MainWindow) -> None:
    tb, m = QToolBar("Main"), w.menu_actions
    tb.setObjectName("toolbar-main")
    tb.setMovable(False)
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    for a in (m.open, m.save):
        tb.addAction(a)
    tb.addSeparator()
    tb.addAction(m.undo)
    tb.addAction(m.redo)
    tb.addSeparator()
    for a in m.tool_group.actions():
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
    tb.addAction(m.invert_mask)
    tb.addAction(m.clear_mask)
    tb.addAction(m.zoom_fit)
    spacer = QWidget()
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    tb.addWidget(spacer)
    for a in (w.live.live_action, w.live.apply_live_action):
        button = QToolButton()
        button.setDefaultAction(a)  # shows the action's icon text: "Live", "Apply Live"
        tb.addWidget(button)
    gen = QToolButton()
    gen.setDefaultAction(m.generate)
    gen.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    tb.addWidget(gen)
    cancel = QToolButton()
    cancel.setDefaultAction(m.cancel)
    cancel.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    tb.addWidget(cancel)
    w.addToolBar(tb)
    w.main_toolbar = tb
