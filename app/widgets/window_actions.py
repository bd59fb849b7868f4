"""Every QAction of the main window in one object (``window.menu_actions``), named by what it does
(``menu_actions.save``, ``menu_actions.grow_mask``, ``menu_actions.tools["brush"]``), built from the objects whose
methods they trigger: the menus, the toolbar and tests reach them here."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow

from app.editor.document import Document
from app.widgets import window_dialogs
from app.widgets.canvas import CanvasView
from app.widgets.file_actions import FileActions
from app.widgets.generation_controls import GenerationView
from app.widgets.mask_view import MaskViewOptions
from app.widgets.messages import MessageBar
from app.widgets.window_layout import action, icon

SK = QKeySequence.StandardKey


class WindowActions:
    """``window``: where the actions live (their shortcuts work anywhere in it); ``adjust_mask(op)``
    opens the grow/shrink/feather dialog."""

    def __init__(self, window: QMainWindow, *, files: FileActions, document: Document, canvas: CanvasView,
                 generation: GenerationView, mask_view: MaskViewOptions, messages: MessageBar,
                 adjust_mask: Callable[[str], object]) -> None:
        self._file_actions(window, files)
        self._edit_actions(window, document, adjust_mask)
        self._view_actions(window, canvas, mask_view)
        self._generate_actions(window, generation)
        self.about = action(window, "&About Inpaint Studio", lambda: window_dialogs.show_about(window))
        self._tool_actions(window, canvas)
        self.shortcuts = action(window, "&Keyboard Shortcuts", lambda: window_dialogs.show_shortcuts(window), "F1",
                                "Every shortcut in one list")
        self.docs = action(window, "&Documentation", lambda: window_dialogs.open_docs(window, messages),
                           tip="Open the user guide (README)")

    def _file_actions(self, w: QMainWindow, files: FileActions) -> None:
        self.open = action(w, "&Open…", files.open_dialog, SK.Open, "Open an image", "open")
        self.save = action(w, "&Save", files.save, SK.Save, "Save the result (PNG keeps the parameters)", "save")
        self.save_as = action(w, "Save Result &As…", files.save_as_dialog, SK.SaveAs, "Save the result under a new name")
        self.export_mask = action(w, "&Export Mask…", files.export_mask_dialog, tip="Save the mask as a black and white PNG")
        self.import_mask = action(w, "&Import Mask…", files.import_mask_dialog, tip="Load a mask image (white = repaint)")
        self.copy = action(w, "&Copy Image", files.copy_image, SK.Copy, "Copy the current image to the clipboard")
        self.paste = action(w, "&Paste", files.paste, SK.Paste, "Open the image (or image file) on the clipboard")
        self.quit = action(w, "&Quit", w.close, SK.Quit)

    def _edit_actions(self, w: QMainWindow, document: Document, adjust_mask: Callable[[str], object]) -> None:
        self.undo = document.undo_stack.createUndoAction(w, "&Undo")
        self.undo.setShortcut(QKeySequence(SK.Undo))
        self.undo.setIcon(icon("undo"))
        self.undo.setData("Undo")  # its text names the last step; the shortcuts page wants the plain name
        self.redo = document.undo_stack.createRedoAction(w, "&Redo")
        redo_keys = QKeySequence.keyBindings(SK.Redo)
        if QKeySequence("Ctrl+Y") not in redo_keys:
            redo_keys.append(QKeySequence("Ctrl+Y"))
        self.redo.setShortcuts(redo_keys)
        self.redo.setIcon(icon("redo"))
        self.redo.setData("Redo")

        def on_image(method: Callable[[], object]) -> Callable[[], None]:
            return lambda: None if document.is_empty else method()

        self.invert_mask = action(w, "&Invert Mask", on_image(document.invert_mask), "Ctrl+Shift+I",
                                  "Swap masked and unmasked areas", "invert")
        self.clear_mask = action(w, "&Clear Mask", on_image(document.clear_mask), "Ctrl+D", "Remove the whole mask", "clear")
        self.fill_mask = action(w, "&Fill Mask", on_image(document.fill_mask), tip="Mask the whole image")
        self.grow_mask = action(w, "&Grow Mask…", lambda: adjust_mask("grow"), tip="Grow the mask with a live preview")
        self.shrink_mask = action(w, "S&hrink Mask…", lambda: adjust_mask("shrink"), tip="Shrink the mask with a live preview")
        self.feather_mask = action(w, "F&eather Mask…", lambda: adjust_mask("feather"),
                                   tip="Soften the mask edge with a live preview")

    def _view_actions(self, w: QMainWindow, canvas: CanvasView, mask_view: MaskViewOptions) -> None:
        self.zoom_in = action(w, "Zoom &In", canvas.zoom_in, [SK.ZoomIn, "Ctrl+="])
        self.zoom_out = action(w, "Zoom &Out", canvas.zoom_out, SK.ZoomOut)
        self.zoom_fit = action(w, "&Fit to Window", canvas.zoom_fit, "Ctrl+0", "Fit the image in the window", "fit")
        self.zoom_actual = action(w, "&Actual Size (100 %)", canvas.zoom_actual, "Ctrl+1")
        self.show_mask = action(w, "Show &Mask", None, "Ctrl+H", "Show or hide the mask overlay", checkable=True)
        self.show_mask.setChecked(True)
        self.show_mask.toggled.connect(canvas.mask_overlay.set_visible)
        self.mask_color = action(w, "Mask &Colour…", mask_view.choose_color)

    def _generate_actions(self, w: QMainWindow, g: GenerationView) -> None:
        self.generate = action(w, "&Generate", g.generate, ["Ctrl+Return", "Ctrl+Enter"], "Generate (Ctrl+Enter)", "generate")
        self.cancel = action(w, "&Cancel", g.cancel, "Esc", "Cancel the running generation (Esc)", "cancel")
        self.apply = action(w, "&Apply Candidate", g.apply_current_candidate, tip="Apply the selected candidate")
        self.discard = action(w, "&Discard Candidates", g.discard_candidates)
        self.allow_pickle = action(w, "Allow Pickle Checkpoints (.ckpt)", None, checkable=True,
                                   tip="Loading a pickle file can run code hidden in it: only for files you trust")
        self.safety_checker = action(w, "NSFW &Safety Checker", None, checkable=True,
                                     tip="Filter results with the Stable Diffusion safety checker (needs its weights installed)")
        self.compile = action(w, "&Compiled UNet Step", None, checkable=True,
                              tip="Compile the model's denoising step in the background (GPU: several times faster once "
                                  "ready; runs go on uncompiled meanwhile, and the result is cached on disk for the next start)")

    def _tool_actions(self, w: QMainWindow, canvas: CanvasView) -> None:
        self.tool_group = QActionGroup(w)
        self.tools: dict[str, QAction] = {}
        for name, tool in canvas.tools.items():
            a = QAction(icon(name), tool.label, w)
            a.setCheckable(True)
            a.setToolTip(tool.tooltip)
            a.setShortcut(QKeySequence(tool.key))  # shown in the Tools menu; text fields keep typed letters
            a.triggered.connect(lambda _c=False, n=name: canvas.set_tool(n))
            w.addAction(a)
            self.tool_group.addAction(a)
            self.tools[name] = a
        self.tools[canvas.tool].setChecked(True)
        self.swap_tool = action(w, "S&wap Brush and Eraser", canvas.swap_brush_eraser, "X", "Switch between brush and eraser (X)")
