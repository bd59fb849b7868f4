"""What the window's menus open besides files and generation: recalling parameters from an
image, the mask and view options, the A1111 folder, and the dialogs (server, about, shortcuts,
docs). A mixin of `MainWindow` (like `GenerationControls`), so the shell stays a wiring table;
it needs ``settings``, ``canvas``, ``document``, ``model_picker``, ``params_panel``,
``status_message``, ``opacity_actions``, `current_params`, `set_params` and `show_message`."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog

from app.core.params import GenerationParams
from app.widgets import window_layout as layout
from app.widgets.mask_dialog import MaskAdjustDialog

A1111_ENV = "INPAINT_STUDIO_A1111"


def missing_networks_for(params: GenerationParams) -> list[str]:
    """The LoRAs tagged in a recalled prompt and embeddings in its "TI hashes" not usable here."""
    from app.service import catalog  # folder scans: only on recall

    hashes = str(params.extra.get("TI hashes", ""))
    names = [part.split(":")[0].strip() for part in hashes.split(",") if part.strip()]
    try:
        return catalog.missing_networks(params.prompt, names)
    except ValueError as exc:  # an unreadable <lora:…> weight
        return [str(exc)]


class WindowActions:
    """Recall, mask/view options and dialog launchers of the main window."""

    # -- recall ------------------------------------------------------------------------------------
    def recall_params(self, params: GenerationParams, fields: frozenset[str] | None = None) -> None:
        """Show recalled ``params``; with ``fields``, only those (what the file held) replace the
        form's values, so a file that lacks a setting never wipes what the user typed."""
        if fields is not None:
            current = self.current_params()
            params = current.replace(**{f: getattr(params, f) for f in fields if hasattr(current, f)})
        self.set_params(params)
        self.status_message.setText(f"Parameters recalled (seed {params.seed})." if params.seed >= 0 else "Parameters recalled.")
        missing = missing_networks_for(params)
        if missing:
            self.show_message("warning", "Not installed here", "; ".join(missing) + ". The run works without them, "
                              "but will look different.")

    def offer_recall(self, recalled, path: str | None = None) -> None:
        """An opened image carries generation parameters (an `app.core.sdmeta.RecallResult`):
        offer them without blocking. A ComfyUI graph with several samplers offers each one."""
        from app.core.sdmeta import recall

        if recalled.params is None:
            if recalled.choices and path:
                actions = [(c.label[:48], lambda n=c.node_id: self.offer_recall(recall(path, choice=n), path))
                           for c in recalled.choices[:4]]
                self.show_message("info", "Choose the sampler to recall", recalled.message, actions)
            return
        params = recalled.params
        summary = params.prompt[:80] + ("…" if len(params.prompt) > 80 else "")
        self.show_message("info", "This image carries generation parameters",
                          f"“{summary or 'no prompt'}”, {params.scheduler}, {params.steps} steps, seed {params.seed}. "
                          f"({recalled.message})",
                          [("Recall parameters", lambda r=recalled: self.recall_params(r.params, r.fields_set))])

    def set_a1111_folder(self, folder: str) -> None:
        """Remember the A1111/Forge folder for window and CLI, and list its models and networks."""
        self.settings.shared.set_a1111_folder(folder)
        if folder:
            os.environ[A1111_ENV] = folder  # this process's discovery, worker included
        else:
            os.environ.pop(A1111_ENV, None)
        self.model_picker.refresh()
        self.params_panel.networks.refresh()

    # -- mask and view -----------------------------------------------------------------------------
    def open_mask_dialog(self, op: str) -> MaskAdjustDialog | None:
        if self.document.is_empty:
            return None
        dialog = MaskAdjustDialog(self, op)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def adjust_mask(self, op: str, px: int) -> bool:
        d = self.document
        return {"grow": d.grow_mask, "shrink": d.shrink_mask, "feather": d.feather_mask}[op](px)

    def choose_mask_color(self) -> None:
        dialog = QColorDialog(self.canvas.mask_color, self)
        dialog.setWindowTitle("Mask overlay colour")
        dialog.colorSelected.connect(self.set_mask_color)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def set_mask_color(self, color: QColor | str) -> None:
        color = QColor(color)
        self.canvas.set_mask_color(color)
        self.settings.set_mask_color(color.name())

    def set_mask_opacity(self, opacity: float) -> None:
        self.canvas.set_mask_opacity(opacity)
        self.settings.set_mask_opacity(opacity)
        for value, a in self.opacity_actions.items():
            a.setChecked(value == round(opacity * 100))

    # -- dialogs -----------------------------------------------------------------------------------
    def open_server_dialog(self):
        """Generate → Generation Server…; on OK the picker lists the server's models."""
        from app.widgets.server_dialog import ServerDialog

        dialog = ServerDialog(self.settings, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.model_picker.set_remote_models(self.settings.remote_models()))
        dialog.open()
        return dialog

    def show_about(self):
        from app.widgets.about_dialog import AboutDialog  # importlib.metadata: not on the start path

        dialog = AboutDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def show_shortcuts(self):
        from app.widgets.shortcuts_dialog import ShortcutsDialog

        menus = [a.menu() for a in self.menuBar().actions() if a.menu() is not None]
        dialog = ShortcutsDialog([a for m in menus for a in m.actions()] + self.actions(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def open_docs(self):
        """Show the user guide in the app (no program may be set to open Markdown); None if not installed."""
        from app.widgets.docs_dialog import DocsDialog

        url = layout.docs_url()
        if url is None:
            self.show_message("info", "No documentation installed", "The user guide is README.md in the source of Inpaint Studio.")
            return None
        dialog = DocsDialog(Path(url.toLocalFile()), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog
