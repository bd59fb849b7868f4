"""LoRA and embedding pickers under the prompt: insert ``<lora:name:w>`` or an embedding's word.

The lists come from `app.inference.diffusers.catalog` (folder scans and safetensors headers, no
torch), read when the panel is first shown or refreshed, not at start-up. Files that cannot be
used here (made for SDXL, not a LoRA…) are listed greyed out with the reason as their tooltip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QSlider, QWidget

from app.core.prompt_syntax import lora_tag
from app.widgets.buttons import push_button

DEFAULT_WEIGHT = 70  # hundredths: A1111's usual starting weight for a LoRA


def default_networks() -> tuple[list[Any], list[Any]]:
    from app.service import network_files

    return network_files.discover_loras(), network_files.discover_embeddings()


def _fill(box: QComboBox, infos: list[Any], none_text: str) -> None:
    box.clear()
    for info in infos:
        box.addItem(info.name if info.usable else f"{info.name} ({info.note})", info.name)
        row = box.count() - 1
        box.setItemData(row, info.note or str(info.path), Qt.ItemDataRole.ToolTipRole)
        if not info.usable:
            box.model().item(row).setEnabled(False)
    usable = [i for i, info in enumerate(infos) if info.usable]
    if usable:
        box.setCurrentIndex(usable[0])
    else:
        box.addItem(none_text, None)
        box.setCurrentIndex(box.count() - 1)


class NetworksPanel(QGroupBox):
    """``insert_text(text)`` asks the prompt box to insert a LoRA tag or an embedding word."""

    insert_text = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, discover: Callable[[], tuple[list, list]] | None = None) -> None:
        super().__init__("LoRA and embeddings", parent)
        self._discover = discover or default_networks
        self._loaded = False
        self.lora = QComboBox()
        self.lora.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.lora.setMinimumContentsLength(10)
        self.weight = QSlider(Qt.Orientation.Horizontal)
        self.weight.setRange(0, 200)
        self.weight.setValue(DEFAULT_WEIGHT)
        self.weight.setToolTip("LoRA weight: 0 off, 1 full strength")
        self.weight_label = QLabel()
        self.weight_label.setMinimumWidth(32)
        self.weight.valueChanged.connect(lambda v: self.weight_label.setText(f"{v / 100:.2f}"))
        self.weight_label.setText(f"{DEFAULT_WEIGHT / 100:.2f}")
        self.add_lora = push_button("Add", "Insert <lora:name:weight> into the prompt", self._insert_lora)
        self.embedding = QComboBox()
        self.embedding.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.embedding.setMinimumContentsLength(10)
        self.add_embedding = push_button("Add", "Insert the embedding's word into the prompt", self._insert_embedding)
        self.refresh_button = push_button("Refresh", "Search the Lora and embeddings folders again", self.refresh)
        grid = QGridLayout(self)
        grid.addWidget(QLabel("LoRA"), 0, 0)
        grid.addWidget(self.lora, 0, 1, 1, 2)
        grid.addWidget(self.add_lora, 0, 3)
        grid.addWidget(QLabel("Weight"), 1, 0)
        grid.addWidget(self.weight, 1, 1)
        grid.addWidget(self.weight_label, 1, 2)
        grid.addWidget(QLabel("Embedding"), 2, 0)
        grid.addWidget(self.embedding, 2, 1, 1, 2)
        grid.addWidget(self.add_embedding, 2, 3)
        grid.addWidget(self.refresh_button, 1, 3)
        grid.setColumnStretch(1, 1)

    def showEvent(self, event) -> None:  # noqa: N802
        if not self._loaded:
            self.refresh()
        super().showEvent(event)

    def refresh(self) -> None:
        """Scan the folders again (after the A1111 folder changed, or files were added)."""
        self._loaded = True
        try:
            loras, embeddings = self._discover()
        except Exception as exc:  # noqa: BLE001 - a broken folder must not break the panel; say so
            loras, embeddings = [], []
            self.setToolTip(f"Could not list LoRAs and embeddings: {exc}")
        _fill(self.lora, loras, "None found")
        _fill(self.embedding, embeddings, "None found")
        self.lora.setToolTip("" if loras else "Put LoRA .safetensors files in models/Lora of the data folder or the A1111/Forge folder")
        self.embedding.setToolTip("" if embeddings else "Put embeddings in models/embeddings of the data folder or the A1111/Forge folder")
        self.add_lora.setEnabled(self.lora.currentData() is not None)
        self.add_embedding.setEnabled(self.embedding.currentData() is not None)

    def _insert_lora(self) -> None:
        name = self.lora.currentData()
        if name:
            self.insert_text.emit(lora_tag(name, self.weight.value() / 100))

    def _insert_embedding(self) -> None:
        name = self.embedding.currentData()
        if name:
            self.insert_text.emit(name)
