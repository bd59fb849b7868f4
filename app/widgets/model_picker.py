"""The model picker: built-in classical methods, LaMa files found on disk (prompt-free, like the
classical methods), the diffusion models found on disk, "Add model…", and the device / low-memory choices.

Discovery runs on a plain background thread: `app.inference.diffusers.catalog` belongs to the torch side and
scanning caches touches the disk, and neither may delay the window. Until it reports, the
classical methods are listed, so the app is usable from the first frame; with no diffusion model
found, a hint says plainly how to add one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLineEdit,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.params import CLASSICAL_METHODS, CLASSICAL_MODELS, DEFAULT_MODEL, LAMA_MODEL, GenerationParams
from app.storage.paths import models_dir, resources_dir
from app.editor.settings import DEVICES

DEVICE_LABELS = {"auto": "Auto (best available)", "cuda": "NVIDIA GPU (CUDA)", "mps": "Apple GPU (MPS)", "cpu": "CPU"}

NO_MODEL_HINT = (
    "<b>No diffusion model installed</b> — the classical methods work without one. For Stable "
    "Diffusion 1.5, click <b>Add model…</b> and pick a diffusers folder or a <tt>.safetensors</tt> "
    "file (an inpainting model works best), or choose <b>Download a model…</b> in its menu."
)
NO_MODEL_TIP = "Or copy the model into {folder} and press the refresh button."


MODEL_INDEX = "model_index.json"


def models_folder() -> str:
    """The user models folder that discovery scans."""
    return str(models_dir())


@dataclass(frozen=True)
class ModelEntry:
    """One row of the picker (built from `app.inference.diffusers.catalog.ModelInfo` or a user path)."""

    name: str
    ref: str
    detail: str = ""
    usable: bool = True  # False for models found but unsupported (SDXL, a refused pickle…)
    why: str = "unsupported"  # the picker's one word for an unusable model ("incomplete": a broken download)


def entry_from_info(info: Any) -> ModelEntry:
    """`ModelInfo(name, ref, kind, path, inpainting, family)` → row, read by attribute so the
    picker does not import the inference package."""
    parts = [str(getattr(info, "family", "") or ""), "inpainting" if getattr(info, "inpainting", False) else "base",
             str(getattr(info, "kind", "") or "")]
    path = getattr(info, "path", None)
    detail = " · ".join(p for p in parts if p)
    note = str(getattr(info, "note", "") or "")
    if note:
        detail += f"\n{note}"
    if path:
        detail += f"\n{path}"
    usable = bool(getattr(info, "usable", True))
    why = "incomplete" if note.lower().startswith(("incomplete", "truncated")) else "unsupported"
    return ModelEntry(str(getattr(info, "name", info)), str(getattr(info, "ref", info)), detail, usable, why)


def default_inspect(ref: str) -> Any:
    """What the catalog says of a path the user adds (configs and weight headers only: no torch,
    no tensor read), so a broken download is marked when added, not when it fails to load."""
    from app.service import catalog

    return catalog.resolve_model(ref)


def default_discover() -> list[Any]:
    from app.service import catalog  # imported on the discovery thread

    return catalog.discover_models()


LAMA_DETAIL = ("LaMa: removes objects, scratches, text and wires by continuing the surrounding texture. "
               "No prompt, no seed: the prompt, sampler, steps, CFG and strength fields are not used.")


def default_discover_lama() -> list[ModelEntry]:
    """The LaMa files in the models folders' LaMa/ (inpaint/, restoration/) sub-folders, as
    prompt-free rows (``lama:PATH``); found by name and folder only, no torch."""
    from app.service import lama  # imported on the discovery thread

    return [ModelEntry(f"LaMa — {p.stem}", f"{LAMA_MODEL}:{p}", f"{LAMA_DETAIL}\n{p}") for p in lama.discover()]


class _Bridge(QObject):
    """Carries the discovery result from the plain thread to the GUI thread (queued)."""

    done = Signal(object, object, str)  # diffusion entries, LaMa entries, error text


class ModelPicker(QWidget):
    """Chooses the model reference, device and low-memory mode."""

    model_changed = Signal(str)
    device_changed = Signal(str)
    low_memory_changed = Signal()  # read `low_memory` (no bool argument: PySide6 6.12 emit bug)
    model_added = Signal(str)  # a path the user added, to remember in the settings
    a1111_changed = Signal(str)  # the A1111/Forge folder typed in (may be "")
    discovery_finished = Signal()
    lora_downloaded = Signal(str)  # the download dialog fetched a LoRA: the window refreshes its list

    def __init__(self, parent: QWidget | None = None, *, discover: Callable[[], list[Any]] | None = None,
                 inspect: Callable[[str], Any] | None = None,
                 discover_lama: Callable[[], list[ModelEntry]] | None = None) -> None:
        super().__init__(parent)
        self._discover = discover or default_discover
        self._discover_lama = discover_lama or default_discover_lama
        self._lama: list[ModelEntry] = []
        self._inspect = inspect or default_inspect
        self._discovered: list[ModelEntry] = []
        self._user: list[ModelEntry] = []
        self._remote: list[ModelEntry] = []
        self._wanted = DEFAULT_MODEL
        self._emitted = DEFAULT_MODEL
        self._bridge = _Bridge()
        self._bridge.done.connect(self._on_discovered)
        self._thread: threading.Thread | None = None
        self.discovery_error = ""
        self.discovering = False
        self._a1111 = ""
        self._make_model_row()
        self._make_labels()
        self._make_run_options()
        self._build_layout()
        self._rebuild()

    def _make_model_row(self) -> None:
        """The model list, its refresh button and the Add model… button with its menu."""
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(18)
        self.combo.currentIndexChanged.connect(self._on_index)
        self.add_button = QToolButton()
        self.add_button.setText("Add model…")
        self.add_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        menu = QMenu(self.add_button)
        menu.addAction("Checkpoint file (.safetensors)…", self.add_model_file)
        menu.addAction("Diffusers folder…", self.add_model_folder)
        menu.addSeparator()
        menu.addAction("Download a model…", self.get_models)
        self.add_button.setMenu(menu)
        self.add_button.clicked.connect(self.add_model)
        self.add_button.setToolTip("Pick a checkpoint file, or the model_index.json inside a diffusers folder "
                                   "(the ▾ menu has both separately and downloads)")
        self.refresh_button = QToolButton()
        self.refresh_button.setIcon(QIcon(str(resources_dir() / "icons" / "refresh.svg")))
        self.refresh_button.setToolTip("Search for installed models again")
        self.refresh_button.clicked.connect(self.refresh)

    def _make_labels(self) -> None:
        """What the chosen model is (``detail``) and the hint shown while no model is installed."""
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setStyleSheet("color: palette(mid); font-size: 11px;")
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint = QLabel(NO_MODEL_HINT)
        self.hint.setToolTip(NO_MODEL_TIP.format(folder=models_folder()))
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("QLabel { background: rgba(140,196,255,0.12); border-radius: 4px; padding: 6px; }")
        self.hint.hide()

    def _make_run_options(self) -> None:
        """Where models come from and run: the A1111/Forge folder, the device, low-memory mode."""
        self.a1111 = QLineEdit()
        self.a1111.setPlaceholderText("e.g. ~/stable-diffusion-webui")
        self.a1111.setToolTip("An AUTOMATIC1111 or Forge folder: its models/Stable-diffusion, Lora and embeddings "
                              "are listed here and in the CLI (INPAINT_STUDIO_A1111 overrides it)")
        self.a1111.editingFinished.connect(self._on_a1111_edited)
        self.device = QComboBox()
        for value in DEVICES:
            self.device.addItem(DEVICE_LABELS[value], value)
        self.device.currentIndexChanged.connect(lambda _i: self.device_changed.emit(self.device.currentData()))
        self.low_memory_box = QCheckBox("Low-memory mode")
        self.low_memory_box.setToolTip("Attention slicing, VAE tiling and model offload: slower, fits small GPUs")
        self.low_memory_box.toggled.connect(lambda _on: self.low_memory_changed.emit())

    def _build_layout(self) -> None:
        row = QHBoxLayout()
        row.setSpacing(4)
        row.addWidget(self.combo, 1)
        row.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(row)
        layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.detail)
        layout.addWidget(self.hint)
        form = QFormLayout()
        form.addRow("A1111/Forge", self.a1111)
        form.addRow("Device", self.device)
        form.addRow("", self.low_memory_box)
        layout.addLayout(form)
        layout.addStretch(1)

    # -- state --------------------------------------------------------------------------------
    def current_model(self) -> str:
        return self.combo.currentData() or DEFAULT_MODEL

    def set_current_model(self, ref: str) -> None:
        """Select ``ref``; a model not (yet) listed is remembered and selected once discovered
        — or added as a user entry if it is a path that exists."""
        self._wanted = ref
        index = self._index_of(ref)
        if index < 0 and ref not in CLASSICAL_MODELS and Path(ref).exists():
            self._user.append(ModelEntry(Path(ref).name, ref, ref))
            self._rebuild()
            index = self.combo.findData(ref)
        if index >= 0:
            self.combo.setCurrentIndex(index)

    def _index_of(self, ref: str) -> int:
        """The row of ``ref``; a bare "lama" (the CLI's, recalled from a PNG) is the first LaMa found."""
        index = self.combo.findData(ref)
        if index < 0 and ref == LAMA_MODEL and self._lama:
            index = self.combo.findData(self._lama[0].ref)
        return index

    def model_refs(self) -> list[str]:
        return [self.combo.itemData(i) for i in range(self.combo.count()) if self.combo.itemData(i)]

    @property
    def has_diffusion_models(self) -> bool:
        return any(e.usable for e in self._discovered + self._user)

    def device_choice(self) -> str:
        return self.device.currentData()

    def set_device_choice(self, device: str) -> None:
        index = self.device.findData(device)
        self.device.setCurrentIndex(max(0, index))

    @property
    def low_memory(self) -> bool:
        return self.low_memory_box.isChecked()

    def set_low_memory(self, on: bool) -> None:
        self.low_memory_box.setChecked(on)

    def set_a1111_folder(self, folder: str) -> None:
        self.a1111.setText(folder)
        self._a1111 = folder

    def _on_a1111_edited(self) -> None:
        folder = self.a1111.text().strip()
        if folder != self._a1111:
            self._a1111 = folder
            self.a1111_changed.emit(folder)

    def set_user_models(self, paths: list[str]) -> None:
        self._user = [ModelEntry(Path(p).name or p, p, p) for p in paths]
        self._rebuild()

    def set_remote_models(self, refs: list[str]) -> None:
        """The generation server's models (``remote:URL#id``), listed after the local ones."""
        self._remote = [ModelEntry(f"{ref.partition('#')[2] or 'default'} @ {ref[7:].partition('#')[0]}", ref,
                                   "Runs on the generation server (Generate → Generation Server…)") for ref in refs]
        self._rebuild()

    # -- discovery ----------------------------------------------------------------------------
    def get_models(self):
        """The download dialog (nothing is fetched until the user presses Download); the list
        refreshes when a model arrives."""
        from app.widgets.download_dialog import DownloadDialog

        dialog = DownloadDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.model_downloaded.connect(lambda _path: self.refresh())
        dialog.lora_downloaded.connect(self.lora_downloaded)
        dialog.open()
        return dialog

    def refresh(self) -> None:
        """Discover models on a background thread; the list updates when it reports."""
        if self.discovering:
            return
        self.discovering = True
        self.refresh_button.setEnabled(False)
        self.detail.setText("Searching for installed models…")

        def work() -> None:
            try:
                lama = list(self._discover_lama())
            except Exception:  # noqa: BLE001 - an unreadable LaMa folder must not hide the diffusion models
                lama = []
            try:
                entries = [entry_from_info(i) for i in self._discover()]
                self._bridge.done.emit(entries, lama, "")
            except Exception as exc:  # noqa: BLE001 - a broken cache must not break the picker
                self._bridge.done.emit([], lama, f"{type(exc).__name__}: {exc}")

        self._thread = threading.Thread(target=work, name="model-discovery", daemon=True)
        self._thread.start()

    def wait_discovery(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _on_discovered(self, entries: list[ModelEntry], lama: list[ModelEntry], error: str) -> None:
        self.discovering = False
        self.refresh_button.setEnabled(True)
        self.discovery_error = error
        self._lama = list(lama)
        self._discovered = [e for e in entries if e.ref not in CLASSICAL_MODELS]
        self._rebuild()
        self.discovery_finished.emit()

    # -- adding -------------------------------------------------------------------------------
    def add_model(self) -> None:
        """The Add button: one dialog for both kinds — a checkpoint file, or a diffusers folder by
        its model_index.json (file dialogs cannot offer files and folders at once)."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Add a model: a checkpoint file, or the model_index.json of a diffusers folder", models_folder(),
            f"Models (*.safetensors *.ckpt {MODEL_INDEX});;Checkpoints (*.safetensors *.ckpt);;Diffusers folders ({MODEL_INDEX});;All files (*)",
        )
        if path:
            self.add_model_path(path)

    def add_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Add a Stable Diffusion 1.5 checkpoint", "", "Checkpoints (*.safetensors *.ckpt);;All files (*)"
        )
        if path:
            self.add_model_path(path)

    def add_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a diffusers model folder (with model_index.json)")
        if path:
            self.add_model_path(path)

    def add_model_path(self, path: str) -> bool:
        """Add and select a model file or folder. Its configs and weight headers are looked at
        now (a truncated or incomplete download is listed as "(incomplete)" and not selected);
        whether the weights load is checked when it is used (reading gigabytes is the worker's job)."""
        p = Path(path)
        if p.name == MODEL_INDEX and p.is_file():  # picked inside a diffusers folder: the folder is the model
            p = p.parent
        if not p.exists():
            self.detail.setText(f"Not found: {path}")
            return False
        ref = str(p)
        entry = self._inspect_entry(p.name, ref)
        self._user = [e for e in self._user if e.ref != ref]
        if all(e.ref != ref for e in self._discovered):
            self._user.append(entry)
        self._rebuild()
        if not entry.usable:
            self.detail.setText(f"Not usable: {entry.detail}")
            return False
        self.set_current_model(ref)
        self.model_added.emit(ref)
        return True

    def _inspect_entry(self, name: str, ref: str) -> ModelEntry:
        from app.core.errors import UserError

        try:
            info = self._inspect(ref)
        except UserError as exc:
            return ModelEntry(name, ref, str(exc), usable=False, why="unusable")
        entry = entry_from_info(info)
        # A pickle file stays usable here: the Allow Pickle setting decides when it is loaded.
        pickle = str(getattr(info, "note", "")).startswith("pickle")
        return ModelEntry(name, ref, entry.detail, usable=entry.usable or pickle, why=entry.why)

    # -- list ---------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        want = self._wanted
        self.combo.blockSignals(True)
        self.combo.clear()
        for ref in CLASSICAL_MODELS:
            self.combo.addItem(CLASSICAL_METHODS[ref].label if ref in CLASSICAL_METHODS else ref, ref)
            self.combo.setItemData(self.combo.count() - 1, "Built in, no model needed: fills the mask from its surroundings", Qt.ItemDataRole.ToolTipRole)
        for e in self._lama:  # prompt-free too: beside the classical methods
            self.combo.addItem(e.name, e.ref)
            self.combo.setItemData(self.combo.count() - 1, e.detail, Qt.ItemDataRole.ToolTipRole)
        diffusion = self._discovered + [u for u in self._user if all(u.ref != d.ref for d in self._discovered)]
        diffusion += self._remote
        usable = [e for e in diffusion if e.usable]
        if diffusion:
            self.combo.insertSeparator(self.combo.count())
            for e in diffusion:
                self.combo.addItem(e.name if e.usable else f"{e.name} ({e.why})", e.ref)
                row = self.combo.count() - 1
                self.combo.setItemData(row, e.detail, Qt.ItemDataRole.ToolTipRole)
                if not e.usable:
                    self.combo.model().item(row).setEnabled(False)
        index = self._index_of(want)
        self.combo.setCurrentIndex(index if index >= 0 else 0)
        self.combo.blockSignals(False)
        self.hint.setVisible(not usable and not self.discovering)
        # A wrapped label does not raise its dock's minimum height by itself: reserve its lines.
        self.hint.setMinimumHeight(self.hint.heightForWidth(300) if self.hint.isVisibleTo(self) else 0)
        self._show_detail()
        self._emit_if_changed()

    def _emit_if_changed(self) -> None:
        ref = self.current_model()
        if ref != self._emitted:
            self._emitted = ref
            self.model_changed.emit(ref)

    def _show_detail(self) -> None:
        ref = self.current_model()
        if ref in CLASSICAL_MODELS:
            text = "Built in (OpenCV): no model or prompt needed; good for blemishes, wires, small objects."
        else:
            entry = next((e for e in self._lama + self._discovered + self._user if e.ref == ref), None)
            text = entry.detail if entry else ref
        if self.discovery_error:
            text += f"\nModel search failed: {self.discovery_error}"
        self.detail.setText(text)

    def _on_index(self, _index: int) -> None:
        self._wanted = self.current_model()
        self._show_detail()
        self._emit_if_changed()
