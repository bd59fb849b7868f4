"""Qt widgets: windows, the canvas, panels and dialogs.

Widgets observe the model layer (``app.editor.document.Document``) and may import QtWidgets and the Qt-free
core, never torch or diffusers (``tests/test_layers.py`` checks this). Submodules are imported
explicitly (``from app.widgets.canvas import CanvasView``) so importing the package stays cheap.
"""
